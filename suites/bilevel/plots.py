"""Figures of the bilevel task's page that ``LinePlot`` cannot declare, drawn from the ok cases' ``series``: convergence
curves (against time and samples: per implementation, the median curve over seeds with its band) and the time to come
within 1e-3 of the run's lowest h (the paper's convention). The cost ratio, the samples and the time to h* + 1e-3
are the task's ``line_plots``.

h(x) - h* can be negative where h* is a local minimum (hyperparameter selection): a panel with such values is
drawn on a symmetric log axis (linear within ``LINEAR_WITHIN`` of 0), never clipped to a floor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ctbench.figures.plotting import line_figures
from ctbench.figures.records import labelled, left_out, named, series_rows
from suites.bilevel.checks import to_run_best

CURVES = {
    "suboptimality_vs_time": ("clock (s)", "h(x) - h*", True),
    "suboptimality_vs_samples": ("samples processed", "h(x) - h*", True),
    "grad_norm2_vs_samples": ("samples processed", "||grad h(x)||^2", True),
    "test_accuracy_vs_time": ("clock (s)", "test accuracy (hyper-cleaning)", False),
}
LINEAR_WITHIN = 1e-12  # a symmetric log axis is linear within this distance of 0
RUN_BEST = "time to come within 1e-3 of the run's lowest h (the paper's convention; no point: never)"


def _panel(machines: int) -> Any:
    """A panel per problem, scale and dataset, and per machine where the records ran on several."""

    def name(r: Mapping[str, Any], _series: str) -> str:
        where = f" | {r.get('hardware', '?')}" if machines > 1 else ""
        return f"{r['params'].get('problem', '?')} ({r['scale']}) {r['dataset']}{where}"

    return name


def _run_best_times(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per ok case (``labelled``), the time to come within 1e-3 of the lowest h that its run reached in its
    setting; cases that never did are left out."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        if r.get("status") == "ok" and r.get("series", {}).get("suboptimality_vs_time"):
            key = (r.get("run_id"), r["scale"], r["params"].get("problem"), r["dataset"], r.get("hardware", "?"))
            groups.setdefault(key, []).append(r)
    machines = {key[-1] for key in groups}
    rows = [
        {
            "label": c["label"],
            "submission": c["submission"],
            "group": f"{problem} ({scale})" + (f" {hardware}" if len(machines) > 1 else ""),
            "time": t,
            "panel": RUN_BEST,
        }
        for (_, scale, problem, _, hardware), cases in groups.items()
        for c, t in zip(cases, to_run_best(cases), strict=True)
    ]
    frame = pd.DataFrame(rows, columns=["label", "submission", "group", "time", "panel"])
    return frame[frame["time"] < float("inf")]


def figures(cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One figure per curve (a panel per problem, dataset and scale, and machine where there are several; per
    implementation, the median of its seeds' curves with their band, ``line_figures``), and the time to come within 1e-3
    of the run's lowest h (median over seeds, whiskers over the 0.2-0.8 quantiles of the seeds, the lowest to the
    highest below five). Cases that are not ok are left out, and each figure says how many. ``cases`` (the report's
    cases frame) names the implementations as the boards do."""
    records = labelled(records, cases)
    note = left_out(records)
    machines = len({r.get("hardware", "?") for r in records})
    out: dict[str, Any] = {}
    for name, (xlabel, ylabel, log) in CURVES.items():
        frame = series_rows(records, [name], _panel(machines))
        if frame.empty:
            continue
        drawn = line_figures(
            frame, "x", "y", xlabel=xlabel, ylabel=ylabel, col="panel", units="case", note=note,
            xscale="log" if name.endswith("_samples") else "linear",  # the full-batch baseline's steps cost far more
            yscale="log" if log else "linear", linthresh=LINEAR_WITHIN,
        )  # fmt: skip
        out.update(named(name, drawn))
    run_best = _run_best_times(records)
    if len(run_best):
        drawn = line_figures(
            run_best, "group", "time", xlabel="", ylabel="time (s)", yscale="log", col="panel", kind="bar", note=note
        )
        out.update(named("time_to_run_best_s", drawn))
    return out
