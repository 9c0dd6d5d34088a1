"""The regression-history page: asv's results folder (``.asv/results``) read offline, one seaborn figure per
benchmark across commits, steps flagged by asv's own step detection.

asv's published site loads its scripts from CDNs and is blank without a network; this page reads the same result
files with asv's own loader (``asv.results``) and draws static PNGs beside the other pages. Per benchmark: one line
per parameter combination (and per machine and environment, when there are several), the commits in the order of
their dates (the results record each commit's date; the repository is not consulted), asv's 99% confidence
interval as a band where it is finite. Each series goes through ``asv.step_detect.detect_steps`` (weighted as
``asv publish`` weighs points: 2 / the width of the 99% interval) and ``detect_regressions`` with asv's default
threshold of 5%: every level change of at least that size is listed, and those asv calls regressions (an upward
step that is not undone later: slower, or more memory) are drawn in red.

As ``asv publish`` does, a result recorded for another version of a benchmark than ``benchmarks.json`` holds (the
benchmark's code changed) is left out, and counted on the page. A file that cannot be read is skipped and named.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ctbench.boards.cells import number
from ctbench.figures.palette import GUIDE, Style, complete
from ctbench.figures.plotting import plain_text
from report.fmt import slug

THRESHOLD = 0.05  # asv's default ``regressions_thresholds``
MAX_TICKS = 24  # commit labels on an axis; more commits are labelled every k-th


@dataclass(frozen=True)
class Flag:
    """A level change of one series between two commits; ``regression`` when asv's detection calls it one."""

    benchmark: str
    series: str
    before_commit: str
    after_commit: str
    before: float
    after: float
    regression: bool
    unit: str

    @property
    def change(self) -> float:
        return (self.after - self.before) / abs(self.before) if self.before else math.inf

    @property
    def text(self) -> str:
        return f"{number(self.before, self.unit)} → {number(self.after, self.unit)}"


@dataclass
class Benchmark:
    name: str
    unit: str
    kind: str
    plot: str = ""  # the PNG, relative to the pages
    flags: list[Flag] = field(default_factory=list)
    commits: int = 0
    series: int = 0


@dataclass
class History:
    """What the page shows; ``error`` when the folder could not be read at all."""

    folder: str
    files: int = 0
    benchmarks: list[Benchmark] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    outdated: int = 0  # results of another version of their benchmark, left out as asv does
    machines: list[str] = field(default_factory=list)
    commits: int = 0
    error: str = ""

    @property
    def regressions(self) -> int:
        return sum(f.regression for b in self.benchmarks for f in b.flags)


def _weight(stats: Any) -> float | None:
    """asv publish's weight of a point: 2 / the width of its 99% confidence interval, None when unknown."""
    if not isinstance(stats, dict):
        return None
    a, b = stats.get("ci_99_a"), stats.get("ci_99_b")
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not math.isfinite(a - b) or a == b:
        return None
    return 2 / abs(b - a)


