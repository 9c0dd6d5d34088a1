"""Figures of the bilevel task's page that ``LinePlot`` cannot declare, drawn from the ok cases' ``series``:
convergence curves (against time and samples, a line per seed) and the time to come within 1e-3 of the run's
lowest h (the paper's convention). The cost ratio and the time to h* + 1e-3 are the task's ``line_plots``.

h(x) - h* can be negative where h* is a local minimum (hyperparameter selection): a panel with such values is
drawn on a symmetric log axis (linear within ``LINEAR_WITHIN`` of 0), never clipped to a floor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench.figures.plotting import finish, hue
from suites.bilevel.checks import to_run_best

CURVES = {
    "suboptimality_vs_time": ("clock (s)", "h(x) - h*", True),
    "suboptimality_vs_samples": ("samples processed", "h(x) - h*", True),
    "grad_norm2_vs_samples": ("samples processed", "||grad h(x)||^2", True),
    "test_accuracy_vs_time": ("clock (s)", "test accuracy (hyper-cleaning)", False),
}
LINEAR_WITHIN = 1e-12  # a symmetric log axis is linear within this distance of 0


def _curves(records: Sequence[Mapping[str, Any]], name: str):
    import pandas as pd

    rows = []
    for r in records:
        if r.get("status") != "ok":
            continue
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
        if r.get("status") == "ok" and r.get("series", {}).get("suboptimality_vs_time"):
            key = (r.get("run_id"), r["scale"], r["params"].get("problem"), r["dataset"], r.get("hardware", "?"))
            groups.setdefault(key, []).append(r)
    machines = {key[-1] for key in groups}
    rows = [
        {
            "impl": c["impl"],
            "group": f"{problem}\n({scale})" + (f"\n{hardware}" if len(machines) > 1 else ""),
            "time": t,
        }
        for (_, scale, problem, _, hardware), cases in groups.items()
        for c, t in zip(cases, to_run_best(cases), strict=True)
    ]
    frame = pd.DataFrame(rows)
    return frame[frame["time"] < float("inf")] if len(frame) else frame


def figures(cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One figure per curve (a panel per problem, dataset and scale; a line per implementation and seed, a line
    style per hardware), and the time to come within 1e-3 of the run's lowest h (median over seeds, whiskers
    from the lowest to the highest). Cases that are not ok are left out. ``cases`` is unused: every figure here is
    drawn from the records' series."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    out: dict[str, Any] = {}
    for name, (xlabel, ylabel, log) in CURVES.items():
        df = _curves(records, name)
        if df.empty:
            continue
        names = sorted(df["impl"].unique())
        style = "hardware" if df["hardware"].nunique() > 1 else None
        grid = sns.relplot(
            data=df, x="x", y="y", hue="impl", hue_order=names, palette=hue(names)[0], style=style,
            col="panel", col_wrap=3, kind="line", units="seed", estimator=None,
            facet_kws={"sharex": False, "sharey": False}, height=3.4,
        )  # fmt: skip
        grid.set_axis_labels(xlabel, ylabel)
        grid.set_titles("{col_name}", size=8)
        if log:
            for panel, ax in grid.axes_dict.items():
                values = df.loc[df["panel"] == panel, "y"]
                if (values > 0).all():
                    ax.set_yscale("log")
                else:
                    ax.set_yscale("symlog", linthresh=LINEAR_WITHIN)
                    ax.set_ylabel(f"{ylabel} (symlog: below h*, negative)")
        if name.endswith("_samples"):  # the full-batch baseline's steps cost far more samples than the budget
            for ax in grid.axes.flat:
                ax.set_xscale("log")
        finish(grid.figure)
        out[name] = grid.figure
    run_best = _run_best_times(records)
    if len(run_best):
        names = sorted(run_best["impl"].unique())
        colours, markers = hue(names)
        grid = sns.catplot(
            data=run_best, x="group", y="time", hue="impl", hue_order=names, palette=colours, kind="point",
            markers=[markers[n] for n in names], linestyle="none", dodge=0.4 if len(names) > 1 else False,
            estimator="median", errorbar=("pi", 100), height=3.8, aspect=2.1,
        )  # fmt: skip
        title = "time to come within 1e-3 of the run's lowest h (the paper's convention; no point: never)"
        grid.set(xlabel="", ylabel="time (s)", yscale="log", title=title)
        finish(grid.figure)
        out["time_to_run_best_s"] = grid.figure
    return out
