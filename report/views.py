"""What the templates show, computed from the run documents and ``ctbench.boards.table``'s frames.

Everything here turns pandas frames and run records into plain rows (dicts and dataclasses) with their display
text already formatted; the templates only lay them out (and escape them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import pandas as pd

from ctbench.boards.cells import header_unit, is_missing, number
from ctbench.boards.groups import KEYS, SCALE_ORDER, board_groups, natural
from ctbench.boards.ranking import PARETO_NO_SPREAD, objectives, rank_text
from ctbench.boards.table import METRIC, params_label, tuned_text
from ctbench.machine.env import hardware_label
from ctbench.store.text import shown
from ctbench.store.verdict import outcome
from report.fmt import safe_url, slug


@dataclass(frozen=True)
class Column:
    """A metric column: its unit, which way is better ("high", "low" or ""), whether it ranks the board."""

    name: str
    unit: str
    better: str
    primary: bool
    description: str

    @property
    def unit_label(self) -> str:
        return header_unit(self.unit)


@dataclass
class TaskMeta:
    """A task as the pages need it, from the description its run files carry (``ctbench.catalog.describe``); ``spec`` is
    None for a run file that carries none (an old file of a task this installation does not know)."""

    name: str
    page: str
    spec: Mapping[str, Any] | None
    scales: list[str] = field(default_factory=list)
    columns: dict[str, Column] = field(default_factory=dict)

    @property
    def primary(self) -> str | None:
        return self.spec.get("primary_metric") if self.spec else None

    @property
    def objectives(self) -> dict[str, str]:
        return objectives(self.spec)

    @property
    def higher_is_better(self) -> bool | None:
        column = self.columns.get(self.primary or "")
        return None if column is None or not column.better else column.better == "high"


def task_meta(name: str, page: str, spec: Mapping[str, Any] | None, metric_names: Sequence[str],
              scales: Sequence[str] = ()) -> TaskMeta:  # fmt: skip
    """Columns in the task's declared order, then metrics the description does not declare (older versions)."""
    declared = dict(spec.get("metrics", {})) if spec else {}
    primary = spec.get("primary_metric") if spec else None
    columns = {}
    for metric in [*declared, *sorted(set(metric_names) - set(declared))]:
        m = declared.get(metric) if isinstance(declared.get(metric), dict) else {}
        direction = m.get("higher_is_better")
        columns[metric] = Column(
            metric,
            str(m.get("unit", "")),
            "" if direction is None else ("high" if direction else "low"),
            metric == primary,
            str(m.get("description", "not declared by the task's description")),
        )
    ordered = sorted(scales, key=lambda s: (SCALE_ORDER.get(s, 9), s))
    return TaskMeta(name, page, spec, ordered, columns)


def page_names(names: Sequence[str]) -> dict[str, str]:
    """A distinct, file-name-safe page for each task name; none ends like a case page (``case_page``)."""
    pages: dict[str, str] = {}
    for name in names:
        base, i = f"task-{slug(name)}", 1
        if re.search(r"-cases(-\d+)*$", base):
            base += "-t"  # so that no task page, nor its numbered twin, takes the name of another task's case page
        page = f"{base}.html"
        while page in pages.values():
            i += 1
            page = f"{base}-{i}.html"
        pages[name] = page
    return pages


def case_page(page: str, number: int) -> str:
    """The name of a task's ``number``-th case page (from 1): ``task-x.html`` -> ``task-x-cases-1.html``."""
    return f"{page.removesuffix('.html')}-cases-{number}.html"


@dataclass
class Board:
    """One ranked group: same task, dataset, scale, params (and hardware, when the table groups by it).

    ``columns`` are the key metrics, shown in the board: the ranking metric, then the task's other objectives;
    ``more`` are the others, in the board's "all metrics" table.
    """

    caption: list[tuple[str, str, str]]  # (label, value, anchor on the environment page)
    columns: list[Column]
    rows: list[dict[str, Any]]
    unranked: str  # why no row has a rank, or "" when ranked
    show_hardware: bool  # a column for it, when the table does not group by hardware
    more: list[Column] = field(default_factory=list)
    rank_by: str = ""
    objectives: str = ""  # the objectives the Pareto layers are over, as text


