"""Plots drawn from a cases frame alone: the renderer of the tasks' declarative ``LinePlot``s, and the helpers
custom plot hooks share (one line per implementation, one panel per setting).

A *setting* is what must never be mixed in one curve: scale, dataset and hardware.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ctbench.table import METRIC, PARAM


def setting(cases: pd.DataFrame) -> pd.Series:
    """``scale | dataset | hardware`` for every row of a cases frame."""
    return cases["scale"] + " | " + cases["dataset"] + " | " + cases["hardware"]


def _plain_log_ticks(figure: Any, xlog: bool, ylog: bool) -> None:
    """Log axes labelled 8, 64, 256 (not 2^3 or 6x10^1)."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    for ax in figure.axes:
        for axis, log in ((ax.xaxis, xlog), (ax.yaxis, ylog)):
            if not log:
                continue
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            formatter = ScalarFormatter()
            formatter.set_scientific(False)
            axis.set_major_formatter(formatter)
            axis.set_minor_formatter(NullFormatter())


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
    col: str = "setting",
    kind: str = "line",
) -> Any:
    """A seaborn figure: ``y`` against ``x``, a line per implementation (median over seeds), a panel per ``col``.

    ``frame`` needs the ``col`` column (``setting`` by default, see ``setting``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    common = {"data": frame, "x": x, "y": y, "hue": "impl", "col": col, "height": 3.2, "aspect": 1.3}
    if kind == "line":
        figure = sns.relplot(**common, kind="line", style=style, markers=True, dashes=False,
                             facet_kws={"sharey": False}, estimator="median", errorbar=None)  # fmt: skip
    else:
        figure = sns.catplot(**common, kind="bar", sharey=False, estimator="median", errorbar=None)
    if kind == "line":  # a bar plot's x axis holds categories: setting a scale would renumber them
        figure.set(xscale=xscale, yscale=yscale)
    else:
        figure.set(yscale=yscale)
    figure.set(xlabel=xlabel, ylabel=ylabel)
    figure.set_titles("{col_name}")
    return figure.figure


def _column(name: str) -> str:
    return name if name.startswith(PARAM) else METRIC + name


def draw(plot: Mapping[str, Any], cases: pd.DataFrame) -> Any | None:
    """The figure a ``LinePlot`` description (a dict, as stored in run files) asks for, or None when no ok case
    carries both of its axes."""
    x, y = _column(plot["x"]), _column(plot["y"])
    frame = cases[cases["status"] == "ok"]
    for name, value in (plot.get("where") or {}).items():
        column = PARAM + name
        frame = frame[frame[column] == value] if column in frame else frame.iloc[0:0]
    if x not in frame or y not in frame:
        return None
    frame = frame.dropna(subset=[x, y]).assign(value=lambda d: d[y] * float(plot.get("scale_y", 1.0)))
    if plot.get("xlog"):
        frame = frame[pd.to_numeric(frame[x], errors="coerce") > 0]
    if plot.get("ylog"):
        frame = frame[frame["value"] > 0]
    if frame.empty:
        return None
    frame = frame.assign(setting=setting(frame))
    facet = plot.get("facet")
    if facet and PARAM + facet in frame:
        frame["setting"] = frame["setting"] + " | " + facet + "=" + frame[PARAM + facet].astype(str)
    figure = line_panels(
        frame,
        x,
        "value",
        xlabel=plot.get("xlabel") or plot["x"],
        ylabel=plot.get("ylabel") or plot["y"],
        xscale="log" if plot.get("xlog") else "linear",
        yscale="log" if plot.get("ylog") else "linear",
        kind=plot.get("kind", "line"),
    )
    _plain_log_ticks(figure, bool(plot.get("xlog")), bool(plot.get("ylog")))
    return figure
