"""``ctbench show``: every task's leaderboards in the terminal (as wide as the terminal, human units, parameters
in numeric order), or all of their columns as CSV or JSON."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ctbench.boards.cells import is_missing, number
from ctbench.boards.groups import board_groups, board_title
from ctbench.boards.ranking import PARETO_NO_SPREAD, objectives, rank_text
from ctbench.boards.spreadsheet import CSV_LINES, csv_frame
from ctbench.boards.table import METRIC, TaskSpecs, cases_frame, latest, leaderboard, task_specs
from ctbench.catalog.registry import UsageError
from ctbench.store.verdict import outcome
from ctbench_cli.terminal import Col, flat, render, say, width

FORMATS = ("table", "csv", "json")


def check_rank_by(specs: TaskSpecs, rank_by: str | None) -> None:
    """``--rank-by`` must name a metric with a direction in at least one task of the runs."""
    if not rank_by:
        return
    ranked = sorted(
        {
            m
            for spec in specs.values()
            for m, s in spec.get("metrics", {}).items()
            if s.get("higher_is_better") is not None
        }
    )
    if rank_by not in ranked:
        raise UsageError(f"--rank-by {rank_by}: no task in these runs ranks that metric; metrics with a direction: "
                         f"{', '.join(ranked) or 'none'}")  # fmt: skip


def boards(runs: Sequence[dict[str, Any]], rank_by: str | None, latest_only: bool) -> tuple[pd.DataFrame, TaskSpecs]:
    """Every task's leaderboard in one frame (tasks in the order the runs name them)."""
    df, specs = cases_frame(runs), task_specs(runs)
    check_rank_by(specs, rank_by)
    df = latest(df) if latest_only else df
    tables = [leaderboard(df, task, specs, rank_by) for task in dict.fromkeys(df["task"])]
    return (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()), specs


def _unit(specs: TaskSpecs, task: str, metric: str) -> str:
    spec = specs.get(task, {}).get("metrics", {}).get(metric)
    return str(spec.get("unit", "")) if isinstance(spec, Mapping) else ""


def _metric_order(board: pd.DataFrame, spec: Mapping[str, Any] | None, rank_by: str) -> list[str]:
    columns = [c for c in board.columns if c.startswith(METRIC)]
    present = [c[len(METRIC) :] for c in board[columns].columns[board[columns].notna().any().to_numpy()]]
    first = [rank_by] if rank_by else []
    first += [m for m in objectives(spec) if m not in first]
    declared = list((spec or {}).get("metrics", {}))
    rest = sorted(set(present) - set(first), key=lambda m: (declared.index(m) if m in declared else len(declared), m))
    return [m for m in first if m in present] + rest


def _status(row: Mapping[str, Any]) -> str:
    return "" if row["status"] == "ok" else outcome(row)


def _reason(row: Mapping[str, Any]) -> str:
    """``status: reason``, and the values its protocol tuned where it recorded them (``tuned_*`` metrics)."""
    reason = f"{_status(row)}: {row.get('expected_invalid') or row.get('reason') or 'no error recorded'}"
    tuned = row.get("tuned")
    return f"{reason} (tuned: {tuned})" if isinstance(tuned, str) and tuned else reason


def not_ok(rows: Sequence[Mapping[str, Any]], limit: int) -> list[str]:
    """The cases that did not end ok, in a list of their own: an unranked row's label, status, reason and tuned
    values, and a ranked row's cases that did not end ok (``not_ok_*``: how many, the first's status, reason and
    tuned values); wrapped to ``limit`` (never cut)."""
    items = [f"{r['label']}: {_reason(r)}" for r in rows if r["status"] != "ok"]
    for r in rows:
        count = r.get("not_ok_cases")
        if r["status"] == "ok" and isinstance(count, (int, float)) and count == count and count > 0:
            tuned = r.get("not_ok_tuned")
            tail = f" (tuned: {tuned})" if isinstance(tuned, str) and tuned else ""
            items.append(f"{r['label']}: {int(count)} of {r['cases']} cases {r.get('not_ok_status')}: "
                         f"{r.get('not_ok_reason') or 'no error recorded'}{tail}")  # fmt: skip
    if not items:
        return []
    lines = ["cases that did not end ok (not ranked):"]
    for item in items:
        lines += textwrap.wrap(flat(item), limit, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False)
    return lines


