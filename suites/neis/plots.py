"""The figures ``LinePlot`` cannot declare (the per-target bars are the task's ``line_plots``). Only ``ok`` cases;
one panel per setting (scale, hardware) so runs of different sizes or machines never share a curve.

- ``variance_vs_dimension``: relative variance x cost per sample against the dimension d of the Gaussian mixture
  family gmm_d{d}, a line per implementation plus vanilla IS's exact value (its cost is 1 per sample), drawn
  grey and dashed (``palette.GUIDE``): it is no implementation. Not a
  ``LinePlot``: d is no grid parameter (the grid's axis is ``target``, and d is read from the family's names),
  each d is its own dataset (which a ``LinePlot`` keeps in separate panels), and vanilla's exact value is a
  reference line, not an implementation.
- ``training_second_moment``: the training curves log10 E[Z_hat^2]/Z^2 from each case's ``series``: the median
  curve over a point's seeds with its band, a line per case where an implementation ran several points in a panel.

Each figure says how many cases it left out (not ok).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ctbench.figures import palette
from ctbench.figures.plotting import left_out_note, line_figures, styles_for
from ctbench.figures.records import labelled, left_out, named, series_rows

VANILLA_EXACT = "vanilla (exact)"
FAMILY = "gmm_d"
COLUMNS = ["setting", "dim", "label", "submission", "v"]


def _family(cases: pd.DataFrame) -> pd.DataFrame:
    """The cases of the gmm_d{d} family, with their ``target``."""
    if cases.empty:
        return cases.assign(target=pd.Series(dtype=object))
    targets = [json.loads(p).get("target") for p in cases["params_json"]]
    cases = cases.assign(target=targets)
    return cases[cases["target"].str.startswith(FAMILY, na=False)]


def _dimension_frame(family: pd.DataFrame) -> pd.DataFrame:
    """(setting, dim, label, submission, v = rel_var x cost) of the ok cases of the family, vanilla's exact added."""
    ok = family[family["status"] == "ok"]
    if ok.empty or "metric.rel_var_x_cost" not in ok:
        return pd.DataFrame(columns=COLUMNS)
    ok = ok.assign(setting=ok["scale"] + " | " + ok["hardware"], dim=ok["target"].str[len(FAMILY) :].astype(int))
    ok = ok.assign(label=ok["label"] if "label" in ok else ok["impl"])
    ok = ok.assign(submission=ok["submission"] if "submission" in ok else "reference")
    rows = ok[[*COLUMNS[:-1], "metric.rel_var_x_cost"]].rename(columns={"metric.rel_var_x_cost": "v"})
    exact = ok.drop_duplicates(["setting", "dim"]).assign(label=VANILLA_EXACT, submission="reference")
    exact = exact[[*COLUMNS[:-1], "metric.vanilla_rel_var"]].rename(columns={"metric.vanilla_rel_var": "v"})
    return pd.concat([rows, exact], ignore_index=True).dropna(subset=["v"])


def _panel(record: Mapping[str, Any], _series: str) -> str:
    return f"{record['params'].get('target')} | {record['scale']} | {record['hardware']}"


def neis_plots(cases: pd.DataFrame, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The variance against the dimension and the training curves; cases that are not ok are left out."""
    figures: dict[str, Any] = {}
    family = _family(cases)
    gmm = _dimension_frame(family)
    if gmm["dim"].nunique() > 1:
        methods = gmm[gmm["label"] != VANILLA_EXACT]
        styles = {**styles_for(methods), VANILLA_EXACT: palette.GUIDE}
        note = left_out_note(int((family["status"] != "ok").sum()))
        drawn = line_figures(gmm, "dim", "v", xlabel="dimension d", ylabel="relative variance x cost per sample",
                             yscale="log", styles=styles, note=note)  # fmt: skip
        figures.update(named("variance_vs_dimension", drawn))
    records = labelled(records, cases)
    curves = series_rows(records, ["log10_rel_second_moment"], _panel)
    if not curves.empty:
        drawn = line_figures(curves, "x", "y", xlabel="step", ylabel="log10 E[Z_hat^2]/Z^2 (training batch)",
                             col="panel", units="case", note=left_out(records))  # fmt: skip
        figures.update(named("training_second_moment", drawn))
    return figures
