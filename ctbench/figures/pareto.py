"""The Pareto scatter of a task's leaderboards over its declared objectives: per board, each ok row's quality
objective against its memory objective, the marker's area growing with its time objective, rows of Pareto layer 1
ringed. One panel per board, every board: a board whose rows lack the objectives says so in its panel. Drawn from
a ``ctbench.boards.table.leaderboard`` frame alone (the run files), in the report's styles."""

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
    grid,
    labels,
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
                   edgecolors=edge, linewidths=2.2 if front else 1.0)  # fmt: skip
    if memory.min() > 0 and memory.max() > 20 * memory.min():  # a row at 0 would vanish from a log axis
        ax.set_xscale("log")
    ax.margins(0.15)  # room for the largest markers
    plain_ticks(ax)
    ax.grid(True, alpha=0.3)


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
    """One panel per board (title, its leaderboard rows): the ok rows' ``quality`` against ``memory`` (bytes,
    drawn in MiB), marker area from ``time``; a board with no ok row carrying both says so in its panel.
    ``MAX_PANELS`` panels a figure; none without boards."""
    panels = []
    for title, board in boards:
        wanted = [METRIC + quality, METRIC + memory]
        carried = all(c in board for c in wanted)
        rows = board[(board["status"] == "ok") & board[wanted].notna().all(axis=1)] if carried else board.iloc[:0]
        panels.append((title, rows))
    if not panels:
        return []
    drawn = [rows for _, rows in panels if not rows.empty]
    chosen = styles_for(pd.concat(drawn) if drawn else boards[0][1].iloc[:0], styles)
    better = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
    figures = []
    with plain_text():  # names are drawn as they are, never as mathtext
        for start in range(0, len(panels), MAX_PANELS):
            chunk = panels[start : start + MAX_PANELS]
            figure, axes = grid(len(chunk))
            for ax, (name, rows) in zip(axes, chunk, strict=True):
                ax.set_title(panel_title(name, len(chunk)), fontsize=9, pad=10, parse_math=False)
                if rows.empty:
                    missing = f"no ok row with both {quality} and {memory}"
                    ax.text(0.5, 0.5, axis_label(missing, len(chunk), vertical=True), ha="center", va="center",
                            transform=ax.transAxes, fontsize=9, wrap=True, parse_math=False)  # fmt: skip
                    ax.set_xticks([])
                    ax.set_yticks([])
                    continue
                _panel(ax, rows, quality, memory, time, chosen)
                ax.set_xlabel(axis_label(f"{memory} (MiB)", len(chunk)), parse_math=False)
                ylabel = axis_label((quality_label or quality) + better, len(chunk), vertical=True)
                ax.set_ylabel(ylabel, parse_math=False)
            shown = sorted({str(lb) for _, rows in chunk for lb in labels(rows)})
            note = f"marker area: {time} (larger is slower); ringed: Pareto layer 1 over the task's objectives"
            legend(figure, chosen, shown, note)
            figures.append(figure)
    return figures
