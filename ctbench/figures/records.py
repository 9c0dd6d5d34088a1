"""What a task's own figure hook needs to draw case records as the report's figures draw them: each record's
implementation label (the one its boards show, ``ctbench.boards.table.implementation_labels``), so that two
implementations of one name (a submission beside a reference, two versions of one file) never share a colour; the
records' ``series`` as rows for ``ctbench.figures.plotting.line_figures``; and the note of the cases left out."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from ctbench.boards.table import code_columns, implementation_labels
from ctbench.figures.plotting import left_out_note

KEY = ["impl", "submission", "code"]  # what names an implementation's code: its label follows from these


def _keys(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [(str(r["impl"]), str(r.get("submission") or "reference"), code_columns(r)["code"]) for r in records]
    return pd.DataFrame(rows, columns=KEY, dtype=object)


def record_labels(records: Sequence[Mapping[str, Any]], cases: pd.DataFrame | None = None) -> list[str]:
    """Each record's implementation label: that of its row in ``cases`` (a ``cases_frame``, labelled over every run
    of the report), else labelled over ``records`` alone."""
    keys = _keys(records)
    if keys.empty:
        return []
    if cases is not None and {*KEY, "label"} <= set(cases.columns):
        known = cases[[*KEY, "label"]].astype(str).drop_duplicates(KEY).set_index(KEY)["label"]
        found = [known.get(tuple(k)) for k in keys.itertuples(index=False)]
        if all(label is not None for label in found):
            return [str(label) for label in found]
    keys["reference"] = keys["submission"] == "reference"
    return [str(label) for label in implementation_labels(keys)]


def labelled(records: Sequence[Mapping[str, Any]], cases: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """``records``, each with its ``label`` (``record_labels``) and ``submission`` (``reference`` where absent)."""
    labels = record_labels(records, cases)
    return [
        {**r, "label": label, "submission": str(r.get("submission") or "reference")}
        for r, label in zip(records, labels, strict=True)
    ]


def series_rows(
    records: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    panel: Callable[[Mapping[str, Any], str], str],
) -> pd.DataFrame:
    """A row per point of every ok record's series of each of ``names``: ``x``, ``y``, ``series`` (the name),
    ``label`` and ``submission`` (the records must be ``labelled``), ``case`` (a curve per record and series),
    ``point`` (the record's parameters, as JSON: curves of one point differ by their seeds) and ``panel``
    (``panel(record, name)``)."""
    rows = [
        {
            "x": x,
            "y": y,
            "series": name,
            "label": r["label"],
            "submission": r["submission"],
            "case": f"{i} {name}",
            "point": json.dumps(r.get("params") or {}, sort_keys=True, default=str),
            "panel": panel(r, name),
        }
        for i, r in enumerate(records)
        if r.get("status") == "ok"
        for name in names
        for x, y in (r.get("series") or {}).get(name) or []
    ]
    return pd.DataFrame(rows, columns=["x", "y", "series", "label", "submission", "case", "point", "panel"])


def named(name: str, figures: Sequence[Any]) -> dict[str, Any]:
    """``figures`` by name: the first ``name``, the next ``name (2)``, ``name (3)``..."""
    return {(name if i == 0 else f"{name} ({i + 1})"): figure for i, figure in enumerate(figures)}


def left_out(records: Iterable[Mapping[str, Any]]) -> str:
    """What a figure drawn from ``records`` says of those that are not ok (``plotting.left_out_note``)."""
    return left_out_note(sum(r.get("status") != "ok" for r in records))
