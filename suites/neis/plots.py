"""The figures ``LinePlot`` cannot declare (the per-target bars are the task's ``line_plots``). Only ``ok`` cases;
one panel per setting (scale, hardware) so runs of different sizes or machines never share a curve.

- ``variance_vs_dimension``: relative variance x cost per sample against the dimension d of the Gaussian mixture
  family gmm_d{d}, a line per implementation plus vanilla IS's exact value (its cost is 1 per sample). Not a
  ``LinePlot``: d is no grid parameter (the grid's axis is ``target``, and d is read from the family's names),
  each d is its own dataset (which a ``LinePlot`` keeps in separate panels), and vanilla's exact value is a
  reference line, not an implementation.
- ``training_second_moment``: the training curves log10 E[Z_hat^2]/Z^2 from each case's ``series``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ctbench.figures.plotting import finish, hue, line_panels

VANILLA_EXACT = "vanilla (exact)"
FAMILY = "gmm_d"


def _dimension_frame(cases: pd.DataFrame) -> pd.DataFrame:
    """(setting, dim, impl, v = rel_var x cost) of the ok cases of the gmm_d{d} family, vanilla's exact added."""
    ok = cases[cases["status"] == "ok"].copy()
    if ok.empty or "metric.rel_var_x_cost" not in ok:
        return pd.DataFrame(columns=["setting", "dim", "impl", "v"])
    ok["target"] = [json.loads(p).get("target") for p in ok["params_json"]]
    ok = ok[ok["target"].str.startswith(FAMILY, na=False)]
    ok = ok.assign(setting=ok["scale"] + " | " + ok["hardware"], dim=ok["target"].str[len(FAMILY) :].astype(int))
    rows = ok[["setting", "dim", "impl", "metric.rel_var_x_cost"]].rename(columns={"metric.rel_var_x_cost": "v"})
    exact = ok.drop_duplicates(["setting", "dim"]).assign(impl=VANILLA_EXACT)
    exact = exact[["setting", "dim", "impl", "metric.vanilla_rel_var"]].rename(columns={"metric.vanilla_rel_var": "v"})
    return pd.concat([rows, exact], ignore_index=True).dropna(subset=["v"])


def _curves(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
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
    )


def neis_plots(cases: pd.DataFrame, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    figures: dict[str, Any] = {}
    gmm = _dimension_frame(cases)
    if gmm["dim"].nunique() > 1:
        label = "relative variance x cost per sample"
        figures["variance_vs_dimension"] = line_panels(
            gmm, "dim", "v", xlabel="dimension d", ylabel=label, yscale="log"
        )
    curves = _curves(records)
    if not curves.empty:
        curves["panel"] = curves["target"] + " | " + curves["setting"]
        names = sorted(curves["impl"].unique())
        grid = sns.relplot(
            data=curves,
            x="step",
            y="log10_m2",
            hue="impl",
            hue_order=names,
            palette=hue(names)[0],
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
        finish(grid.figure)
        figures["training_second_moment"] = grid.figure
    return figures
