"""The task page's plots: step memory against forward iterations, backward time, gradient cosine."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from ctbench.plotting import line_panels, setting


def plots(cases: pd.DataFrame) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    ok = cases[cases["status"] == "ok"].copy()
    if ok.empty:
        return {}
    ok["setting"] = setting(ok)
    ok["solver"] = [json.loads(p).get("solver", "-") for p in ok["params_json"]]
    ok["case"] = ok["impl"] + " (" + ok["params"] + ")"
    if "metric.grad_cosine" in ok:
        ok["gradient_gap"] = (1 - ok["metric.grad_cosine"]).clip(lower=1e-12)
    figures = {}
    memory = "metric.step_peak_memory_bytes"
    if memory in ok and ok[memory].notna().any():
        frame = ok.dropna(subset=[memory]).assign(memory_mb=lambda d: d[memory] / 1e6)
        figures["memory_vs_forward_iterations"] = line_panels(
            frame,
            "metric.forward_iterations",
            "memory_mb",
            style="solver",
            xlabel="evaluations of T per forward",
            ylabel="step working memory (MB)",
        )
    for name, column, label, log in (
        ("backward_time", "metric.backward_time_s", "backward time (s)", True),
        ("grad_cosine", "gradient_gap", "1 - cosine with the exact implicit gradient", True),
    ):
        frame = ok.dropna(subset=[column]) if column in ok else ok.iloc[:0]
        if frame.empty:
            continue
        grid = sns.catplot(
            data=frame,
            y="case",
            x=column,
            col="setting",
            kind="bar",
            height=0.35 * frame["case"].nunique() + 1.5,
            aspect=2.0,
            sharex=False,
            color="tab:blue",
        )
        grid.set(xlabel=label, ylabel="", **({"xscale": "log"} if log else {}))
        grid.set_titles("{col_name}")
        figures[name] = grid.figure
    return figures
