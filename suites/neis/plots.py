"""The task page's plots: relative variance at equal cost per target, its growth with dimension on the Gaussian
mixture family, and the training curves of the second moment. Only ``ok`` cases; one panel per setting (scale,
hardware) so runs of different sizes or machines never share a curve."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ctbench.plotting import line_panels

VANILLA_EXACT = "vanilla (exact)"


def _frame(cases: pd.DataFrame) -> pd.DataFrame:
    ok = cases[cases["status"] == "ok"].copy()
    if ok.empty or "metric.rel_var_x_cost" not in ok:
        return ok.iloc[0:0]
    ok["target"] = [json.loads(p).get("target") for p in ok["params_json"]]
    ok["setting"] = ok["scale"] + " | " + ok["hardware"]
    rows = ok[["setting", "target", "impl", "metric.rel_var_x_cost"]].rename(columns={"metric.rel_var_x_cost": "v"})
    exact = ok.drop_duplicates(["setting", "target"]).assign(impl=VANILLA_EXACT)  # vanilla costs 1 per sample
    exact = exact[["setting", "target", "impl", "metric.vanilla_rel_var"]].rename(
        columns={"metric.vanilla_rel_var": "v"}
    )
    return pd.concat([rows, exact], ignore_index=True).dropna(subset=["v"])


def neis_plots(cases: pd.DataFrame, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    figures: dict[str, Any] = {}
    frame = _frame(cases)
    label = "relative variance x cost per sample"
    if not frame.empty:
        grid = sns.catplot(
            data=frame,
            x="target",
            y="v",
            hue="impl",
            col="setting",
            kind="bar",
            errorbar=None,
            height=3.5,
            aspect=1.6,
        )
        grid.set(yscale="log", ylabel=label)
        grid.set_titles("{col_name}")
        figures["equal_cost_variance"] = grid.figure
        gmm = frame[frame["target"].str.startswith("gmm_d")].assign(dim=lambda d: d["target"].str[5:].astype(int))
        if gmm["dim"].nunique() > 1:
            figures["variance_vs_dimension"] = line_panels(
                gmm, "dim", "v", xlabel="dimension d", ylabel=label, yscale="log"
            )
    curves = [
        {
            "setting": f"{r['scale']} | {r['hardware']}",
            "target": r["params"].get("target"),
            "impl": r["impl"],
            "seed": r["seed"],
            "step": x,
            "log10_m2": y,
        }
        for r in records
        if r["status"] == "ok"
        for x, y in r.get("series", {}).get("log10_rel_second_moment", [])
    ]
    if curves:
        df = pd.DataFrame(curves)
        df["panel"] = df["target"] + " | " + df["setting"]
        grid = sns.relplot(
            data=df,
            x="step",
            y="log10_m2",
            hue="impl",
            units="seed",
            estimator=None,
            col="panel",
            col_wrap=3,
            kind="line",
            height=3.2,
            aspect=1.3,
            facet_kws={"sharey": False},
        )
        grid.set(ylabel="log10 E[Z_hat^2]/Z^2 (training batch)")
        grid.set_titles("{col_name}")
        figures["training_second_moment"] = grid.figure
    return figures
