"""Aggregation with pandas: run files -> one table of cases -> leaderboards and comparisons.

Everything here reads the run documents alone: units, directions, primary metrics and objectives come from the
task descriptions each run file carries (``ctbench.catalog.describe``), never from the tasks' code, so a run of an older
commit or of a task that is not installed renders the same.

A leaderboard ranks rows within one *board* (task, dataset, scale, params, hardware): rows of different datasets or
scales are never ranked together. A *row* is one implementation's code: (impl, submission, code), where ``code`` is
the content hash of the implementation's files (its spec in run files older than the hash), so runs of different
code never merge. A row summarises its cases (seeds, and repeated runs of the same code) by their median and says
which runs they came from; failed, timed-out and invalid rows stay in the table with their reason but get no rank.
Each ranked row gets its rank by one metric (ties within the measured spread, ``ctbench.boards.ranking``) and its Pareto
layer over the task's objectives.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ctbench.boards import ranking
from ctbench.machine.env import hardware_label
from ctbench.store.matching import hardware_metrics
from ctbench.store.text import shown

METRIC = "metric."  # prefix of metric columns
SPREAD = "spread."  # prefix of spread columns
NOISE = "noise."  # prefix of a leaderboard row's noise columns (its spread, else the std over its seeds)
PARAM = "param."  # prefix of parameter columns
GROUP = ["task", "dataset", "scale", "params", "hardware"]  # never ranked across these
ROW = [*GROUP, "impl", "submission", "code"]  # one leaderboard row: an implementation's code on one board
CASE = ["task", "impl", "submission", "scale", "dataset", "params"]  # a case up to its seed
# the columns of every ``cases_frame`` (metric, spread and param columns follow), even one of no case
FRAME_COLUMNS = "run_id run_path created hardware task impl submission reference url scale dataset params".split()
FRAME_COLUMNS += "params_json seed status error expected_invalid checks_failed checks_total".split()
FRAME_COLUMNS += "impl_hash impl_spec code tuned label".split()
TUNED = "tuned_"  # prefix of the metrics that record a value a case's protocol tuned (e.g. tuned_step_size)
DERIVED = re.compile(r"^(?:(?P<phase>.+)_)?throughput_.+_s$")  # a rate the engine derives from a timing

TaskSpecs = Mapping[str, Mapping[str, Any]]  # task name -> its description (``ctbench.catalog.describe``)


def params_label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "-"


def params_order(params_json: str) -> tuple:
    """Sort key of a case's parameters: numbers by value (depth 8 < 64 < 256), names by text, None first."""
    try:
        params = json.loads(params_json)
    except (TypeError, ValueError):
        return ((2, str(params_json)),)
    if not isinstance(params, dict):
        return ((2, str(params_json)),)

    def value(v: Any) -> tuple:
        if v is None:
            return (0, 0.0, "")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return (1, float(v), "")
        return (2, 0.0, json.dumps(v) if not isinstance(v, str) else v)

    return tuple((k, value(v)) for k, v in sorted(params.items()))


def task_specs(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each task's description, from the newest run that carries one."""
    specs: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: (r["created"], r["run_id"])):
        specs.update({name: dict(spec) for name, spec in (run.get("tasks") or {}).items()})
    return specs


def direction(specs: TaskSpecs, task: str, metric: str) -> bool | None:
    """True if higher is better, False if lower, None when informative or unknown."""
    spec = specs.get(task, {}).get("metrics", {}).get(metric)
    return spec.get("higher_is_better") if isinstance(spec, Mapping) else None


def primary_metric(specs: TaskSpecs, task: str) -> str | None:
    return specs.get(task, {}).get("primary_metric")


def derived_from(metric: str) -> str | None:
    """The timing a rate derives from: ``throughput_<u>_s`` from ``step_time_s``, ``<phase>_throughput_<u>_s`` from
    ``<phase>_time_s``; None for a measured metric."""
    match = DERIVED.match(metric)
    if not match:
        return None
    return f"{match['phase']}_time_s" if match["phase"] else "step_time_s"


