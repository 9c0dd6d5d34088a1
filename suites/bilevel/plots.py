"""Figures of the bilevel task's page that ``LinePlot`` cannot declare, drawn from the cases' ``series``:
convergence curves (against time and samples, a line per seed) and the time to come within 1e-3 of the run's
lowest h (the paper's convention). The cost ratio and the time to h* + 1e-3 are the task's ``line_plots``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from suites.bilevel.checks import times_to_run_best

CURVES = {
    "suboptimality_vs_time": ("clock (s)", "h(x) - h*", True),
    "suboptimality_vs_samples": ("samples processed", "h(x) - h*", True),
    "grad_norm2_vs_samples": ("samples processed", "||grad h(x)||^2", True),
    "test_accuracy_vs_time": ("clock (s)", "test accuracy (hyper-cleaning)", False),
}
POSITIVE_FLOOR = 1e-16  # log axes: values at or below zero (h* of a non-convex problem is a local minimum) drawn here


def _curves(records: Sequence[Mapping[str, Any]], name: str):
    import pandas as pd

    rows = []
    for r in records:
        for x, y in r.get("series", {}).get(name, []):
            rows.append({
                "x": x, "y": y, "impl": r["impl"], "seed": r["seed"], "scale": r["scale"],
                "panel": f"{r['params'].get('problem', '?')} ({r['scale']})\n{r['dataset']}",
                "hardware": r.get("hardware", "?"),
            })  # fmt: skip
    return pd.DataFrame(rows)


def _run_best_times(records: Sequence[Mapping[str, Any]]):
    """Per case, the time to come within 1e-3 of the lowest h that its run reached in its setting."""
    import pandas as pd

    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        if r.get("series", {}).get("suboptimality_vs_time"):
            key = (r.get("run_id"), r["scale"], r["params"].get("problem"), r["dataset"], r.get("hardware", "?"))
            groups.setdefault(key, []).append(r)
    rows = [
        {"impl": c["impl"], "group": f"{problem}\n{scale}\n{hardware}", "time": t}
        for (_, scale, problem, _, hardware), cases in groups.items()
        for c, t in zip(cases, times_to_run_best(cases), strict=True)
    ]
    frame = pd.DataFrame(rows)
    return frame[frame["time"] < float("inf")] if len(frame) else frame


def figures(cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One figure per curve (a panel per problem, dataset and scale; a line per implementation, a line style per
    hardware), and a bar chart of the time to come within 1e-3 of the run's lowest h. ``cases`` is unused: every
    figure here is drawn from the records' series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    out: dict[str, Any] = {}
    for name, (xlabel, ylabel, log) in CURVES.items():
        df = _curves(records, name)
        if df.empty:
            continue
        if log:
            df["y"] = df["y"].clip(lower=POSITIVE_FLOOR)
        style = "hardware" if df["hardware"].nunique() > 1 else None
        grid = sns.relplot(
            data=df, x="x", y="y", hue="impl", hue_order=sorted(df["impl"].unique()), palette="Dark2", style=style,
            col="panel", col_wrap=3, kind="line", units="seed", estimator=None,
            facet_kws={"sharex": False, "sharey": False}, height=3.4,
        )  # fmt: skip
        grid.set_axis_labels(xlabel, ylabel)
        grid.set_titles("{col_name}", size=8)
        if log:
            grid.set(yscale="log")
        if name.endswith("_samples"):  # the full-batch baseline's steps cost far more samples than the budget
            for ax in grid.axes.flat:
                ax.set_xscale("symlog", linthresh=1000)
                ax.set_xlim(left=0)
        out[name] = grid.figure
    run_best = _run_best_times(records)
    if len(run_best):
        fig, ax = plt.subplots(figsize=(8, 3.8))
        sns.barplot(data=run_best, x="group", y="time", hue="impl", hue_order=sorted({r["impl"] for r in records}),
                    palette="Dark2", estimator="median", errorbar=None, ax=ax)  # fmt: skip
        title = "time to come within 1e-3 of the run's lowest h (the paper's convention; no bar: never)"
        ax.set(xlabel="", ylabel="s", yscale="log", title=title)
        ax.tick_params(axis="x", labelsize=6)
        fig.tight_layout()
        out["time_to_run_best_s"] = fig
    return out
