"""A task's plots, saved as PNG files beside the pages: the declarative ``LinePlot``s its run files describe
(drawn from the run files alone), then the figures of its custom hook where the task is installed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ctbench.plotting import draw
from report.fmt import slug

# task name, its cases frame and records -> named figures (``Task.plots``), supplied by the command line
CustomPlots = Callable[[str, pd.DataFrame, Sequence[Mapping[str, Any]]], Mapping[str, Any]]


@dataclass(frozen=True)
class Plot:
    name: str
    src: str  # path relative to the pages


def _figures(
    task: str, spec: Mapping[str, Any] | None, cases: pd.DataFrame, records: Sequence, custom: CustomPlots | None
) -> tuple[list[tuple[str, Any]], list[str]]:
    figures, errors = [], []
    for plot in (spec or {}).get("plots", []):
        try:
            figure = draw(plot, cases)
        except Exception as exc:  # a bad description is shown on the page; the rest still builds
            errors.append(f"{plot.get('name', '?')}: {type(exc).__name__}: {exc}")
            continue
        if figure is not None:
            figures.append((str(plot.get("name", "plot")), figure))
    if custom is not None:
        try:
            figures += list(custom(task, cases, records).items())
        except Exception as exc:  # a task's plotting bug is shown on its page
            errors.append(f"{type(exc).__name__}: {exc}")
    return figures, errors


def save_plots(
    task: str,
    spec: Mapping[str, Any] | None,
    cases: pd.DataFrame,
    records: Sequence[Mapping[str, Any]],
    target: Callable[[str], Path],
    custom: CustomPlots | None = None,
) -> tuple[list[Plot], str]:
    """Draw the task's plots, write each to ``target("plots/<name>.png")``; return the plots and an error text.

    A plot that fails to draw does not stop the report: its page shows the error beside the other figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures, errors = _figures(task, spec, cases, records, custom)
    plots = []
    for name, fig in figures:
        src = f"plots/{slug(task)}-{slug(name)}-{len(plots)}.png"
        try:
            fig.savefig(target(src), dpi=110, bbox_inches="tight")
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            plots.append(Plot(name, src))
        finally:
            plt.close(fig)
    plt.close("all")
    return plots, "; ".join(errors)
