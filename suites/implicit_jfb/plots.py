"""The task page's figures that a ``LinePlot`` cannot declare: bars per case (method and grid point) of the
backward's time and of the gradient's gap to the exact implicit one, 1 - cosine, on a log scale."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ctbench.figures.plotting import setting


def plots(cases: pd.DataFrame) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    ok = cases[cases["status"] == "ok"].copy()
    if ok.empty:
        return {}
    ok["setting"] = setting(ok)
    ok["case"] = ok["impl"] + " (" + ok["params"] + ")"
    if "metric.grad_cosine" in ok:
        ok["gradient_gap"] = (1 - ok["metric.grad_cosine"]).clip(lower=1e-12)
    figures = {}
    for name, column, label in (
        ("backward_time", "metric.backward_time_s", "backward time (s)"),
        ("grad_cosine", "gradient_gap", "1 - cosine with the exact implicit gradient"),
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
        grid.set(xlabel=label, ylabel="", xscale="log")
        grid.set_titles("{col_name}")
        figures[name] = grid.figure
    return figures