def _param_text(value: Any) -> str:
    text = str(value)
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def _meta(folder: Path) -> dict[str, dict[str, Any]]:
    """``benchmarks.json``: name -> its description (unit, type, param_names, version); {} when absent."""
    try:
        doc = json.loads((folder / "benchmarks.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in doc.items() if isinstance(v, dict)} if isinstance(doc, dict) else {}


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def load(folder: Path) -> tuple[pd.DataFrame, dict[str, dict[str, Any]], History]:
    """Every result point under ``folder``: one row per (file, benchmark, parameter combination)."""
    from asv.results import Results, iter_results_paths

    history = History(str(folder))
    meta = _meta(folder)
    rows = []
    for root, name, machine in iter_results_paths(str(folder)):
        path = Path(root) / name
        try:
            results = Results.load(str(path), machine_name=machine)
            keys = list(results.get_all_result_keys())
            history.files += 1
            for key in keys:
                rows += _points(results, key, machine, meta.get(key, {}), history)
        except Exception as exc:  # asv raises UserError, KeyError, TypeError... on a malformed file: skip it
            history.skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
    return pd.DataFrame(rows), meta, history


def _points(results: Any, key: str, machine: str, meta: Mapping[str, Any], history: History) -> list[dict]:
    version = results.benchmark_version.get(key) if isinstance(results.benchmark_version, dict) else None
    if meta.get("version") and version and version != meta["version"]:
        history.outdated += 1
        return []
    params = results.get_result_params(key) or []
    values = results.get_result_value(key, params)
    stats = results.get_result_stats(key, params) or [None] * len(values)
    names = list(meta.get("param_names") or [f"p{i}" for i in range(len(params))])
    combos = list(itertools.product(*params)) or [()]
    rows = []
    for combo, value, stat in zip(combos, values, stats, strict=False):
        label = ", ".join(f"{n}={_param_text(v)}" for n, v in zip(names, combo, strict=False)) or "-"
        stat = stat if isinstance(stat, dict) else {}
        rows.append(
            {
                "benchmark": key,
                "params": label,
                "where": f"{machine} / {results.env_name}",
                "commit": str(results.commit_hash),
                "date": int(results.date or 0),
                "value": _finite(value),
                "low": _finite(stat.get("ci_99_a")),
                "high": _finite(stat.get("ci_99_b")),
                "weight": _weight(stat),
            }
        )
    return rows


def flags(series: pd.DataFrame, benchmark: str, label: str, unit: str) -> list[Flag]:
    """The level changes asv's step detection finds in one series (rows in commit order)."""
    from asv.step_detect import detect_regressions, detect_steps

    y = [None if math.isnan(v) else v for v in series["value"]]
    if sum(v is not None for v in y) < 2:
        return []
    w = [None if (x is None or (isinstance(x, float) and math.isnan(x))) else x for x in series["weight"]]
    steps = detect_steps(y, w)
    _, _, regressions = detect_regressions(steps, THRESHOLD)
    regressed = {(before, after) for before, after, _, _ in regressions or []}
    commits = list(series["commit"])
    out = []
    for (_, right, value, _, err), (left, _, next_value, _, next_err) in itertools.pairwise(steps):
        if abs(next_value - value) <= max(THRESHOLD * abs(value), err, next_err):
            continue
        before, after = right - 1, left
        out.append(
            Flag(
                benchmark,
                label,
                commits[before],
                commits[after],
                value,
                next_value,
                (before, after) in regressed,
                unit,
            )
        )
    return out


def _ticks(commits: Sequence[str], dates: Sequence[int]) -> tuple[list[int], list[str]]:
    every = max(1, math.ceil(len(commits) / MAX_TICKS))
    positions = list(range(0, len(commits), every))
    labels = [f"{commits[i][:8]}\n{datetime.fromtimestamp(dates[i] / 1000, timezone.utc):%Y-%m-%d}" for i in positions]
    return positions, labels


def axis_unit(values: pd.Series, unit: str) -> tuple[float, str]:
    """A divisor and label that put the axis in readable units: ms or µs for seconds, MiB for bytes."""
    top = float(values.abs().max()) if values.notna().any() else 0.0
    steps = {"seconds": ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")),
             "bytes": ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "bytes"))}.get(unit)  # fmt: skip
    if not steps or top == 0:
        return 1.0, unit
    return next(((f, u) for f, u in steps if top >= f), steps[-1])


CASE_ID = re.compile(r"^case=[^:\[]+:(?P<impl>[^\[]+)\[")  # ctbench.run.smoke.BenchCase.id: task:impl[point]


def implementation(params: str) -> str | None:
    """The implementation a series measures, from its parameter text (``case=task:impl[point]``), else None."""
    found = CASE_ID.match(params)
    return found["impl"] if found else None


def series_styles(params: Sequence[str], styles: Mapping[str, Style] | None) -> dict[str, Style]:
    """Each series' style: its implementation's in the report (``styles``, completed for implementations they
    lack), ``palette.GUIDE``'s grey for a series of no implementation (a harness or report benchmark)."""
    impls = {p: implementation(p) for p in params}
    chosen = complete(styles or {}, [(i, False) for i in sorted({i for i in impls.values() if i})])
    return {p: chosen[i] if i else GUIDE for p, i in impls.items()}


