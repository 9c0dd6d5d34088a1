"""Plot helpers shared by the tasks' pages: one line per implementation, one panel per setting.

A *setting* is what must never be mixed in one curve: scale, dataset and hardware.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def setting(cases: pd.DataFrame) -> pd.Series:
    """``scale | dataset | hardware`` for every row of a cases frame."""
    return cases["scale"] + " | " + cases["dataset"] + " | " + cases["hardware"]


def line_panels(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    xlabel: str,
    ylabel: str,
    style: str = "impl",
    xscale: str = "linear",
    yscale: str = "linear",
) -> Any:
    """A seaborn figure: ``y`` against ``x``, a line per implementation (median over seeds), a panel per setting.

    ``frame`` needs a ``setting`` column (see ``setting``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    grid = sns.relplot(
        data=frame,
        x=x,
        y=y,
        hue="impl",
        style=style,
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
    grid.set(xscale=xscale, yscale=yscale, xlabel=xlabel, ylabel=ylabel)
    grid.set_titles("{col_name}")
    return grid.figure
