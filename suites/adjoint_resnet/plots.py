"""The task page's plots: step memory, step time and gradient error against depth, one line per method."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

PANELS = {
    "step_memory_vs_depth": ("metric.step_peak_memory_bytes", "step working memory (MB)", 1e-6),
    "step_time_vs_depth": ("metric.step_time_s", "step time (s)", 1.0),
    "grad_error_vs_depth": ("metric.grad_rel_error", "relative gradient error", 1.0),
}


def depth_plots(cases: pd.DataFrame) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ok = cases[cases["status"] == "ok"].copy()
    if ok.empty:
        return {}
    ok["depth"] = [json.loads(p).get("depth") for p in ok["params_json"]]
    ok["setting"] = ok["scale"] + " | " + ok["dataset"] + " | " + ok["hardware"]
    figures = {}
    for name, (column, label, factor) in PANELS.items():
        if column not in ok or ok[column].isna().all():
            continue
        frame = ok.dropna(subset=[column]).assign(value=lambda d, c=column, f=factor: d[c] * f)
        frame = frame[frame["value"] > 0]
        if frame.empty:
            continue
        grid = sns.relplot(
            data=frame,
            x="depth",
            y="value",
            hue="impl",
            style="impl",
            col="setting",
            kind="line",
            markers=True,
            dashes=False,
            height=3.2,
            aspect=1.3,
            facet_kws={"sharey": False},
            estimator="median",
            errorbar=None,
        )
        grid.set(xscale="log", yscale="log", xlabel="depth N", ylabel=label)
        for ax in grid.axes.flat:
            ax.xaxis.set_major_locator(LogLocator(base=2))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        grid.set_titles("{col_name}")
        figures[name] = grid.figure
    return figures
