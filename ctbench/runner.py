"""The runner: the cases of a run go to an executor (``ctbench.executors``: this machine, or a Ray cluster), each in
its own contained process (``ctbench.launch``); finished cases are journalled (``ctbench.journal``); one atomic
run file is written at the end.

A case that raises, produces NaN, crashes the interpreter, exceeds its timeout or its memory limit is recorded with
its status and the tail of its error, and the run goes on. A re-run of the same command (same cases) resumes from
the journal. When every case has run (or the run's time budget is spent: the rest are recorded as not run), the
run file ``<out>/<run_id>.json`` is written atomically and the journal removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ctbench.cases import Case, run_key
from ctbench.describe import describe
from ctbench.env import environment, node
from ctbench.executors import LocalExecutor
from ctbench.journal import Journal
from ctbench.launch import become_subreaper, remove_stale_folders
from ctbench.registry import get_task
from ctbench.results import SCHEMA, write_run
from ctbench.settings import SANDBOX_MODES, RunSettings, stop_record

__all__ = ["SANDBOX_MODES", "RunOutcome", "RunSettings", "run"]

Printer = Callable[[str], None]


@dataclass(frozen=True)
class RunOutcome:
    path: Path
    doc: dict[str, Any]

    @property
    def all_ok(self) -> bool:
        """Every case ok or invalid as its task expects (a negative control)."""
        return all(
            c["status"] == "ok" or (c["status"] == "invalid" and c.get("expected_invalid")) for c in self.doc["cases"]
        )


def _run_checks(cases: Sequence[Case], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    checks = []
    for task_name in dict.fromkeys(c.task for c in cases):
        task_records = [r for r in records if r["task"] == task_name]
        for rc in get_task(task_name).run_checks(task_records):
            checks.append(
                {
                    "task": rc.task,
                    "name": rc.name,
                    "scope": dict(rc.scope),
                    "value": rc.check.value,
                    "threshold": rc.check.threshold,
                    "passed": rc.check.passed,
                    "description": rc.check.description,
                }
            )
    return checks


def run(cases: Sequence[Case], settings: RunSettings, say: Printer = print, executor: Any = None) -> RunOutcome:
    """Run every case not already in the journal on ``executor`` (default: this machine), then write the run
    file. One writer per run: a second identical command raises ``UsageError`` while this one holds the lock."""
    env = environment()  # before any case: the git state is the code's, not the run's own output
    key = run_key(cases)
    journal = Journal(settings.out_dir, key)
    journal.lock()
    try:
        return _run(cases, settings, say, env, key, journal, executor or LocalExecutor(settings, say))
    finally:
        journal.unlock()


def _run(
    cases: Sequence[Case],
    settings: RunSettings,
    say: Printer,
    env: dict[str, Any],
    key: str,
    journal: Journal,
    executor: Any,
) -> RunOutcome:
    become_subreaper()
    for folder in remove_stale_folders():
        say(f"removed {folder}, left by a runner that was killed")
    journal.load({c.key for c in cases})
    for warning in journal.warnings:
        say(f"WARNING: {warning}")
    now = datetime.now(timezone.utc)
    journal.start(f"{now:%Y%m%dT%H%M%SZ}-{key}", now.isoformat(timespec="seconds"))
    if journal.records:
        say(f"resuming run {journal.header['run_id']}: {len(journal.records)} of {len(cases)} cases already done")
    start = time.perf_counter()
    index = {c.key: i for i, c in enumerate(cases, 1)}
    pending = [
        (c, settings.timeout_s or get_task(c.task).scales[c.scale].timeout_s)
        for c in cases
        if c.key not in journal.records
    ]

    def label(case: Case) -> str:
        return f"[{index[case.key]}/{len(cases)}] {case.label()} (elapsed {time.perf_counter() - start:.0f} s)"

    def may_start() -> bool:
        return time.perf_counter() - start <= settings.max_run_time_s

    for case, record in executor.run(pending, may_start, label):
        if record is None:
            error = f"not run: the run's time budget of {settings.max_run_time_s:g} s was spent"
            record = stop_record(case, "timeout", error, settings, 0.0)
        journal.add(case.key, record)  # first: what the terminal says is done is in the journal
        error = (record.get("error") or "").strip().splitlines()
        detail = f": {error[0]}" if error else f" [{record['dataset']}]"
        where = f" on {record['host']}" if executor.name != "local" and record.get("host") else ""
        say(f"        {case.label()}: {record['status']} in {record.get('duration_s', 0):.1f} s{where}{detail}")
    records = [journal.records[c.key] for c in cases]
    nodes = getattr(executor, "nodes", None) or {node()["hostname"]: node()}
    doc = {
        "schema": SCHEMA,
        "run_id": journal.header["run_id"],
        "created": journal.header["created"],
        "env": env,
        "nodes": nodes,
        "settings": {**settings.as_record(), **executor.describe()},
        "tasks": {name: describe(get_task(name)) for name in dict.fromkeys(c.task for c in cases)},
        "cases": records,
        "checks": _run_checks(cases, records),
    }
    path = write_run(doc, settings.out_dir)
    journal.remove()
    synthetic = sorted({r["dataset"] for r in records if r["dataset"].startswith("synthetic")})
    if synthetic:
        say(
            f"WARNING: some cases ran on SYNTHETIC data ({', '.join(synthetic)}), not the paper's datasets: "
            "put the real data under --data-root for comparable numbers"
        )
    return RunOutcome(path, doc)