def _cell(value: Any, column: Column) -> dict[str, Any]:
    return {"text": number(value, column.unit), "sort": "" if is_missing(value) else repr(float(value))}


def key_columns(meta: TaskMeta, rank_by: str, present: Sequence[str]) -> list[str]:
    """The metrics a board shows first: the one it is ranked by, then the task's objectives."""
    names = [rank_by] if rank_by else []
    names += [m for m in objectives(meta.spec) if m not in names]
    return [m for m in names if m in present]


def _code_text(code: str, label: str) -> str:
    """A row's code as shown: its content hash, short; a spec (older run files) only where it tells rows apart."""
    if ":" not in code:
        return code[:8]
    return code.rsplit("/", 1)[-1] if " @" in label else ""


def _row(r: Mapping[str, Any], key: list[Column], more: list[Column], links: Mapping[str, str]) -> dict[str, Any]:
    code = str(r.get("code") or "")
    runs = str(r.get("runs") or "").split()
    return {
        "rank": rank_text(r["rank"], r.get("tied")),
        "rank_sort": "" if is_missing(r["rank"]) else str(int(r["rank"])),
        "tied": bool(r.get("tied")),
        "pareto": "—" if is_missing(r.get("pareto")) else str(int(r["pareto"])),
        "pareto_sort": "" if is_missing(r.get("pareto")) else str(int(r["pareto"])),
        "impl": r["impl"],
        "label": r.get("label") or r["impl"],
        "url": safe_url(r.get("url")),
        "submission": r["submission"],
        "reference": r["submission"] == "reference",
        "code": _code_text(code, str(r.get("label") or "")),
        "code_title": f"{'spec' if ':' in code else 'content hash'}: {code}; loaded from {r.get('impl_spec') or '?'}",
        "seeds": int(r["seeds"]),
        "cases": int(r.get("cases") or 0),
        "ok_cases": int(r.get("ok_cases") or 0),
        "runs": runs,
        "status": r["status"],
        "status_text": outcome(r),
        "reason": r.get("expected_invalid") or r.get("reason") or "",
        "hardware": r.get("hardware", ""),
        "hardware_link": links.get(r.get("hardware", ""), ""),
        "cells": [_cell(r.get(METRIC + c.name), c) for c in key],
        "more_cells": [_cell(r.get(METRIC + c.name), c) for c in more],
    }


def _unranked(rows: list[dict[str, Any]], meta: TaskMeta, rank_by: str) -> str:
    if any(row["rank_sort"] for row in rows):
        return ""
    if meta.spec is None:
        return "not ranked: the run file does not describe this task"
    if all(row["status"] != "ok" for row in rows):
        return "not ranked: no case ended ok"
    return f"not ranked: no {rank_by or meta.primary} in this group"


def boards(board: pd.DataFrame, meta: TaskMeta, hardware_links: Mapping[str, str]) -> list[Board]:
    """``ctbench.boards.table.leaderboard``'s frame cut into one board per group, smoke before small, depth 16
    before 128; the key metrics first, the rest apart."""
    out = []
    for key, group in board_groups(board):
        present = [
            c.name for c in meta.columns.values() if METRIC + c.name in group and group[METRIC + c.name].notna().any()
        ]
        rank_by = str(group["rank_by"].iloc[0]) if "rank_by" in group and len(group) else ""
        first = key_columns(meta, rank_by, present)
        key_cols = [replace(meta.columns[m], primary=m == rank_by) for m in first]
        more = [replace(meta.columns[m], primary=False) for m in present if m not in first]
        caption = [
            (k, str(v), hardware_links.get(str(v), "") if k == "hardware" else "")
            for k, v in zip(KEYS, key, strict=True)
        ]
        rows = [_row(r, key_cols, more, hardware_links) for r in group.to_dict("records")]
        objectives_text = str(group["objectives"].iloc[0]) if "objectives" in group else ""
        declared = [m for m in objectives(meta.spec) if m in meta.columns and meta.columns[m].better]
        if declared and objectives_text != ", ".join(declared):
            caption.append(("Pareto over", objectives_text or "nothing: an objective is missing in every row", ""))
        if "no_spread" in group and len(group) > 1 and group["no_spread"].fillna(False).astype(bool).any():
            caption.append(("ranks", f"shared where a row has no spread for {rank_by} (one seed, nothing repeated): "
                            "its difference from another row cannot be told from noise", ""))  # fmt: skip
        if len(group) > 1 and group.get("pareto_no_spread", pd.Series(dtype=bool)).fillna(False).astype(bool).any():
            caption.append(("Pareto", PARETO_NO_SPREAD, ""))
        out.append(Board(caption, key_cols, rows, _unranked(rows, meta, rank_by), "hardware" not in KEYS, more,
                         rank_by, objectives_text))  # fmt: skip
    return out


