"""The task page's plots: step memory, step time and gradient error against depth, one line per method."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from ctbench.plotting import line_panels, setting

PANELS = {
    "step_memory_vs_depth": ("metric.step_peak_memory_bytes", "step working memory (MB)", 1e-6),
    "step_time_vs_depth": ("metric.step_time_s", "step time (s)", 1.0),
    "grad_error_vs_depth": ("metric.grad_rel_error", "relative gradient error", 1.0),
}


def depth_plots(cases: pd.DataFrame) -> dict[str, Any]:
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ok = cases[cases["status"] == "ok"].copy()
    if ok.empty:
        return {}
    ok["depth"] = [json.loads(p).get("depth") for p in ok["params_json"]]
    ok["setting"] = setting(ok)
    figures = {}
    for name, (column, label, factor) in PANELS.items():
        if column not in ok or ok[column].isna().all():
            continue
        frame = ok.dropna(subset=[column]).assign(value=lambda d, c=column, f=factor: d[c] * f)
        frame = frame[frame["value"] > 0]
        if frame.empty:
            continue
        figure = line_panels(frame, "depth", "value", xlabel="depth N", ylabel=label, xscale="log", yscale="log")
        for ax in figure.axes:
            ax.xaxis.set_major_locator(LogLocator(base=2))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        figures[name] = figure
    return figures
