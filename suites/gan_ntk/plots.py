"""The task page's plots.

- ``particles_field_<scale>``: for 2-D data, the target (orange), final particles (purple) and the velocity
  field of the last discriminator on a grid (arrows), one panel per (dataset, method): the paper's figures 2
  and 3. Only the most recent run's record of each (hardware, dataset, method) is drawn.
- ``distance_curves``: Sinkhorn divergence, MMD and energy distance against iterations, one line per method.
- ``ntk_error_vs_width``: the empirical NTK's relative error against width (log-log), with the slope -1/2.
- ``speed``: generator iterations per second and kernel entries per second, per method and dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

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
        grid = sns.relplot(
            data=curves,
            x="iteration",
            y="value",
            hue="impl",
            style="impl",
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
        figures["distance_curves"] = grid.figure

    ok = cases[cases["status"] == "ok"].copy()
    if ok.empty:
        return figures
    ok["experiment"] = [json.loads(p).get("experiment") for p in ok["params_json"]]
    ok["setting"] = ok["scale"] + " | " + ok["hardware"]
    kernel = ok[(ok["experiment"] == "ntk_accuracy")].copy()
    if "metric.ntk_rel_error" in kernel and not kernel.empty:
        kernel["width"] = [json.loads(p)["width"] for p in kernel["params_json"]]
        grid = sns.relplot(
            data=kernel,
            x="width",
            y="metric.ntk_rel_error",
            hue="setting",
            style="impl",
            kind="line",
            markers=True,
            height=3.2,
            aspect=1.4,
        )
        widths = np.array(sorted(kernel["width"].unique()), dtype=float)
        anchor = kernel.loc[kernel["width"] == widths[0], "metric.ntk_rel_error"].median()
        ax = grid.ax
        (reference,) = ax.plot(widths, anchor * np.sqrt(widths[0] / widths), "k--", lw=1, label="slope -1/2")
        ax.legend(handles=[reference], fontsize=7, loc="lower left")
        grid.set(xscale="log", yscale="log", xlabel="width", ylabel="relative NTK error (Frobenius)")
        figures["ntk_error_vs_width"] = grid.figure
    speed = ok[ok["experiment"] == "dynamics"]
    columns = [c for c in ("metric.iterations_per_s", "metric.kernel_entries_per_s") if c in speed]
    if columns and not speed.empty:
        long = speed.melt(id_vars=["impl", "dataset", "setting"], value_vars=columns, var_name="metric")
        long["metric"] = long["metric"].str.removeprefix("metric.")
        grid = sns.catplot(
            data=long,
            x="dataset",
            y="value",
            hue="impl",
            col="metric",
            row="setting",
            kind="bar",
            height=3.0,
            aspect=1.4,
            sharey=False,
        )
        grid.set(yscale="log")
        grid.set_titles("{col_name} | {row_name}", size=8)
        grid.set_xticklabels(rotation=20)
        figures["speed"] = grid.figure
    return figures
