"""The task page's plots: 2-D samples drawn by inverting each trained flow, test NLL against the true density's,
and step memory against the number of series terms."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ctbench.plotting import line_panels, setting


def _with_params(cases: pd.DataFrame) -> pd.DataFrame:
    ok = cases[cases["status"] == "ok"].copy()
    params = [json.loads(p) for p in ok["params_json"]]
    ok["terms"] = [p.get("terms") for p in params]
    ok["c"] = [p.get("c") for p in params]
    ok["setting"] = setting(ok)
    return ok


def _samples_figure(records: Sequence[Mapping[str, Any]]):
    import matplotlib.pyplot as plt

    chosen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in records:
        if r["status"] == "ok" and "samples" in r.get("series", {}):
            key = (f"{r['scale']} | {r['dataset']} | {r['hardware']}", r["impl"])
            if key not in chosen or r["params"]["terms"] < chosen[key]["params"]["terms"]:
                chosen[key] = r
    if not chosen:
        return None
    rows = sorted({k[0] for k in chosen})
    cols = sorted({k[1] for k in chosen})
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.6 * len(cols), 2.6 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (row, col) not in chosen:
                ax.axis("off")
                continue
            series = chosen[(row, col)]["series"]
            for name, colour in (("data", "0.7"), ("samples", "C0")):
                pts = series.get(name, [])
                if pts:
                    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=2, c=colour, label=name)
            ax.set(xlim=(-5, 5), ylim=(-5, 5))
            if i == 0:
                ax.set_title(col, fontsize=9)
            if j == 0:
                ax.set_ylabel(row.replace(" | ", "\n"), fontsize=7)
    axes[0][0].legend(loc="lower left", fontsize=7, markerscale=3)
    fig.suptitle("samples F^-1(z), z ~ N(0, I) (blue) and test data (grey)")
    fig.tight_layout()
    return fig


def task_plots(cases: pd.DataFrame, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    figures: dict[str, Any] = {}
    samples = _samples_figure(records)
    if samples is not None:
        figures["samples_2d"] = samples
    ok = _with_params(cases)
    if ok.empty:
        return figures
    if "metric.test_nll" in ok and ok["metric.test_nll"].notna().any():
        frame = ok.dropna(subset=["metric.test_nll"])
        grid = sns.catplot(
            data=frame,
            x="impl",
            y="metric.test_nll",
            col="setting",
            kind="point",
            hue="terms",
            linestyle="none",
            dodge=0.3,
            height=3.2,
            aspect=1.4,
            sharey=False,
        )
        for ax, setting in zip(grid.axes.flat, grid.col_names, strict=False):
            true = frame[frame["setting"] == setting].get("metric.true_nll")
            if true is not None and true.notna().any():
                line = ax.axhline(true.median(), color="k", ls="--", label="true density")
                ax.legend(handles=[line], fontsize=7)
            ax.tick_params(axis="x", rotation=30)
        grid.set(ylabel="test NLL (nats)", xlabel="")
        grid.set_titles("{col_name}")
        figures["test_nll"] = grid.figure
    mem = ok.dropna(subset=["metric.step_peak_memory_bytes"]) if "metric.step_peak_memory_bytes" in ok else ok[:0]
    mem = mem[mem.groupby(["setting", "impl"])["terms"].transform("nunique") > 1]
    if not mem.empty:
        mem = mem.assign(mb=mem["metric.step_peak_memory_bytes"] / 1e6)
        figures["memory_vs_terms"] = line_panels(
            mem, "terms", "mb", xlabel="series terms n", ylabel="training step memory (MB)"
        )
    return figures