def _scope(scope: Mapping[str, Any]) -> str:
    return params_label(dict(scope))


OUTCOME_ORDER = {"fail": 0, "inconclusive": 1, "pass": 2}


def check_outcome(check: Mapping[str, Any]) -> str:
    """``pass``, ``fail`` or ``inconclusive`` (``passed`` null: the measured interval holds the threshold)."""
    passed = check.get("passed")
    return "inconclusive" if passed is None else "pass" if passed else "fail"


def _check_row(name: str, check: Mapping[str, Any], **where: Any) -> dict[str, Any]:
    interval = check.get("interval")
    value = number(check.get("value"))
    if isinstance(interval, list) and len(interval) == 2:
        value += f" [{number(interval[0])}, {number(interval[1])}]"
    outcome = check_outcome(check)
    return {
        **where,
        "name": name,
        "value": value,
        "threshold": number(check.get("threshold")),
        "outcome": outcome,
        "passed": outcome == "pass",
        "description": check.get("description") or "",
    }


def run_checks(runs: Sequence[Mapping[str, Any]], task: str) -> list[dict[str, Any]]:
    """Checks across cases recorded at run level (e.g. memory flat in depth), failing ones first."""
    rows = [
        _check_row(c["name"], c, run_id=run["run_id"], scope=_scope(c.get("scope", {})))
        for run in runs
        for c in run.get("checks", [])
        if isinstance(c, dict) and c.get("task") == task and "name" in c
    ]
    return sorted(rows, key=lambda r: OUTCOME_ORDER[r["outcome"]])


def case_checks(records: Sequence[Mapping[str, Any]], passing: bool = True) -> list[dict[str, Any]]:
    """Every per-case check with its value, threshold and outcome, failing ones first; without the passing ones when
    ``passing`` is False."""
    rows = [
        _check_row(name, check, run_id=r["run_id"], impl=r["impl"], submission=r["submission"], case=case_where(r))
        for r in records
        for name, check in r["checks"].items()
        if passing or check_outcome(check) != "pass"
    ]
    return sorted(rows, key=lambda r: OUTCOME_ORDER[r["outcome"]])


