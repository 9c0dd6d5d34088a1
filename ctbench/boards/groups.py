"""A leaderboard cut into its boards (one per scale, dataset, parameters and hardware) in reading order, and each
board's title: the same boards, in the same order, for ``ctbench show`` and the report's pages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ctbench.boards.table import GROUP, params_order

SCALE_ORDER = {"smoke": 0, "small": 1, "full": 2}
KEYS = [c for c in GROUP if c != "task"]  # what tells one board of a task from another


def natural(text: Any) -> tuple:
    """Sort key that puts ``depth=16`` before ``depth=128``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text)))


def _group_key(key: tuple, order: Mapping[str, int]) -> tuple:
    """Scale first (smoke, small, full), then dataset, parameters by value (depth 8 < 64 < 256), hardware."""
    named = dict(zip(KEYS, key, strict=True))
    return (SCALE_ORDER.get(named["scale"], 9), natural(named["scale"]), natural(named["dataset"]),
            order.get(named["params"], 0), natural(named["hardware"]))  # fmt: skip


def board_groups(board: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """``ctbench.boards.table.leaderboard``'s frame cut into one frame per board, smoke
    before small, depth 16 before 128."""
    if board.empty:
        return []
    by_params = board.drop_duplicates("params").set_index("params")["params_json"]
    order = {p: i for i, p in enumerate(sorted(by_params.index, key=lambda p: params_order(by_params[p])))}
    grouped = board.groupby(KEYS, sort=False, dropna=False)
    return sorted(((key, group) for key, group in grouped), key=lambda kv: _group_key(kv[0], order))


def board_title(key: tuple) -> str:
    """``scale | params | dataset | hardware`` of a board's key."""
    named = dict(zip(KEYS, key, strict=True))
    return " | ".join(str(named[k]) for k in ("scale", "params", "dataset", "hardware"))
