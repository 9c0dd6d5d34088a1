"""Formatting helpers for the pages and tables: numbers with their units, safe file names, safe links, names
isolated from the page's text direction, CSV cells that no spreadsheet reads as a formula."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

import pandas as pd
from markupsafe import Markup, escape

from ctbench.text import printable, shown

_BYTES = ("bytes", "byte", "B")
_SECONDS = ("s", "seconds")


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: Any, unit: str = "") -> str:
    """``value`` for a table cell: bytes in KiB/MiB/GiB, seconds in µs/ms/s, fractions in %, else 4 digits."""
    if is_missing(value):
        return "—"
    value = float(value)
    if unit in _BYTES:
        for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {suffix}"
        return f"{value:.0f} B"
    if unit == "fraction":
        return f"{100 * value:.4g}%"
    if unit in _SECONDS:
        for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {suffix}"
        return f"{value * 1e9:.3g} ns" if value else "0 s"
    return f"{value:.4g}"


def header_unit(unit: str) -> str:
    """The unit printed under a column name; bytes and seconds carry their own suffix in each cell."""
    return "" if unit in _BYTES or unit in _SECONDS or unit == "fraction" else unit


def percent(value: Any) -> str:
    return "—" if is_missing(value) else f"{100 * float(value):+.1f}%"


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (task and plot names come from result files: never trust them)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:80] or "x"


def safe_url(url: Any) -> str:
    """``url`` if it is an http(s) link, else empty: a ``javascript:`` URL from a manifest is never a link."""
    return url if isinstance(url, str) and re.match(r"https?://", url, re.IGNORECASE) else ""


# bidirectional classes that can reorder text: right-to-left letters, Arabic digits, embeddings, overrides, isolates
_REORDERING = frozenset({"R", "AL", "AN", "LRE", "LRO", "RLE", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})


def bdi(value: Any) -> Markup:
    """``value`` as escaped HTML text, inside ``<bdi>`` when it holds a character that can change the direction of
    text (a U+202E override, a right-to-left letter): isolated, it cannot reorder the page around it.

    A string of left-to-right letters, digits and neutrals is left bare: it cannot reorder anything, and every
    string that can is isolated, so it has no right-to-left neighbour to be drawn into.
    """
    text = shown(value)  # a lone surrogate (a file name's non-UTF-8 byte) as an escape: the page stays UTF-8
    if text.isascii() or not any(unicodedata.bidirectional(ch) in _REORDERING for ch in text):
        return escape(text)
    return Markup("<bdi>{}</bdi>").format(text)


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
            safe[column] = safe[column].map(csv_cell)
    return safe
