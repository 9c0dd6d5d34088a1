"""The Pareto scatter of a task's leaderboards over its declared objectives: per board, each ok row's quality
objective against its memory objective, the marker's area growing with its time objective, rows of Pareto layer 1
ringed. One panel per board with at least two such rows (one point compares nothing); no figure when no board has
two. The legend counts what is not drawn: boards without a panel, cases not ok, ok rows lacking an objective. Drawn
from a ``ctbench.boards.table.leaderboard`` frame alone (the run files), in the report's styles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ctbench.boards.table import METRIC
from ctbench.figures.palette import Style
from ctbench.figures.plotting import (
    MAX_PANELS,
    axis_label,
    counted,
    grid,
    labels,
    left_out_note,
    legend,
    plain_text,
    plain_ticks,
    styles_for,
)
from ctbench.figures.plotting import title as panel_title

MEMORY, TIME = "step_peak_memory_bytes", "step_time_s"  # the objectives a task that declares none is ranked by
AREA = (30.0, 500.0)  # marker area (points^2) of the fastest and the slowest row of a panel


def _areas(times: pd.Series) -> np.ndarray:
    """Marker areas growing with step time within a panel (constant where a row has none)."""
    t = times.to_numpy(dtype=float)
    if np.isnan(t).all() or np.nanmax(t) <= 0 or np.nanmin(t) == np.nanmax(t):
        return np.full(len(t), 120.0)
    low, high = np.nanmin(t), np.nanmax(t)
    scaled = (t - low) / (high - low)
    return np.where(np.isnan(scaled), 120.0, AREA[0] + scaled * (AREA[1] - AREA[0]))


def _panel(ax: Any, rows: pd.DataFrame, quality: str, memory_metric: str, time_metric: str,
           styles: Mapping[str, Style]) -> None:  # fmt: skip
    time = METRIC + time_metric
    areas = _areas(rows[time] if time in rows else pd.Series(np.nan, index=rows.index))
    memory = rows[METRIC + memory_metric].to_numpy(dtype=float) / 2**20
    for i, (label, value, front) in enumerate(
        zip(labels(rows), rows[METRIC + quality], rows["pareto"] == 1, strict=True)
    ):
        s = styles[str(label)]
        edge = "black" if s.submission or front else "none"
        ax.scatter(memory[i], value, s=areas[i], color=s.colour, marker=s.marker, zorder=s.zorder + 1,
                   edgecolors=edge, linewidths=2.2 if front else 1.0, gid=str(label))  # fmt: skip
    if memory.min() > 0 and memory.max() > 20 * memory.min():  # a row at 0 would vanish from a log axis
        ax.set_xscale("log")
    ax.margins(0.15)  # room for the largest markers
    plain_ticks(ax)
    ax.grid(True, alpha=0.3)


def _not_ok(board: pd.DataFrame) -> int:
    """A board's cases that did not end ok: its failed rows' and those its ranked rows left out."""
    failed = board["status"] != "ok"
    cases = board["cases"] if "cases" in board else pd.Series(1, index=board.index)
    partly = board["not_ok_cases"].fillna(0).sum() if "not_ok_cases" in board else 0
    return int(cases[failed].sum() + partly)


def _notes(boards: Sequence[tuple[pd.DataFrame, pd.DataFrame]], panelless: int, quality: str, memory: str) -> str:
    """What a figure of ``(board, drawn rows)`` pairs says it leaves out, with ``panelless`` boards without a panel
    (whose cases are among ``boards``)."""
    lacking = sum(int((board["status"] == "ok").sum()) - len(rows) for board, rows in boards)
    notes = [
        left_out_note(sum(_not_ok(board) for board, _ in boards)),
        counted(lacking, "ok row", f"without {quality} or {memory} not drawn"),
        counted(panelless, "board", "with fewer than two rows to draw: no panel"),
    ]
    return "\n".join(n for n in notes if n)


def pareto_figures(
    boards: Sequence[tuple[str, pd.DataFrame]],
    quality: str,
    *,
    memory: str = MEMORY,
    time: str = TIME,
    quality_label: str = "",
    higher: bool | None = None,
    styles: Mapping[str, Style] | None = None,
) -> list[Any]:
    """One panel per board (title, its leaderboard rows) with at least two ok rows carrying ``quality`` and
    ``memory``: their ``quality`` against ``memory`` (bytes, drawn in MiB), marker area from ``time``.
    ``MAX_PANELS`` panels a figure; none without such a board. The first figure's legend also counts the boards
    left without a panel and their cases not ok."""
    wanted = [METRIC + quality, METRIC + memory]
    panels: list[tuple[str, pd.DataFrame, pd.DataFrame]] = []  # (title, board, rows to draw)
    panelless: list[tuple[str, pd.DataFrame, pd.DataFrame]] = []
    for title, board in boards:
        carried = all(c in board for c in wanted)
        rows = board[(board["status"] == "ok") & board[wanted].notna().all(axis=1)] if carried else board.iloc[:0]
        (panels if len(rows) >= 2 else panelless).append((title, board, rows))
    if not panels:
        return []
    chosen = styles_for(pd.concat([rows for _, _, rows in panels]), styles)
    better = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
    key = f"marker area: {time} (larger is slower); ringed: Pareto layer 1 over the task's objectives"
    figures = []
    with plain_text():  # names are drawn as they are, never as mathtext
        for start in range(0, len(panels), MAX_PANELS):
            chunk = panels[start : start + MAX_PANELS]
            figure, axes = grid(len(chunk))
            for ax, (name, _, rows) in zip(axes, chunk, strict=True):
                ax.set_title(panel_title(name, len(chunk)), fontsize=9, pad=10, parse_math=False)
                _panel(ax, rows, quality, memory, time, chosen)
                ax.set_xlabel(axis_label(f"{memory} (MiB)", len(chunk)), parse_math=False)
                ylabel = axis_label((quality_label or quality) + better, len(chunk), vertical=True)
                ax.set_ylabel(ylabel, parse_math=False)
            shown = sorted({str(lb) for _, _, rows in chunk for lb in labels(rows)})
            counted = chunk + (panelless if start == 0 else [])
            note = _notes([(b, r) for _, b, r in counted], len(panelless) if start == 0 else 0, quality, memory)
            legend(figure, chosen, shown, "\n".join(n for n in (key, note) if n))
            figures.append(figure)
    return figures