def _param_value(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def implementation_labels(df: pd.DataFrame) -> pd.Series:
    """A row's display name (columns ``impl``, ``submission``, ``reference``, ``code``): its implementation,
    ``impl [submission]`` where the submission's label differs, and ``@<hash>`` where the same name ran with
    different code among these rows."""
    base = df["impl"].where(
        df["reference"] | (df["submission"] == df["impl"]), df["impl"] + " [" + df["submission"] + "]"
    )
    versions = df.groupby(base)["code"].transform("nunique")
    short = df["code"].map(lambda c: c if ":" in c else c[:8])  # a spec (older files) whole: tails may collide
    return base.where(versions <= 1, base + " @" + short)


def _derived_spreads(df: pd.DataFrame) -> pd.DataFrame:
    """A rate with no recorded spread (run files older than the engine's) gets its timing's, relative:
    ``rate * spread(t) / t``."""
    for column in [c for c in df.columns if c.startswith(METRIC)]:
        source = derived_from(column[len(METRIC) :])
        if source is None or METRIC + source not in df or SPREAD + source not in df:
            continue
        relative = df[SPREAD + source] / df[METRIC + source]
        derived = (df[column] * relative).abs()
        target = SPREAD + column[len(METRIC) :]
        df[target] = df[target].fillna(derived) if target in df else derived
    return df


def tuned_text(metrics: Mapping[str, Any]) -> str:
    """The values a case's protocol tuned, from its ``tuned_*`` metrics: ``step_size 0.1, outer_ratio 1``."""
    values = [(k[len(TUNED) :], v) for k, v in metrics.items() if k.startswith(TUNED) and isinstance(v, (int, float))]
    return ", ".join(f"{name} {value:.4g}" for name, value in values)


def code_columns(case: Mapping[str, Any]) -> dict[str, str]:
    """A case record's ``impl_hash``, ``impl_spec`` and ``code`` (the hash, else the spec in older run files)."""
    impl_hash, impl_spec = (v if isinstance(v := case.get(k), str) else "" for k in ("impl_hash", "impl_spec"))
    return {"impl_hash": impl_hash, "impl_spec": impl_spec, "code": impl_hash or impl_spec}


def cases_frame(runs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per case of every run: metrics, spreads and parameters as columns. A case's hardware is the one it
    ran on (cases of one run may run on several machines), else its run's. The index is each case's position in the
    runs, in order (a filtered frame, e.g. ``latest``, names the cases it kept)."""
    rows = []
    for run in runs:
        run_hardware = hardware_label(run["env"])
        for case in run["cases"]:
            hardware = case.get("hardware") if isinstance(case.get("hardware"), str) else run_hardware
            row = {
                "run_id": run["run_id"],
                "run_path": shown(run.get("_path", "")),
                "created": run["created"],
                "hardware": hardware,
                "device": str(case.get("device") or ""),
                "task": case["task"],
                "impl": case["impl"],
                "submission": case["submission"],
                "reference": case["submission"] == "reference",
                "url": (case.get("manifest") or {}).get("url") or "",
                "scale": case["scale"],
                "dataset": case["dataset"],
                "params": params_label(case["params"]),
                "params_json": json.dumps(case["params"], sort_keys=True),
                "seed": case["seed"],
                "status": case["status"],
                "error": (case.get("error") or "").strip().splitlines()[0] if case.get("error") else "",
                "expected_invalid": case.get("expected_invalid") or "",
                "checks_failed": sum(c["passed"] is False for c in case.get("checks", {}).values()),
                "checks_total": len(case.get("checks", {})),
                **code_columns(case),
                "tuned": tuned_text(case["metrics"]),
            }
            row.update({PARAM + k: _param_value(v) for k, v in case["params"].items()})
            row.update({METRIC + k: (np.nan if v is None else v) for k, v in case["metrics"].items()})
            row.update({SPREAD + k: (np.nan if v is None else v) for k, v in case.get("spread", {}).items()})
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    df = pd.DataFrame(rows)
    df["label"] = implementation_labels(df)
    return _derived_spreads(df)


def metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(METRIC)]


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """Only the newest run's cases of each leaderboard row (``--latest``)."""
    if df.empty:
        return df
    stamp = df["created"].astype(str) + " " + df["run_id"].astype(str)
    newest = stamp.groupby([df[c] for c in ROW], sort=False).transform("max")
    return df[stamp == newest]


def _row_noise(ok: pd.DataFrame, metrics: list[str], specs: TaskSpecs | None = None) -> pd.DataFrame:
    """Per row, for each metric column in ``metrics``: the larger of the median recorded spread and the std over the
    row's seeds (of per-seed medians), whichever are known; NaN where neither is (one seed, nothing recorded). As
    ``noise.<metric>`` columns, computed for all metrics at once.

    A metric measured per process (a timing, a rate, an energy, a CPU memory reading: ``_process_pool``) is
    compared between rows measured in other processes, whose machine state and heap were not its own: its noise is
    its range over the row's cases (each its own process), at least its recorded spread and at least the range its
    metric's processes typically span on the board's task (``_process_noise``), as ``compare`` judges it between
    runs; NaN with one case, whatever the spread of its repeated calls."""
    per_seed = ok.groupby([*ROW, "seed"], sort=False, dropna=False)[metrics].median()
    noise = per_seed.groupby(level=list(range(len(ROW))), sort=False).std()
    noise.columns = [NOISE + c[len(METRIC) :] for c in metrics]
    spreads = [SPREAD + c[len(METRIC) :] for c in metrics if SPREAD + c[len(METRIC) :] in ok]
    if spreads:
        spread = ok.groupby(ROW, sort=False, dropna=False)[spreads].median()
        spread.columns = [NOISE + c[len(SPREAD) :] for c in spreads]
        noise[spread.columns] = np.fmax(spread.reindex(noise.index), noise[spread.columns])
    if specs is not None:
        noise = _process_noise(ok, metrics, specs, noise)
    return noise


def _process_noise(ok: pd.DataFrame, metrics: list[str], specs: TaskSpecs, noise: pd.DataFrame) -> pd.DataFrame:
    """``noise`` with its per-process metrics' columns replaced (``_row_noise``): each row's range over its cases,
    at least its recorded spread (in ``noise``) and at least the typical relative range of its metric over the
    rows with several cases (``POOLED_MIN_POINTS`` of them, else of its pool's metrics), times its median."""
    rows = ok.groupby(ROW, sort=False, dropna=False)
    median, count = rows[metrics].median(), rows[metrics].count()
    span = (rows[metrics].max() - rows[metrics].min()).where(count > 1)
    relative = (span / median.abs()).replace([np.inf, -np.inf], np.nan)
    tasks = median.index.get_level_values(ROW.index("task"))
    devices = rows["device"].first().reindex(median.index).astype(str)
    where = pd.Series(list(zip(tasks, devices, strict=True)), index=median.index, dtype=object)
    pool_of: dict[str, pd.Series] = {}  # column -> each row's pool (None: not measured per process)
    for col in metrics:
        metric = col[len(METRIC) :]
        pool = {(t, d): _process_pool(specs, t, metric, d) for t, d in set(where)}
        pool_of[col] = where.map(pool).astype(object)
    typical: dict[str, float] = {}
    for pool in {p for keys in pool_of.values() for p in keys.dropna()}:
        values = pd.concat([relative.loc[keys == pool, c] for c, keys in pool_of.items()]).dropna()
        if len(values) >= POOLED_MIN_POINTS:
            typical[pool] = float(values.median())
    for col, keys in pool_of.items():
        where = keys.notna()
        if not where.any():
            continue
        own = relative.loc[where, col].dropna()
        floor = float(own.median()) if len(own) >= POOLED_MIN_POINTS else typical.get(keys[where].iloc[0], 0.0)
        name = NOISE + col[len(METRIC) :]
        recorded = noise[name].fillna(0.0) if name in noise else 0.0
        judged = np.fmax(np.fmax(span[col], recorded), floor * median[col].abs()).where(span[col].notna())
        noise.loc[where, name] = judged[where]
    return noise


def _joined(values: pd.Series) -> str:
    return " ".join(dict.fromkeys(str(v) for v in values))


def _rows(sub: pd.DataFrame, metrics: list[str], specs: TaskSpecs | None = None) -> pd.DataFrame:
    """One row per (board, impl, submission, code): medians of its ok cases, or the status of its failed ones."""
    ok = sub[sub["status"] == "ok"]
    counts = sub.groupby(ROW, sort=False, dropna=False).agg(cases=("seed", "size"), runs=("run_id", _joined))
    grouped = ok.groupby(ROW, sort=False, dropna=False)
    good = grouped.agg(
        seeds=("seed", "nunique"),
        ok_cases=("seed", "size"),
        url=("url", "first"),
        label=("label", "first"),
        impl_spec=("impl_spec", "first"),
        params_json=("params_json", "first"),
    )
    good = good.assign(status="ok", reason="", expected_invalid="", tuned="")
    good = pd.concat([good, grouped[metrics].median()], axis=1)  # all metric columns at once: a case may have many
    in_good = sub.set_index(ROW).index.isin(good.index)
    some_bad = sub[(sub["status"] != "ok") & in_good]  # a ranked row's cases that did not end ok: listed apart
    if not some_bad.empty:
        good = good.join(some_bad.groupby(ROW, sort=False, dropna=False).agg(
            not_ok_cases=("seed", "size"), not_ok_status=("status", "first"), not_ok_reason=("error", "first"),
            not_ok_tuned=("tuned", "first")))  # fmt: skip
    bad_cases = sub[(sub["status"] != "ok") & ~in_good]
    bad = bad_cases.groupby(ROW, sort=False, dropna=False).agg(
        seeds=("seed", "nunique"),
        url=("url", "first"),
        label=("label", "first"),
        impl_spec=("impl_spec", "first"),
        params_json=("params_json", "first"),
        status=("status", "first"),
        reason=("error", "first"),
        tuned=("tuned", "first"),
        expected_invalid=("expected_invalid", lambda s: s.iloc[0] if (s != "").all() else ""),
    )
    bad["ok_cases"] = 0
    rows = pd.concat([good, bad]).join(counts)
    if not ok.empty and metrics:
        rows = rows.join(_row_noise(ok, metrics, specs))
    return rows.reset_index()


def _rank_board(board: pd.DataFrame, metric: str | None, higher: bool | None) -> None:
    """Rank the ok rows of one board by ``metric`` with ties within noise (in place); a row alone on its board
    has nothing to be ranked against and gets no rank."""
    column = METRIC + (metric or "")
    if metric is None or higher is None or column not in board:
        return
    ranked = board.index[(board["status"] == "ok") & board[column].notna()]
    if len(ranked) < 2:
        return
    noise = board.loc[ranked, NOISE + metric] if NOISE + metric in board else pd.Series(np.nan, index=ranked)
    ranks = ranking.tied_ranks(board.loc[ranked, column].tolist(), noise.tolist(), higher)
    board.loc[ranked, "rank"] = ranks
    board.loc[ranked, "tied"] = pd.Series(ranks, index=ranked).duplicated(keep=False)
    board.loc[ranked, "no_spread"] = noise.isna()  # such a row ties with every row whose value it does not equal


def _pareto_board(board: pd.DataFrame, objectives: Mapping[str, bool]) -> None:
    """The Pareto layer of the board's ok rows over the objectives every one of them has (in place)."""
    ok = board.index[board["status"] == "ok"]
    used = [m for m in objectives if METRIC + m in board and len(ok) and board.loc[ok, METRIC + m].notna().all()]
    board.loc[:, "objectives"] = ", ".join(used)
    if not used or len(ok) < 2:  # a row alone has no layer to be in
        return
    values = board.loc[ok, [METRIC + m for m in used]].to_numpy(dtype=float).tolist()
    noise_columns = [board[NOISE + m] if NOISE + m in board else pd.Series(np.nan, index=board.index) for m in used]
    noise = pd.concat(noise_columns, axis=1).loc[ok]
    board.loc[ok, "pareto"] = ranking.pareto_layers(values, noise.to_numpy(dtype=float).tolist(),
                                                    [objectives[m] for m in used])  # fmt: skip
    board.loc[ok, "pareto_no_spread"] = noise.isna().any(axis=1).to_numpy()  # never dominated through that one


def leaderboard(
    df: pd.DataFrame, task: str, specs: TaskSpecs, rank_by: str | None = None, latest_only: bool = False
) -> pd.DataFrame:
    """Per board (dataset, scale, params, hardware): one row per implementation's code, ranked by ``rank_by``
    (default: the primary metric) with ties within noise, and its Pareto layer over the task's objectives."""
    sub = df[df["task"] == task]
    if latest_only:
        sub = latest(sub)
    if sub.empty:
        return sub
    columns = metric_columns(sub)
    metrics = [c for c, present in zip(columns, sub[columns].notna().any().to_numpy(), strict=True) if present]
    rows = _rows(sub, metrics, specs)
    metric = rank_by or primary_metric(specs, task)
    higher = direction(specs, task, metric) if metric else None
    directions = {m: direction(specs, task, m) for m in ranking.objectives(specs.get(task))}
    rows = rows.assign(rank=np.nan, tied=False, no_spread=False, pareto=np.nan, pareto_no_spread=False)
    rows = rows.assign(rank_by=metric if higher is not None else "")
    rows = rows.assign(objectives="")
    boards = []
    for _, board in rows.groupby(GROUP, sort=False, dropna=False):
        board = board.copy()
        _rank_board(board, metric, higher)
        _pareto_board(board, {m: up for m, up in directions.items() if up is not None})
        boards.append(board)
    out = pd.concat(boards)
    order = {p: i for i, p in enumerate(sorted(out["params_json"].unique(), key=params_order))}
    out["params_order"] = out["params_json"].map(order)
    keys = ["task", "dataset", "scale", "params_order", "params", "hardware", "rank", "pareto", "label"]
    return out.sort_values(keys, na_position="last").drop(columns="params_order").reset_index(drop=True)


def _spread(side: pd.Series, metric: str, per_process: bool = False, pooled: float = 0.0) -> float | None:
    """One side's spread of ``metric``: its repeated-measurement spread, else the std over its seeds; None when it
    has neither (one seed, nothing repeated). For a metric whose value belongs to the process that measured it
    (``per_process``: a timing, or a CPU memory reading, ``_process_pool``) compared between runs, the range over its
    cases' processes (its seeds, which a run spreads over its length: ``ctbench.run.selection.cases``), at least its
    repeated-measurement spread and at least ``pooled`` of its value (the range processes typically span on this
    machine, ``pooled_ranges``): the calls of one process share one stretch of the machine's state and one heap, so
    their spread alone says nothing of another run's, and a few processes that agreed by chance say little more;
    None with one process."""
    values = [side.get(col) for col in (SPREAD + metric, METRIC + metric + "#std", METRIC + metric + "#range")]
    recorded, std, span = (None if v is None or pd.isna(v) else float(v) for v in values)
    if per_process:
        value = _value(side, metric)
        typical = pooled * abs(value) if pooled and not math.isnan(value) else 0.0
        return None if span is None else max(span, recorded or 0.0, typical)
    return recorded if recorded is not None else std


def _noise(
    ra: pd.Series,
    rb: pd.Series,
    metric: str,
    floor: float = 0.0,
    absolute: float = 0.0,
    per_process: bool = False,
    pooled: float = 0.0,
) -> float:
    """The noise a change of ``metric`` must exceed to count: the sum of the two sides' spreads (``_spread``; for a
    ``per_process`` metric, their ranges over processes, each at least ``pooled`` of its value), at least ``floor``
    (relative) of the first side's value (the between-run floor, ``Floors``) unless both spreads are 0 (an exact
    value), and at least ``absolute`` (a reading never exact between runs, ``Floors.reading``); NaN when either side
    has no spread, since a side without spread says nothing about how far its value would move on a rerun."""
    spreads = [_spread(side, metric, per_process, pooled) for side in (ra, rb)]
    if any(s is None for s in spreads):
        return np.nan
    within = float(sum(s for s in spreads if s is not None))
    measured = within > 0  # spreads of 0 on both sides: an exact value (a count, a size), judged as it is
    if absolute:  # a reading that is never exact between runs, whatever its spread within one
        return max(within, floor * abs(_value(ra, metric)), absolute)
    return max(within, floor * abs(_value(ra, metric))) if floor and measured else within


PROBE = "probe_time_s"  # the engine's machine probe (``ctbench.run.probe``)
RSS_FLOOR = 0.25  # step memory read through a CPU process's RSS moves this much between runs (relative)...
RSS_FLOOR_BYTES = 4 * 2**20  # ...and at least this much (``Floors``)
RSS_READING = "peak_memory_bytes"  # the engine's memory readings end so: never exact on a CPU, whatever their spread
DRIFT_QUANTILES = (0.1, 0.9)  # the machine's speed range over a run: these quantiles of the probe's timings


@dataclass(frozen=True)
class Floors:
    """What two runs' timings and memory readings move by between runs, beyond the spread within a case (a case's
    repeated calls share one stretch of the machine's load; another run does not):

    - ``timing``: the range of the machine probe (``ctbench.run.probe``, the same workload before and after every
      case) over both runs' cases, ``q90 / q10 - 1`` of its timings: how far the machine's speed wandered while
      they ran. A timing's change below it is the machine's as likely as the code's.
    - ``processes``: per metric of a task, and per pool of metrics (a unit, or CPU memory readings), the range over
      processes that the per-process metrics of both runs typically span (``pooled_ranges``): the least a timing's
      or an RSS reading's own range over processes counts for, on each side (``_spread``, ``typical_range``).
    - ``rss``, ``rss_bytes``: ``RSS_FLOOR`` of the value and at least ``RSS_FLOOR_BYTES`` for memory read from a CPU
      process's resident set (page-granular, shared with the allocator's caching), applied even where a case's
      repeated readings agreed; none for CUDA's allocator peak, which does not move. Measured: back-to-back smoke
      runs of the same code on a busy CPU moved a case's step memory by up to 23%; a quiet run and one beside the
      test suite moved readings of a few pages by up to 16 KiB (4 KiB to 20 KiB) and readings of 2.7 to 8.1 MiB by
      up to 2.9 MiB (75%).
    """

    timing: float = 0.0
    rss: float = 0.0
    rss_bytes: float = 0.0
    processes: Mapping[str, float] = field(default_factory=dict)  # pool -> pooled range (``pooled_ranges``)

    @classmethod
    def of(cls, *frames: pd.DataFrame) -> Floors:
        columns = [f[METRIC + PROBE] for f in frames if METRIC + PROBE in f]
        probes = pd.concat(columns).dropna() if columns else pd.Series(dtype=float)
        probes = probes[probes > 0]
        timing = 0.0
        if len(probes) >= 5:
            low, high = probes.quantile(list(DRIFT_QUANTILES))
            timing = float(high / low - 1) if low > 0 else 0.0
        cpu = any(("device" in f and f["device"].astype(str).str.startswith("cpu").any()) for f in frames)
        return cls(timing, RSS_FLOOR if cpu else 0.0, RSS_FLOOR_BYTES if cpu else 0.0)

    def of_metric(self, unit: str | None, device: str) -> float:
        """The relative floor of a metric in ``unit`` measured on ``device``."""
        if unit == "s":
            return self.timing
        if unit == "bytes" and device.startswith("cpu"):
            return self.rss
        return 0.0

    def typical_range(self, task: str, metric: str, pool: str) -> float:
        """The range over processes that ``metric`` of ``task`` typically spans: its own metric's where that has
        enough points, else its pool's (``pooled_ranges``); 0 when neither has."""
        return self.processes.get(f"{task}:{metric}", self.processes.get(pool, 0.0))

    def reading(self, metric: str, device: str) -> float:
        """The absolute floor of ``metric`` measured on ``device``: ``rss_bytes`` for the engine's memory readings on
        a CPU, which are never exact between runs, whatever their spread within one."""
        return self.rss_bytes if _rss_reading(metric, device) else 0.0


def _rss_reading(metric: str, device: str) -> bool:
    """Whether ``metric`` measured on ``device`` is read from a CPU process's resident set."""
    return metric.endswith(RSS_READING) and device.startswith("cpu")


def _process_pool(specs: TaskSpecs, task: str, metric: str, device: str) -> str | None:
    """The pool of a metric whose value belongs to the process that measured it, so that between runs it spreads as
    far as processes do (``_spread``, ``pooled_ranges``): its unit for a metric of the machine's state
    (``_machine_state``); ``"rss"`` for a memory reading from a CPU process's resident set, which its heap and the
    allocator's caching move from one process to the next (backprop's step at depth 128 read 34 to 47 MiB in four
    runs of the same code, one process each). None for any other metric."""
    if _rss_reading(metric, device):
        return "rss"
    return _metric_unit(specs, task, metric) if _machine_state(specs, task, metric) else None


POOLED_MIN_POINTS = 5  # points with a range over processes, in a metric or pool, before their typical range is used


def _metric_unit(specs: TaskSpecs, task: str, metric: str) -> str:
    """A metric's declared unit; an undeclared ``..._time_s`` is in seconds."""
    return _unit(specs, task, metric) or ("s" if metric.endswith("_time_s") else "")


def pooled_ranges(specs: TaskSpecs, *by_case: pd.DataFrame) -> dict[str, float]:
    """Per metric of a task (``"task:metric"``) and per pool (``_process_pool``: a unit, or CPU memory readings),
    the median over the points of ``by_case`` (``_by_case`` frames) of a per-process metric's range over its
    processes relative to its median (the probe excepted): how far the processes of one point typically spread on
    this machine, pooled over the points of that metric or pool, as a pooled variance is. A point whose few
    processes agreed by chance is judged by it, not by its own small range alone. Those with fewer than
    ``POOLED_MIN_POINTS`` such points get none. A metric's processes spread alike (bilevel's sub-millisecond SGD
    step typically spans 43% where all timings span 31%), so its own range comes first
    (``Floors.typical_range``)."""
    relative: dict[str, list[float]] = {}
    for frame in by_case:
        if frame.empty:
            continue
        tasks = frame.index.get_level_values(CASE.index("task"))
        devices = frame["device"].astype(str) if "device" in frame else pd.Series("", index=frame.index)
        for col in metric_columns(frame):
            metric = col[len(METRIC) :]
            if metric == PROBE or col + "#range" not in frame:
                continue
            ratio = (frame[col + "#range"] / frame[col].abs()).to_numpy()
            for task, device, value in zip(tasks, devices, ratio, strict=True):
                pool = _process_pool(specs, task, metric, device)
                if math.isfinite(value) and pool is not None:
                    relative.setdefault(pool, []).append(float(value))
                    relative.setdefault(f"{task}:{metric}", []).append(float(value))
    return {pool: float(np.median(v)) for pool, v in relative.items() if len(v) >= POOLED_MIN_POINTS}


def _verdict(higher: bool | None, a: float, b: float, noise: float) -> str:
    """``missing`` without a value on both sides; ``no spread`` without a noise (NaN); ``within noise`` when
    |b - a| is at most ``noise`` (the sum of the sides' spreads); beyond it ``better`` or ``worse`` by the metric's
    direction, ``changed`` for a metric with none."""
    if math.isnan(a) or math.isnan(b):
        return "missing"
    if math.isnan(noise):
        return "no spread"
    if abs(b - a) <= noise + 1e-12 * max(abs(a), abs(b)):
        return "within noise"
    if higher is None:
        return "changed"
    return "better" if (b > a) == higher else "worse"


def _machine_state(specs: TaskSpecs, task: str, metric: str) -> bool:
    """Whether ``metric`` moves with the machine's state from one stretch of time to another: a time, an energy, a
    power, a rate or a ratio of times (``hardware`` in its task's description; an undeclared metric when it is a
    ``..._time_s``). Memory is not: it has its own floors (``Floors``)."""
    declared = hardware_metrics(specs.get(task)).get(metric)
    machine = metric.endswith("_time_s") if declared is None else declared
    return machine and _unit(specs, task, metric) != "bytes"


def _unit(specs: TaskSpecs, task: str, metric: str) -> str | None:
    spec = specs.get(task, {}).get("metrics", {}).get(metric)
    return spec.get("unit") if isinstance(spec, Mapping) else None


def machine_explains(
    specs: TaskSpecs, task: str, metric: str, ra: pd.Series, rb: pd.Series, floor: float = 0.0
) -> bool:
    """Whether the machine probe accounts for a timing's change: the probe itself moved beyond the sum of its two
    spreads, and the timing (unit ``s``; a rate derived from one is rescaled the other way), divided by the probe's
    ratio b / a, is within the timing's noise (at least ``floor`` of its value: how far the machine's speed wandered
    over the runs, ``Floors.timing``) plus the probe's relative noise. Such a change is the machine's: a loaded
    machine does not slow every workload as much as the probe, and what the probe leaves unexplained must still
    exceed the machine's wander to be the code's."""
    pa, pb = _value(ra, PROBE), _value(rb, PROBE)
    rate = derived_from(metric) is not None
    if metric == PROBE or math.isnan(pa) or math.isnan(pb) or pa <= 0 or pb <= 0:
        return False
    if not rate and _unit(specs, task, metric) != "s":
        return False
    spread_a, spread_b = _spread(ra, PROBE), _spread(rb, PROBE)
    noise = _noise(ra, rb, metric, floor)
    if spread_a is None or spread_b is None or math.isnan(noise) or abs(pb - pa) <= spread_a + spread_b:
        return False
    va, vb = _value(ra, metric), _value(rb, metric)
    factor = pb / pa  # above 1: the machine was slower for run b
    adjusted = vb * factor if rate else vb / factor
    return abs(adjusted - va) <= noise + (spread_a / pa + spread_b / pb) * abs(va)


def _by_case(df: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds per case key; the std and the range (max - min) over seeds of each metric kept for the
    noise estimate (NaN with one seed)."""
    key = CASE
    cols = metric_columns(df) + [c for c in df.columns if c.startswith(SPREAD)]
    ok = df[df["status"] == "ok"].groupby(key)
    med = ok[cols].median()
    std = ok[metric_columns(df)].std().add_suffix("#std")
    spans = (ok[metric_columns(df)].max() - ok[metric_columns(df)].min()).where(ok[metric_columns(df)].count() > 1)
    status = df.groupby(key)["status"].agg(lambda s: "ok" if (s == "ok").all() else s[s != "ok"].iloc[0])
    out = med.join(std).join(spans.add_suffix("#range")).join(status, how="outer")
    if "device" in df:
        out = out.join(df.groupby(key)["device"].agg(lambda d: ",".join(sorted(set(map(str, d))))))
    return out


def _value(row: pd.Series, metric: str) -> float:
    value = row.get(METRIC + metric, np.nan)
    return np.nan if value is None or pd.isna(value) else float(value)


def _case_verdict(
    specs: TaskSpecs, task: str, metric: str, ra: pd.Series, rb: pd.Series, floors: Floors = Floors()
) -> tuple[str, float]:
    """The verdict on one metric of one case, and the noise it used. A rate derived from a timing follows its
    timing: within noise or without spread exactly when the timing is, else judged beyond noise like it, and the
    machine's exactly when its timing is (the two never disagree)."""
    device = str(ra.get("device") or "")

    def noise_of(name: str) -> float:
        floor = floors.of_metric(_unit(specs, task, name), device)
        pool = _process_pool(specs, task, name, device)
        pooled = floors.typical_range(task, name, pool) if pool is not None else 0.0
        return _noise(ra, rb, name, floor, floors.reading(name, device), per_process=pool is not None, pooled=pooled)

    va, vb = _value(ra, metric), _value(rb, metric)
    noise = noise_of(metric)
    verdict = _verdict(direction(specs, task, metric), va, vb, noise)
    source = derived_from(metric)
    if source and verdict != "missing" and not (math.isnan(_value(ra, source)) or math.isnan(_value(rb, source))):
        timing = _verdict(False, _value(ra, source), _value(rb, source), noise_of(source))
        if timing in ("within noise", "no spread"):
            verdict = timing
        elif verdict in ("within noise", "no spread"):
            verdict = _verdict(direction(specs, task, metric), va, vb, 0.0)
    judged = source if source and not math.isnan(_value(ra, source)) and not math.isnan(_value(rb, source)) else metric
    floor = floors.of_metric(_unit(specs, task, judged), device)
    if verdict in ("better", "worse", "changed") and (
        metric == PROBE or machine_explains(specs, task, judged, ra, rb, floor)
    ):
        verdict = "machine"  # a rate is the machine's exactly when its timing is; the probe only ever the machine's
    return verdict, noise


def compare(a: pd.DataFrame, b: pd.DataFrame, specs: TaskSpecs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metric-by-metric change from run(s) ``a`` to run(s) ``b`` for every shared case, and the unshared cases.

    A case is its medians over seeds. The verdict on a metric is ``better`` or ``worse`` (``changed`` for a metric
    with no direction) only when |b - a| exceeds the sum of the two sides' spreads (each side's repeated-measurement
    spread, else the std of its values over seeds; for a time, a rate, an energy or a ratio of times, its range over
    the processes that measured it, ``_spread``); ``within noise`` when it does not;
    ``no spread`` when either side has no spread at all (one seed, nothing repeated), whatever the change: such a
    value says nothing about how far a rerun would move it; ``machine`` for a timing whose change the machine probe
    shows as well (``machine_explains``). No metric is taken as exact by its unit: a metric known to be exact
    records a spread of 0, and is then judged exactly. ``missing`` when a side lacks the value. A rate derived from
    a timing follows its timing (``_case_verdict``). Timings and CPU memory readings must also move beyond what
    they move between runs (``Floors``: the machine probe's range over both runs, the RSS floor)."""
    ca, cb = _by_case(a), _by_case(b)
    floors = dataclasses.replace(Floors.of(a, b), processes=pooled_ranges(specs, ca, cb))
    shared = ca.index.intersection(cb.index)
    rows = []
    for key in shared:
        ra, rb = ca.loc[key], cb.loc[key]
        for col in sorted(set(metric_columns(a)) | set(metric_columns(b))):
            metric = col[len(METRIC) :]
            va, vb = _value(ra, metric), _value(rb, metric)
            if math.isnan(va) and math.isnan(vb):
                continue
            verdict, noise = _case_verdict(specs, key[0], metric, ra, rb, floors)
            rows.append(
                dict(
                    zip(CASE, key, strict=True),
                    metric=metric,
                    a=va,
                    b=vb,
                    change=(vb - va) / abs(va) if va else np.nan,
                    noise=noise,
                    status_a=ra["status"],
                    status_b=rb["status"],
                    verdict=verdict,
                )
            )
    only = [("a", k) for k in ca.index.difference(cb.index)] + [("b", k) for k in cb.index.difference(ca.index)]
    unshared = pd.DataFrame([dict(zip(CASE, k, strict=True), only_in=s) for s, k in only])
    return pd.DataFrame(rows), unshared


class PairingError(ValueError):
    """Two implementations that cannot be paired: a name that no case or several versions of code carry."""


PAIR = ["task", "scale", "dataset", "params_json"]  # two implementations' cases are paired at these (and the seed)


def _impl_cases(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """The cases of the implementation ``name``: by its label (``impl [submission]``, ``impl @hash``), else by its
    name where that names one version of code."""
    by_label = df[df["label"] == name]
    if not by_label.empty:
        return by_label
    cases = df[df["impl"] == name]
    if cases.empty:
        found = ", ".join(sorted(dict.fromkeys(df["label"]))) or "none"
        raise PairingError(f"--impl {name}: no case of that implementation in these runs; implementations: {found}")
    labels = sorted(dict.fromkeys(cases["label"]))
    if len(labels) > 1:
        raise PairingError(f"--impl {name}: {len(labels)} versions in these runs ({', '.join(labels)}); name one")
    return cases


def impl_sides(df: pd.DataFrame, a: str, b: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cases of implementation ``a`` and of ``b`` (each named by its name or label) as two frames that
    ``compare`` pairs at the same task, scale, dataset, parameters and seed: both sides carry the implementation
    ``"a vs b"``, so the impl no longer keys them. Where both sides ran a point, a seed that only one side ran
    gets its own key (``depth=8, seed 1``), so no median is over seeds the other side lacks and ``compare`` lists
    it as unshared, like a point that only one side ran."""
    if a == b:
        raise PairingError(f"--impl {a} twice: name two different implementations")
    sides = [_impl_cases(df, a), _impl_cases(df, b)]
    seeds = [set(map(tuple, side[[*PAIR, "seed"]].astype(str).to_numpy().tolist())) for side in sides]
    points = [{key[:-1] for key in keys} for keys in seeds]
    both_points, both_seeds = points[0] & points[1], seeds[0] & seeds[1]
    submissions = ["/".join(dict.fromkeys(side["submission"].astype(str))) for side in sides]
    paired = []
    for side in sides:
        keys = [tuple(k) for k in side[[*PAIR, "seed"]].astype(str).to_numpy().tolist()]
        alone = pd.Series([k[:-1] in both_points and k not in both_seeds for k in keys], index=side.index)
        params = side["params"].where(~alone, side["params"] + ", seed " + side["seed"].astype(str))
        paired.append(
            side.assign(
                impl=f"{a} vs {b}",
                submission="reference" if submissions == ["reference"] * 2 else " vs ".join(submissions),
                params=params,
            )
        )
    return paired[0], paired[1]
