"""Aggregation with pandas: run files -> one table of cases -> leaderboards and comparisons.

Everything here reads the run documents alone: units, directions and primary metrics come from the task
descriptions each run file carries (``ctbench.describe``), never from the tasks' code, so a run of an older commit
or of a task that is not installed renders the same.

A leaderboard ranks implementations within one *group* (task, dataset, scale, params, hardware): rows of different
datasets or scales are never ranked together. Seeds of the same case are summarised by their median; failed,
timed-out and invalid cases stay in the table with their reason but get no rank.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ctbench.env import hardware_label

METRIC = "metric."  # prefix of metric columns
SPREAD = "spread."  # prefix of spread columns
PARAM = "param."  # prefix of parameter columns
GROUP = ["task", "dataset", "scale", "params", "hardware"]  # never ranked across these
ROW = [*GROUP, "impl", "submission"]
CASE = ["task", "impl", "submission", "scale", "dataset", "params"]  # a case up to its seed
# the columns of every ``cases_frame`` (metric, spread and param columns follow), even one of no case
FRAME_COLUMNS = "run_id run_path created hardware task impl submission reference url scale dataset params".split()
FRAME_COLUMNS += "params_json seed status error checks_failed checks_total".split()

TaskSpecs = Mapping[str, Mapping[str, Any]]  # task name -> its description (``ctbench.describe``)


def params_label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "-"


def task_specs(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each task's description, from the newest run that carries one."""
    specs: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: (r["created"], r["run_id"])):
        specs.update({name: dict(spec) for name, spec in (run.get("tasks") or {}).items()})
    return specs


def direction(specs: TaskSpecs, task: str, metric: str) -> bool | None:
    """True if higher is better, False if lower, None when informative or unknown."""
    spec = specs.get(task, {}).get("metrics", {}).get(metric)
    return spec.get("higher_is_better") if spec else None


def primary_metric(specs: TaskSpecs, task: str) -> str | None:
    return specs.get(task, {}).get("primary_metric")


def _param_value(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def cases_frame(runs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per case of every run: metrics, spreads and parameters as columns. A case's hardware is the one it
    ran on (cases of one run may run on several machines), else its run's."""
    rows = []
    for run in runs:
        run_hardware = hardware_label(run["env"])
        for case in run["cases"]:
            hardware = case.get("hardware") if isinstance(case.get("hardware"), str) else run_hardware
            row = {
                "run_id": run["run_id"],
                "run_path": run.get("_path", ""),
                "created": run["created"],
                "hardware": hardware,
                "task": case["task"],
                "impl": case["impl"],
                "submission": case["submission"],
                "reference": case["submission"] == "reference",
                "url": case.get("manifest", {}).get("url", ""),
                "scale": case["scale"],
                "dataset": case["dataset"],
                "params": params_label(case["params"]),
                "params_json": json.dumps(case["params"], sort_keys=True),
                "seed": case["seed"],
                "status": case["status"],
                "error": (case.get("error") or "").strip().splitlines()[0] if case.get("error") else "",
                "checks_failed": sum(not c["passed"] for c in case["checks"].values()),
                "checks_total": len(case["checks"]),
            }
            row.update({PARAM + k: _param_value(v) for k, v in case["params"].items()})
            row.update({METRIC + k: (np.nan if v is None else v) for k, v in case["metrics"].items()})
            row.update({SPREAD + k: v for k, v in case.get("spread", {}).items()})
            rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=FRAME_COLUMNS)


def metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(METRIC)]


def leaderboard(df: pd.DataFrame, task: str, specs: TaskSpecs) -> pd.DataFrame:
    """Per (dataset, scale, params, hardware) group: one row per implementation, ranked by the primary metric."""
    sub = df[df["task"] == task]
    if sub.empty:
        return sub
    metrics = [c for c in metric_columns(sub) if sub[c].notna().any()]
    ok = sub[sub["status"] == "ok"]
    good = ok.groupby(ROW, sort=False).agg(
        seeds=("seed", "nunique"),
        url=("url", "first"),
        **{c: (c, "median") for c in metrics},
    )
    good["status"], good["reason"] = "ok", ""
    bad_cases = sub[(sub["status"] != "ok") & ~sub.set_index(ROW).index.isin(good.index)]
    bad = bad_cases.groupby(ROW, sort=False).agg(
        seeds=("seed", "nunique"),
        url=("url", "first"),
        status=("status", "first"),
        reason=("error", "first"),
    )
    board = pd.concat([good, bad]).reset_index()
    board["rank"] = np.nan
    primary = primary_metric(specs, task)
    higher = direction(specs, task, primary) if primary else None
    if primary and higher is not None and METRIC + primary in board:
        ranked = board["status"] == "ok"
        column = METRIC + primary
        board.loc[ranked, "rank"] = board[ranked].groupby(GROUP)[column].rank(ascending=not higher, method="min")
    return board.sort_values([*GROUP, "rank"], na_position="last").reset_index(drop=True)


def _noise(ra: pd.Series, rb: pd.Series, metric: str) -> float:
    """The larger measured spread of the two sides: the repeated-measurement spread, else the std over seeds."""
    spreads = []
    for side in (ra, rb):
        for col in (SPREAD + metric, METRIC + metric + "#std"):
            value = side.get(col)
            if value is not None and not pd.isna(value):
                spreads.append(float(value))
                break
    return max(spreads, default=0.0)


def _verdict(higher: bool | None, a: float, b: float, noise: float) -> str:
    if math.isnan(a) or math.isnan(b):
        return "missing"
    if abs(b - a) <= 2 * noise + 1e-12 * max(abs(a), abs(b)):
        return "within noise"
    if higher is None:
        return "changed"
    return "better" if (b > a) == higher else "worse"


def _by_case(df: pd.DataFrame) -> pd.DataFrame:
    """Median over seeds per case key; the std over seeds of each metric kept for the noise estimate."""
    key = CASE
    cols = metric_columns(df) + [c for c in df.columns if c.startswith(SPREAD)]
    med = df[df["status"] == "ok"].groupby(key)[cols].median()
    std = df[df["status"] == "ok"].groupby(key)[metric_columns(df)].std().add_suffix("#std")
    status = df.groupby(key)["status"].agg(lambda s: "ok" if (s == "ok").all() else s[s != "ok"].iloc[0])
    return med.join(std).join(status, how="outer")


def compare(a: pd.DataFrame, b: pd.DataFrame, specs: TaskSpecs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metric-by-metric change from run(s) ``a`` to run(s) ``b`` for every shared case, and the unshared cases."""
    ca, cb = _by_case(a), _by_case(b)
    shared = ca.index.intersection(cb.index)
    rows = []
    for key in shared:
        ra, rb = ca.loc[key], cb.loc[key]
        for col in sorted(set(metric_columns(a)) | set(metric_columns(b))):
            va, vb = float(ra.get(col, np.nan)), float(rb.get(col, np.nan))
            if math.isnan(va) and math.isnan(vb):
                continue
            metric = col[len(METRIC) :]
            noise = _noise(ra, rb, metric)
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
                    verdict=_verdict(direction(specs, key[0], metric), va, vb, noise),
                )
            )
    only = [("a", k) for k in ca.index.difference(cb.index)] + [("b", k) for k in cb.index.difference(ca.index)]
    unshared = pd.DataFrame([dict(zip(CASE, k, strict=True), only_in=s) for s, k in only])
    return pd.DataFrame(rows), unshared
