"""A task's plots (``Task.plots``), saved as PNG files beside the pages."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ctbench.task import Task
from report.fmt import slug


@dataclass(frozen=True)
class Plot:
    name: str
    src: str  # path relative to the pages


def save_plots(
    task: Task, cases: pd.DataFrame, records: Sequence[Mapping[str, Any]], target: Callable[[str], Path]
) -> tuple[list[Plot], str]:
    """Call ``task.plots``, write each figure to ``target("plots/<name>.png")``; return plots and an error.

    A task whose plotting raises does not stop the report: its page shows the error instead of the figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        figures = task.plots(cases, records)
    except Exception as exc:  # a task's plotting bug is shown on its page; the rest of the report still builds
        plt.close("all")
        return [], f"{type(exc).__name__}: {exc}"
    plots, error = [], ""
    for name, fig in figures.items():
        src = f"plots/{slug(task.name)}-{slug(name)}-{len(plots)}.png"
        try:
            fig.savefig(target(src), dpi=110, bbox_inches="tight")
        except Exception as exc:
            error = f"{name}: {type(exc).__name__}: {exc}"
        else:
            plots.append(Plot(name, src))
        finally:
            plt.close(fig)
    return plots, error
