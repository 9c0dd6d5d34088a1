"""Boards as CSV that a spreadsheet opens safely: no cell read as a formula, no control character, no row break
inside a cell."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ctbench.store.text import printable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")  # kept: tab, CR, LF (quoted)
CSV_LINES = "\r\n"  # RFC 4180; with it every field holding a CR or a LF is quoted, so none can start a row


def csv_cell(value: Any) -> Any:
    """A string that a spreadsheet would run as a formula, prefixed with a quote (OWASP's rule), its control
    characters other than tab, CR and LF (an escape sequence) and lone surrogates written as escapes (``\\x1b``);
    anything else, numbers included (-1.5 is a number, not a formula), as it is."""
    if not isinstance(value, str):
        return value
    if _CONTROL.search(value):
        value = _CONTROL.sub(lambda m: printable(m.group()), value)
    return "'" + value if value.startswith(FORMULA_START) else value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every string cell and column name passed through ``csv_cell``; write it with
    ``lineterminator=CSV_LINES`` (``to_csv`` quotes a CR inside a cell only when it ends lines with one)."""
    safe = frame.rename(columns=lambda c: csv_cell(str(c)))
    for column in safe.columns:
        if pd.api.types.is_object_dtype(safe[column]) or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = _cells(safe[column])
    return safe


def _cells(values: pd.Series) -> pd.Series:
    """``csv_cell`` of every value, computed once per distinct value (names and points repeat from row to row)."""
    try:
        codes, distinct = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # an unhashable cell: one at a time
        return values.map(csv_cell)
    cells = np.empty(len(distinct) + 1, dtype=object)
    cells[:-1] = [csv_cell(v) for v in distinct]
    cells[-1] = None  # code -1: a missing value
    return pd.Series(cells[codes], index=values.index, name=values.name, dtype=object)
