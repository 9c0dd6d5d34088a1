"""The task page's figures that a ``LinePlot`` cannot declare (they draw the records' series, not metrics):

- ``particles_field_<scale>``: for 2-D data, the target (grey), final particles (in the method's colour) and the
  velocity field of the last discriminator on a grid (arrows), one panel per (dataset, method): the paper's figures
  2 and 3. Only the most recent run's record of each (hardware, dataset, method) is drawn.
- ``distance_curves``: Sinkhorn divergence, MMD and energy distance against iterations: the median curve over
  seeds with its band where a point ran several, else one line per case.

A method is named and drawn as the report's boards and other figures name and draw it. The NTK error against width
and the speeds are declarative (``GanNTK.line_plots``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ctbench.figures import palette
from ctbench.figures.plotting import line_figures, title
from ctbench.figures.records import labelled, left_out, named, series_rows

DISTANCES = ("sinkhorn", "mmd", "energy")


def _latest_2d(records: Sequence[Mapping[str, Any]]) -> dict[tuple, Mapping[str, Any]]:
    """{(scale, hardware, dataset, label): record} of the most recent ok 2-D dynamics record of each."""
    latest: dict[tuple, Mapping[str, Any]] = {}
    for r in sorted(records, key=lambda r: r.get("run_id", "")):
        if r["status"] == "ok" and "field_vectors" in r.get("series", {}):
            latest[(r["scale"], r["hardware"], r["dataset"], r["label"])] = r
    return latest


def _particles(ax: Any, record: Mapping[str, Any], style: palette.Style) -> None:
    s = record["series"]
    target, final = np.asarray(s["target"]), np.asarray(s["final_particles"])
    grid, vec = np.asarray(s["field_points"]), np.asarray(s["field_vectors"])
    ax.scatter(target[:, 0], target[:, 1], s=6, color=palette.GUIDE.colour, alpha=0.5, linewidths=0)
    ax.scatter(final[:, 0], final[:, 1], s=6, color=style.colour, marker=style.marker, alpha=0.7, linewidths=0,
               gid=record["label"])  # fmt: skip
    ax.quiver(grid[:, 0], grid[:, 1], vec[:, 0], vec[:, 1], color="0.3", angles="xy", width=0.004)
    ax.set_xticks([])
    ax.set_yticks([])


def _particle_figures(records: Sequence[Mapping[str, Any]], note: str) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    latest = _latest_2d(records)
    styles = palette.complete(palette.current(), {(r["label"], r["submission"] != "reference") for r in records})
    figures = {}
    for scale, hardware in sorted({k[:2] for k in latest}):
        keys = sorted(k for k in latest if k[:2] == (scale, hardware))
        datasets = sorted({k[2] for k in keys})
        methods = sorted({k[3] for k in keys}, key=lambda label: (styles[label].submission, label))
        fig, axes = plt.subplots(
            len(datasets), len(methods), figsize=(3.2 * len(methods), 3.2 * len(datasets)), squeeze=False
        )
        for i, dataset in enumerate(datasets):
            for j, label in enumerate(methods):
                ax = axes[i][j]
                ax.set_title(title(f"{label} | {dataset}", 3), fontsize=8, parse_math=False)
                record = latest.get((scale, hardware, dataset, label))
                if record is None:
                    ax.axis("off")
                    continue
                _particles(ax, record, styles[label])
        what = "target (grey), final particles (the method's colour) and the discriminator's velocity field"
        fig.suptitle(f"{what} ({scale} | {hardware})" + (f"\n{note}" if note else ""), fontsize=9)
        fig.tight_layout()
        figures[f"particles_field_{scale}"] = fig
    return figures


def _panel(record: Mapping[str, Any], distance: str) -> str:
    return f"{distance} | {record['dataset']} | {record['scale']} | {record['hardware']}"


def task_plots(cases: pd.DataFrame, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The particle fields and the distance curves of the dynamics cases; those that are not ok are left out, and
    each figure says how many."""
    import matplotlib

    matplotlib.use("Agg")
    dynamics = labelled([r for r in records if r["params"].get("experiment") == "dynamics"], cases)
    note = left_out(dynamics)
    figures = _particle_figures(dynamics, note)
    curves = series_rows(dynamics, DISTANCES, _panel)
    curves = curves[curves["y"] > 0]
    if not curves.empty:
        drawn = line_figures(curves, "x", "y", xlabel="iteration", ylabel="distance to the target", yscale="log",
                             col="panel", units="case", note=note)  # fmt: skip
        figures.update(named("distance_curves", drawn))
    return figures
