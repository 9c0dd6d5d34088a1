"""The task page's figures that a ``LinePlot`` cannot declare (they draw the records' series, not metrics):

- ``particles_field_<scale>``: for 2-D data, the target (orange), final particles (purple) and the velocity
  field of the last discriminator on a grid (arrows), one panel per (dataset, method): the paper's figures 2
  and 3. Only the most recent run's record of each (hardware, dataset, method) is drawn.
- ``distance_curves``: Sinkhorn divergence, MMD and energy distance against iterations, one line per method.

The NTK error against width and the speeds are declarative (``GanNTK.line_plots``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ctbench.figures.plotting import finish, hue

DISTANCES = ("sinkhorn", "mmd", "energy")


def _setting(record: Mapping[str, Any]) -> str:
    return f"{record['scale']} | {record['hardware']}"


def _latest_2d(records: Sequence[Mapping[str, Any]]) -> dict[tuple, Mapping[str, Any]]:
    """{(scale, hardware, dataset, impl): record} of the most recent ok 2-D dynamics record of each."""
    latest: dict[tuple, Mapping[str, Any]] = {}
    for r in sorted(records, key=lambda r: r.get("run_id", "")):
        if r["status"] == "ok" and "field_vectors" in r.get("series", {}):
            latest[(r["scale"], r["hardware"], r["dataset"], r["impl"])] = r
    return latest


def _particle_figures(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    import matplotlib.pyplot as plt
    import seaborn as sns

    latest = _latest_2d(records)
    figures = {}
    for scale, hardware in sorted({k[:2] for k in latest}):
        keys = sorted(k for k in latest if k[:2] == (scale, hardware))
        datasets = sorted({k[2] for k in keys})
        impls = sorted({k[3] for k in keys})
        fig, axes = plt.subplots(
            len(datasets), len(impls), figsize=(3.2 * len(impls), 3.2 * len(datasets)), squeeze=False
        )
        for i, dataset in enumerate(datasets):
            for j, impl in enumerate(impls):
                ax = axes[i][j]
                record = latest.get((scale, hardware, dataset, impl))
                ax.set_title(f"{impl} | {dataset}", fontsize=8)
                if record is None:
                    ax.axis("off")
                    continue
                s = record["series"]
                target, final = np.asarray(s["target"]), np.asarray(s["final_particles"])
                grid, vec = np.asarray(s["field_points"]), np.asarray(s["field_vectors"])
                sns.scatterplot(
                    x=target[:, 0],
                    y=target[:, 1],
                    s=6,
                    color="tab:orange",
                    alpha=0.5,
                    ax=ax,
                    label="target",
                    linewidth=0,
                )
                sns.scatterplot(
                    x=final[:, 0],
                    y=final[:, 1],
                    s=6,
                    color="tab:purple",
                    alpha=0.6,
                    ax=ax,
                    label="particles",
                    linewidth=0,
                )
                ax.quiver(grid[:, 0], grid[:, 1], vec[:, 0], vec[:, 1], color="0.3", angles="xy", width=0.004)
                ax.legend(fontsize=6, loc="upper right")
                ax.set_xticks([])
                ax.set_yticks([])
        fig.suptitle(f"final particles and the discriminator's velocity field ({scale} | {hardware})", fontsize=9)
        fig.tight_layout()
        figures[f"particles_field_{scale}"] = fig
    return figures


def _curves(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in records:
        if r["status"] != "ok" or r["params"].get("experiment") != "dynamics":
            continue
        for name in DISTANCES:
            for it, value in r.get("series", {}).get(name, []):
                rows.append(
                    {
                        "impl": r["impl"],
                        "dataset": r["dataset"],
                        "setting": _setting(r),
                        "run": r.get("run_id", ""),
                        "seed": r["seed"],
                        "distance": name,
                        "iteration": it,
                        "value": value,
                    }
                )
    return pd.DataFrame(rows)


def task_plots(cases: pd.DataFrame, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    figures = _particle_figures(records)
    curves = _curves(records)
    if not curves.empty:
        curves = curves[curves["value"] > 0]
        curves["panel"] = curves["distance"] + " | " + curves["dataset"] + " | " + curves["setting"]
        names = sorted(curves["impl"].unique())
        colours = hue(names)[0]
        grid = sns.relplot(
            data=curves,
            x="iteration",
            y="value",
            hue="impl",
            hue_order=names,
            palette=colours,
            col="panel",
            col_wrap=3,
            kind="line",
            units="run",
            estimator=None,
            height=2.8,
            aspect=1.3,
            facet_kws={"sharey": False},
        )
        grid.set(yscale="log")
        grid.set_titles("{col_name}", size=8)
        finish(grid.figure)
        figures["distance_curves"] = grid.figure

    return figures
