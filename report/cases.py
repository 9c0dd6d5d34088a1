"""The case pages: every case of a task, a page at a time, with its metrics, checks and error.

A case page holds ``CASES_PER_PAGE`` rows (``report.build``), and a site over many cases holds many of them, so the rows
are written here as HTML text, not by the template: a hundred thousand rows through jinja2 took several times as
long. Every string from a run file still goes through ``text`` (escaped, and isolated in ``<bdi>`` where it could
reorder the page: ``report.fmt.bdi``).
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from ctbench.boards.cells import is_missing, number
from ctbench.boards.groups import SCALE_ORDER, natural
from ctbench.boards.table import params_label
from ctbench.store.text import shown
from ctbench.store.verdict import outcome
from report.fmt import bdi
from report.views import TaskMeta, case_where, check_outcome, error_text

MARKS = {"pass": "✓", "fail": "✗", "inconclusive": "?"}


def text(value: str) -> str:
    """``value`` as HTML text: escaped; in ``<bdi>`` where it holds a character that can change the text's direction."""
    s = shown(value)
    return html.escape(s) if s.isascii() else str(bdi(s))


_name = functools.lru_cache(maxsize=2**14)(text)  # for names, points and run ids: they repeat from case to case


_natural = functools.lru_cache(maxsize=2**12)(natural)


def case_order(r: Mapping[str, Any]) -> tuple:
    """The order of the case pages: scale (smoke, small, full), dataset, parameters by value, implementation,
    submission, seed, run."""
    params = _natural(params_label(r["params"]))
    return (SCALE_ORDER.get(r["scale"], 9), _natural(r["scale"]), _natural(r["dataset"]), params, r["impl"],
            r["submission"], r["seed"], r["run_id"])  # fmt: skip


@dataclass(frozen=True)
class CaseRow:
    """One case: its point and implementation as plain text (the page index names a page's first and last), and its
    table row as HTML."""

    where: str
    impl: str
    html: Markup


def _row(i: int, r: Mapping[str, Any], where: str, columns: Sequence[tuple[str, str]]) -> str:
    ok = r["status"] == "ok"
    reference = r["submission"] == "reference"
    status = outcome(r)
    tag = (
        '<span class="tag ref">reference</span>'
        if reference
        else f'<span class="tag sub">{_name(str(r["submission"]))}</span>'
    )
    error = error_text(r.get("error") or r.get("note") or "")
    if error:
        kind = "note" if ok else "error"
        error = f'<details class="error"><summary>{kind}</summary><pre>{text(error)}</pre></details>'
    metrics = r.get("metrics") or {}
    cells = []
    for name, unit in columns:  # ``number`` writes digits, signs, "e", "." and its unit suffixes: nothing to escape
        value = metrics.get(name)
        if is_missing(value):
            cells.append('<td class="num" data-v="">—</td>')
        else:
            cells.append(f'<td class="num" data-v="{float(value)!r}">{number(value, unit)}</td>')
    checks = []
    for name, check in sorted(r["checks"].items()):
        decided = check_outcome(check)
        title = f"{decided}: {number(check.get('value'))} (threshold {number(check.get('threshold'))})"
        checks.append(f'<span class="check c-{decided}" title="{title}">{MARKS[decided]} {_name(str(name))}</span>')
    return (
        f'<tr class="case {"ref" if reference else "sub"}{"" if ok else " bad"}"><td class="num">{i}</td>'
        f'<td class="impl">{_name(str(r["impl"]))} {tag}</td><td class="where">{_name(where)}</td>'
        f'<td><span class="status s-{html.escape(status.replace(" ", "-"))}">{html.escape(status)}</span>{error}</td>'
        f'{"".join(cells)}<td class="checks">{" ".join(checks)}</td>'
        f"<td><code>{_name(str(r['run_id']))}</code></td></tr>"
    )


def case_rows(records: Sequence[Mapping[str, Any]], meta: TaskMeta) -> list[CaseRow]:
    """Every case of a task, in ``case_order``, numbered from 1: where it ran, its status, every metric of the task,
    its checks, and its error or note (its end: ``views.error_text``)."""
    columns = [(c.name, c.unit) for c in meta.columns.values()]
    rows = []
    for i, r in enumerate(sorted(records, key=case_order), 1):
        where = case_where(r)
        rows.append(CaseRow(where, str(r["impl"]), Markup(_row(i, r, where, columns))))
    return rows
