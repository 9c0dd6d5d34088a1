"""The task page's figures that a ``LinePlot`` cannot declare: per grid point (solver and tolerance), each method's
backward time and the gradient's gap to the exact implicit one, 1 - cosine, on a log scale: the median over seeds,
whiskers over the 0.2-0.8 quantiles of the seeds (the lowest to the highest below five seeds), in the method's
colour and marker (dots, not bars: a bar's length means nothing on a log axis)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ctbench.figures.plotting import left_out_note, line_figures, setting
from ctbench.figures.records import named

GAP_FLOOR = 1e-12  # 1 - cosine at or below this (the exact method against itself) is drawn here, and said so


def plots(cases: pd.DataFrame) -> dict[str, Any]:
    """The backward time and the gradient gap of the ok cases; the figures say how many others were left out."""
    ok = cases[cases["status"] == "ok"].copy()
    if ok.empty:
        return {}
    note = left_out_note(int((cases["status"] != "ok").sum()))
    ok["setting"] = setting(ok)
    if "metric.grad_cosine" in ok:
        ok["gradient_gap"] = (1 - ok["metric.grad_cosine"]).clip(lower=GAP_FLOOR)
    figures: dict[str, Any] = {}
    for name, column, label in (
        ("backward_time", "metric.backward_time_s", "backward time (s)"),
        ("grad_cosine", "gradient_gap", f"1 - cosine with the exact implicit gradient (floor {GAP_FLOOR:g})"),
    ):
        frame = ok.dropna(subset=[column]) if column in ok else ok.iloc[:0]
        if frame.empty:
            continue
        drawn = line_figures(frame, "params", column, xlabel="the case's parameters", ylabel=label, yscale="log",
                             kind="bar", note=note)  # fmt: skip
        figures.update(named(name, drawn))
    return figures
