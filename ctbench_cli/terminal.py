"""Tables for the terminal that never run wider than it: every column whole where the terminal is wide enough; else
the columns that fit, in priority order, the others named below the table, long cells cut with an ellipsis.

Everything printed here passes ``printable`` (``ctbench.store.text``): a name or an error text from a run file cannot
start an escape sequence, move the cursor or break a line (a ``\n`` in a name is shown as ``\n``, never as a
line of its own), and a lone surrogate is shown as an escape instead of failing to encode.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from ctbench.store.text import printable

__all__ = ["Col", "clip", "flat", "printable", "render", "say", "width"]


def width() -> int:
    """The terminal's width (``COLUMNS`` first; 100 when the output is not a terminal)."""
    return max(40, shutil.get_terminal_size((100, 24)).columns)


def flat(text: object) -> str:
    """``text`` on one line, terminal-safe (``printable``), runs of spaces as one."""
    return " ".join(printable(text).split())


def clip(text: object, size: int) -> str:
    """``text`` as ``flat`` makes it, cut to ``size`` characters with an ellipsis."""
    text = flat(text)
    return text if len(text) <= size else text[: max(0, size - 1)] + "…"


@dataclass
class Col:
    """A column: its header, cells, priority (lower is kept first), right-aligned or not, the widest it may be
    (longer cells are cut) and, for the one flexible column, the narrowest (``flex``) and the priority at which it
    takes its whole width (``grow``: before the columns of a higher priority number are placed)."""

    header: str
    cells: list[str]
    priority: int = 5
    right: bool = False
    cap: int = 40
    flex: int = 0  # > 0: takes the width left over, at least this much
    grow: int | None = None  # the flexible column's whole width comes before columns of a higher priority number


def _full(col: Col) -> int:
    """The width of the column's widest cell or header, uncut."""
    return max([len(flat(col.header)), *(len(flat(c)) for c in col.cells)])


def _natural(col: Col) -> int:
    return min(col.cap, _full(col))


def _sizes(cols: Sequence[Col], limit: int, gap: int) -> dict[int, int]:
    """Each shown column's width: every column whole when the table fits in ``limit``; else the columns that fit
    in priority order, each at most its ``cap`` (the flexible one at least its ``flex``, and whole once the columns
    up to its ``grow`` priority are placed), then the width left over given back, in priority order, to the columns
    cut, up to their whole width."""
    if sum(_full(c) for c in cols) + gap * max(len(cols) - 1, 0) <= limit:
        return {id(c): _full(c) for c in cols}
    sizes: dict[int, int] = {}
    used = 0

    def place(col: Col, size: int) -> None:
        nonlocal used
        need = size + (gap if sizes else 0)
        if used + need <= limit:
            sizes[id(col)] = size
            used += need

    def widen(col: Col) -> None:
        nonlocal used
        grown = min(_full(col), sizes[id(col)] + limit - used)
        used += grown - sizes[id(col)]
        sizes[id(col)] = grown

    growing = [c for c in cols if c.flex and c.grow is not None]
    for col in sorted(cols, key=lambda c: c.priority):
        for flexible in [c for c in growing if id(c) in sizes and (c.grow or 0) <= col.priority]:
            widen(flexible)
            growing.remove(flexible)
        place(col, min(_natural(col), col.flex) if col.flex else _natural(col))
    for col in sorted(cols, key=lambda c: (not c.flex, c.priority)):  # the flexible column first
        if id(col) in sizes:
            widen(col)
    return sizes


def render(cols: Sequence[Col], limit: int | None = None, gap: int = 2) -> tuple[list[str], list[str]]:
    """Lines of a table at most ``limit`` characters wide (the terminal's), and the headers of the columns left
    out. A cell is cut (with an ellipsis) only where the table cannot fit whole (``_sizes``)."""
    limit = limit or width()
    sizes = _sizes(cols, limit, gap)
    shown = [c for c in cols if id(c) in sizes]
    lines = []
    for i in range(-1, len(cols[0].cells) if cols else 0):
        parts = []
        for c in shown:
            text = clip(c.header if i < 0 else c.cells[i], sizes[id(c)])
            parts.append(text.rjust(sizes[id(c)]) if c.right else text.ljust(sizes[id(c)]))
        lines.append((" " * gap).join(parts).rstrip()[:limit])
    return lines, [c.header for c in cols if id(c) not in sizes]


def say(lines: Sequence[str], limit: int | None = None) -> None:
    """Print ``lines``, each terminal-safe (``printable``) and cut to the terminal's width."""
    limit = limit or width()
    for line in map(printable, lines):
        print(line if len(line) <= limit else line[: limit - 1] + "…")
