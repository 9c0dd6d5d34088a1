"""The task page's figures that a ``LinePlot`` cannot declare: per case (method and grid point), the backward's
time and the gradient's gap to the exact implicit one, 1 - cosine, on a log scale: the median over seeds, whiskers
from the lowest to the highest seed, in the method's colour and marker (dots, not bars: a bar's length means
nothing on a log axis)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ctbench.figures.plotting import finish, hue, setting

GAP_FLOOR = 1e-12  # 1 - cosine at or below this (the exact method against itself) is drawn here, and said so


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
        ok["gradient_gap"] = (1 - ok["metric.grad_cosine"]).clip(lower=GAP_FLOOR)
    figures = {}
    for name, column, label in (
        ("backward_time", "metric.backward_time_s", "backward time (s)"),
        ("grad_cosine", "gradient_gap", f"1 - cosine with the exact implicit gradient (floor {GAP_FLOOR:g})"),
    ):
        frame = ok.dropna(subset=[column]) if column in ok else ok.iloc[:0]
        if frame.empty:
            continue
        names = sorted(frame["impl"].unique())
        colours, markers = hue(names)
        grid = sns.catplot(
            data=frame.sort_values("case"),
            y="case",
            x=column,
            hue="impl",
            hue_order=names,
            palette=colours,
            col="setting",
            kind="point",
            markers=[markers[n] for n in names],
            linestyle="none",
            estimator="median",
            errorbar=("pi", 100),
            height=0.35 * frame["case"].nunique() + 1.5,
            aspect=2.0,
            sharex=False,
        )
        grid.set(xlabel=label, ylabel="", xscale="log")
        grid.set_titles("{col_name}")
        finish(grid.figure)
        figures[name] = grid.figure
    return figures