def check_summary(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The per-case checks of ``records`` counted per name: passed, failed, inconclusive, and what the check tests;
    the names with failures first."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        for name, check in r["checks"].items():
            entry = out.get(name)
            if entry is None:
                description = check.get("description") or ""
                entry = out[name] = {"name": name, "pass": 0, "fail": 0, "inconclusive": 0, "description": description}
            entry[check_outcome(check)] += 1
    return sorted(out.values(), key=lambda e: (-e["fail"], -e["inconclusive"], e["name"]))


ERROR_CHARS = 4000  # characters of an error shown on a page: its end (a traceback's last lines); the run file has all


def error_text(text: str) -> str:
    """An error or a note as a page shows it: stripped, and cut to its last ``ERROR_CHARS`` characters."""
    text = text.strip()
    if len(text) <= ERROR_CHARS:
        return text
    return (
        f"[the first {len(text) - ERROR_CHARS} of {len(text)} characters are in the run file]\n…" + text[-ERROR_CHARS:]
    )


def case_where(r: Mapping[str, Any]) -> str:
    """A case's point as the pages name it: scale, dataset, parameters and seed."""
    return f"{r['scale']} · {r['dataset']} · {params_label(r['params'])} · seed {r['seed']}"


def failures(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Cases that did not end ok, each with its reason (its error's end, ``error_text``), the values its protocol tuned
    (``tuned_*`` metrics) and its note (``ran_ok`` False); then the notes of cases that ended ok (``ran_ok`` True),
    which the task page lists apart."""
    rows = [
        {
            "run_id": r["run_id"],
            "impl": r["impl"],
            "submission": r["submission"],
            "case": case_where(r),
            "status": r["status"],
            "ran_ok": r["status"] == "ok",
            "tuned": tuned_text(r.get("metrics") or {}) if r["status"] != "ok" else "",
            "note": (r.get("note") or "").strip() if r["status"] != "ok" else "",
            "error": error_text(r.get("error") or r.get("note") or "") or "(no error recorded)",
        }
        for r in records
        if r["status"] != "ok" or r.get("note")
    ]
    return sorted(rows, key=lambda row: row["ran_ok"])


def paper_rows(df: pd.DataFrame, meta: TaskMeta) -> list[dict[str, Any]]:
    """The paper's numbers, each beside ours for the same implementation and metric.

    Ours are medians over seeds per (dataset, scale, params); the ones on the paper's dataset come first,
    others are flagged as not comparable.
    """
    if meta.spec is None:
        return []
    ok = df[df["status"] == "ok"]
    rows = []
    for pn in (SimpleNamespace(**{"note": "", **n}) for n in meta.spec.get("paper_numbers", [])):
        column = meta.columns.get(pn.metric) or Column(pn.metric, "", "", False, "")
        col = METRIC + pn.metric
        ours = []
        if col in ok:
            sub = ok[(ok["impl"] == pn.impl) & ok[col].notna()]
            med = sub.groupby(["dataset", "scale", "params"])[col].median().reset_index()
            for r in med.to_dict("records"):
                ours.append(
                    {
                        "text": number(r[col], column.unit),
                        "where": f"{r['dataset']} · {r['scale']} · {r['params']}",
                        "comparable": r["dataset"] == pn.dataset,
                        "order": (
                            r["dataset"] != pn.dataset,
                            -SCALE_ORDER.get(r["scale"], -1),
                            natural(r["params"]),
                        ),
                    }
                )
        ours.sort(key=lambda o: o["order"])
        rows.append(
            {
                "metric": pn.metric,
                "unit": column.unit_label,
                "impl": pn.impl,
                "dataset": pn.dataset,
                "paper": number(pn.value, column.unit),
                "source": pn.source,
                "note": pn.note,
                "ours": ours,
            }
        )
    return rows


ENV_FIELDS = (
    ("ctbench", "ctbench"),
    ("git_commit", "git commit"),
    ("git_dirty", "uncommitted changes"),
    ("python", "Python"),
    ("torch", "torch"),
    ("cuda", "CUDA"),
    ("cudnn", "cuDNN"),
    ("cuda_available", "CUDA available"),
    ("cpu", "CPU"),
    ("cpu_cores", "CPU cores"),
    ("torch_threads", "torch threads"),
    ("ram_bytes", "RAM"),
    ("platform", "platform"),
    ("hostname", "host"),
)


def _env_value(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key == "ram_bytes" and isinstance(value, (int, float)):
        return number(value, "bytes")
    if key == "gpus":
        gpus = [
            f"{g.get('name', '?')} (driver {g.get('driver', '?')}, {number(g.get('memory_bytes'), 'bytes')})"
            for g in value
            if isinstance(g, dict)
        ]
        return "; ".join(gpus) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none set"
    return str(value)


def environments(runs: Sequence[Mapping[str, Any]], hardware_links: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every run's env record, grouped by the hardware label the leaderboards link to."""
    sections: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r["created"], reverse=True):
        env, label = run["env"], hardware_label(run["env"])
        section = sections.setdefault(label, {"label": label, "anchor": hardware_links[label], "runs": []})
        known = [(title, _env_value(key, env.get(key))) for key, title in ENV_FIELDS]
        known.insert(7, ("GPUs", _env_value("gpus", env.get("gpus") or [])))
        known.append(("thread settings", _env_value("env_vars", env.get("env_vars") or {})))
        named = {k for k, _ in ENV_FIELDS} | {"gpus", "env_vars"}
        extra = [(k, _env_value(k, v)) for k, v in env.items() if k not in named]
        settings = run.get("settings") or {}
        section["runs"].append(
            {
                "run_id": run["run_id"],
                "created": run["created"],
                "path": shown(run.get("_path", "")),
                "cases": len(run["cases"]),
                "settings": ", ".join(f"{k}={v}" for k, v in settings.items()) if isinstance(settings, dict) else "",
                "fields": known + extra,
            }
        )
    return list(sections.values())