def figure(frame: pd.DataFrame, order: Sequence[str], dates: Sequence[int], name: str, unit: str,
           found: Sequence[Flag], styles: Mapping[str, Style] | None = None) -> Any:  # fmt: skip
    """One benchmark across commits: a line per parameter combination in its implementation's colour and marker
    (the report's ``styles``; line style: machine / environment where there are several)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    position = {c: i for i, c in enumerate(order)}
    factor, shown = axis_unit(frame["value"], unit)
    data = frame.assign(position=frame["commit"].map(position))
    data[["value", "low", "high"]] = data[["value", "low", "high"]] / factor
    several = data["where"].nunique() > 1
    fig, ax = plt.subplots(figsize=(10, 4.2))
    looks = series_styles(sorted(set(data["params"])), styles)
    colours = {p: look.colour for p, look in looks.items()}
    if several:  # the line style tells machines apart, the colour implementations
        style = {"style": "where", "markers": True, "dashes": True}
    else:
        style = {"style": "params", "markers": {p: look.marker for p, look in looks.items()}, "dashes": False}
    sns.lineplot(data=data, x="position", y="value", hue="params", palette=colours, ax=ax, estimator=None, sort=True,
                 **style)  # fmt: skip
    for (params, _), series in data.groupby(["params", "where"], sort=False):
        band = series.dropna(subset=["low", "high"]).sort_values("position")
        if len(band) > 1:
            ax.fill_between(band["position"], band["low"], band["high"], color=colours[params], alpha=0.12,
                            linewidth=0)  # fmt: skip
    for flag in found:
        x = position[flag.after_commit] - 0.5
        colour, style = ("#b42318", "--") if flag.regression else ("#1a7f37", ":")
        ax.axvline(x, color=colour, linestyle=style, linewidth=1.2)
        ax.annotate(f"{100 * flag.change:+.0f}%", (x, 1.0), xycoords=("data", "axes fraction"), color=colour,
                    fontsize=8, ha="center", va="bottom")  # fmt: skip
    positions, labels = _ticks(order, dates)
    ax.set_xticks(positions, labels, fontsize=7)
    ax.set_xlim(-0.5, max(len(order) - 0.5, 0.5))
    ax.set_xlabel("commit (in the order of the commits' dates)")
    ax.set_ylabel(f"{name.rsplit('.', 1)[-1]} ({shown})" if shown else name.rsplit(".", 1)[-1])
    top = pd.concat([data["value"], data["high"]]).max()
    ax.set_ylim(0, 1.12 * top if top > 0 else 1.0)  # from zero: a step's size is read against the level
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend() is not None:
        if set(data["params"]) == {"-"} and not several:  # one unparameterised line: nothing to tell apart
            ax.get_legend().remove()
        else:
            ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def build(
    folder: Path, target: Callable[[str], Path], styles: Mapping[str, Style] | None = None
) -> tuple[History, list[str]]:
    """Read ``folder``, draw each benchmark into ``target("plots/history-<name>.png")`` (each implementation in its
    style among the report's ``styles``); return the page's data and the problems met (a plot that failed), which
    the report lists without stopping."""
    if not folder.is_dir():
        return History(str(folder), error="no such folder (run `asv run` first, or name it with --asv-results)"), []
    frame, meta, history = load(folder)
    problems = []
    if frame.empty:
        return history, problems
    import matplotlib.pyplot as plt

    history.machines = sorted(set(frame["where"]))
    history.commits = frame["commit"].nunique()
    for name, rows in frame.groupby("benchmark", sort=True):
        unit = str(meta.get(name, {}).get("unit", ""))
        kind = str(meta.get(name, {}).get("type", ""))
        dated = rows.groupby("commit")["date"].max().sort_values(kind="stable")
        order, dates = list(dated.index), list(dated.values)
        bench = Benchmark(str(name), unit, kind, commits=len(order))
        for (label, where), series in rows.groupby(["params", "where"], sort=True):
            bench.series += 1
            ordered = series.assign(_at=series["commit"].map({c: i for i, c in enumerate(order)})).sort_values("_at")
            bench.flags += flags(ordered, str(name), f"{label} ({where})" if len(history.machines) > 1 else label, unit)
        try:
            with plain_text():  # benchmark and parameter names as they are, never as mathtext
                fig = figure(rows, order, dates, str(name), unit, bench.flags, styles)
                src = f"plots/history-{slug(str(name))}-{len(history.benchmarks)}.png"
                fig.savefig(target(src), dpi=110, bbox_inches="tight")
            bench.plot = src
        except Exception as exc:  # one benchmark's figure does not stop the page
            problems.append(f"history: {name}: {type(exc).__name__}: {exc}")
        finally:
            plt.close("all")
        history.benchmarks.append(bench)
    return history, problems


def render(site: Any, folder: Path | str, styles: Mapping[str, Style] | None = None) -> list[str]:
    """Write ``history.html`` (and its figures, each implementation in its style among the report's ``styles``)
    into the site being built; return the problems met."""
    history, problems = build(Path(folder), site.add, styles)
    site.render("history.html.j2", "history.html", history=history)
    return problems
