"""A number as a board's cell shows it, in its unit: bytes in KiB/MiB/GiB, seconds in µs/ms/s, fractions in %.
The terminal (``ctbench show``) and the pages print the same text."""

from __future__ import annotations

import math
from typing import Any

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
        for seconds, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(value) >= seconds:
                return f"{value / seconds:.3g} {suffix}"
        return f"{value * 1e9:.3g} ns" if value else "0 s"
    return f"{value:.4g}"


def header_unit(unit: str) -> str:
    """The unit printed under a column name; bytes and seconds carry their own suffix in each cell."""
    return "" if unit in _BYTES or unit in _SECONDS or unit == "fraction" else unit


def percent(value: Any) -> str:
    return "—" if is_missing(value) else f"{100 * float(value):+.1f}%"