def board_lines(task: str, group: pd.DataFrame, specs: TaskSpecs, limit: int) -> list[str]:
    """One board as lines at most ``limit`` wide: rank, implementation, Pareto layer, the ranking metric and the
    other objectives first, then what fits; the runs its rows come from, lettered, below."""
    values = group.to_numpy(dtype=object)  # not ``to_dict``: a board may have thousands of metric columns
    rows = [dict(zip(group.columns, row, strict=True)) for row in values]
    rank_by = str(rows[0].get("rank_by") or "")
    runs = list(dict.fromkeys(r for row in rows for r in str(row.get("runs") or "").split()))
    letter = {run: chr(ord("A") + i) if i < 26 else str(i) for i, run in enumerate(runs)}
    ok = [row["status"] == "ok" for row in rows]
    cols = [
        Col("#", [rank_text(r["rank"], r.get("tied")) for r in rows], 0),
        Col(
            "implementation",
            [("* " if r["submission"] != "reference" else "") + str(r["label"]) for r in rows],
            0,
            cap=32,
            flex=16,
            grow=5,  # whole after the ranking metric and the objectives, before the other metrics
        ),  # fmt: skip
        Col("Pareto", ["" if is_missing(r.get("pareto")) else str(int(r["pareto"])) for r in rows], 3, right=True),
    ]
    metrics = _metric_order(group, specs.get(task), rank_by)
    key = set(objectives(specs.get(task))) | {rank_by}
    for i, metric in enumerate(metrics):
        unit = _unit(specs, task, metric)
        cells = [number(r.get(METRIC + metric), unit) if good else "" for r, good in zip(rows, ok, strict=True)]
        priority = 1 if metric == rank_by else 4 if metric in key else 10 + i
        cols.append(Col(metric, cells, priority, right=True, cap=24))
    cols.append(Col("cases·seeds", [f"{r['cases']}·{r['seeds']}" for r in rows], 6, right=True))
    cols.append(Col("runs", [",".join(letter[x] for x in str(r.get("runs") or "").split()) for r in rows], 7))
    if not all(ok):
        cols.append(Col("status", [_status(r) for r in rows], 2, cap=20))
    lines, left_out = render(cols, limit)
    lines += not_ok(rows, limit)
    lines.append("runs: " + " · ".join(f"{letter[r]} {r}" for r in runs))
    if any(r["submission"] != "reference" for r in rows):
        lines.append("* submission")
    if len(rows) > 1 and any(r.get("no_spread") is True for r in rows):
        lines.append(f"=: ranks shared where a row has no spread for {rank_by} (one seed, nothing repeated)")
    if len(rows) > 1 and any(r.get("pareto_no_spread") is True for r in rows):
        lines.append(f"Pareto: {PARETO_NO_SPREAD}")
    if left_out:
        lines.append(f"{len(left_out)} more column(s) at a wider terminal or with --format csv: {', '.join(left_out)}")
    return lines


def _heading(task: str, specs: TaskSpecs, board: pd.DataFrame, limit: int) -> list[str]:
    rank_by = str(board["rank_by"].iloc[0]) if "rank_by" in board and len(board) else ""
    spec = specs.get(task, {})
    higher = spec.get("metrics", {}).get(rank_by, {}).get("higher_is_better") if rank_by else None
    ranked = f"ranked by {rank_by} ({'higher' if higher else 'lower'} is better; 1= : tied within the spread)"
    pareto = ", ".join(objectives(spec)) or "nothing"
    text = f"{ranked if rank_by else 'not ranked'}; Pareto layer over {pareto}"
    return ["", f"== {task} ==", *textwrap.wrap(text, limit)]


def print_table(frame: pd.DataFrame, specs: TaskSpecs) -> None:
    limit = width()
    for task in sorted(set(frame["task"])):
        board = frame[frame["task"] == task]
        say(_heading(task, specs, board, limit), limit)
        for key, group in board_groups(board):
            say(["", f"-- {board_title(key)} --", *board_lines(task, group, specs, limit)], limit)


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def print_frame(frame: pd.DataFrame, fmt: str) -> None:
    """All columns, raw numbers: CSV (no cell a spreadsheet would run as a formula, every field holding a CR or a
    LF quoted, lines ended by CRLF as RFC 4180 says, no escape sequence) or JSON records (every control, bidirectional
    control and lone surrogate as a ``\\uXXXX`` escape: the same JSON, safe to print)."""
    if fmt == "json":
        records = json.loads(frame.to_json(orient="records", double_precision=15))  # NaN as null
        text = json.dumps(records, indent=1, ensure_ascii=False)  # C0 controls are escaped by JSON itself
        sys.stdout.write(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
        return
    csv_frame(frame).to_csv(sys.stdout, index=False, lineterminator=CSV_LINES)


def show(
    runs: Sequence[dict[str, Any]], fmt: str = "table", rank_by: str | None = None, latest_only: bool = False
) -> None:
    frame, specs = boards(runs, rank_by, latest_only)
    if fmt == "table":
        print_table(frame, specs)
    else:
        print_frame(frame, fmt)
