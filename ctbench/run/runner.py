"""The runner: the cases of a run go to an executor (``ctbench.run.executors``: this machine, or a Ray cluster), each in
its own contained process (``ctbench.run.launch``); finished cases are journalled (``ctbench.run.journal``); one atomic
run file is written at the end.

A case that raises, produces NaN, crashes the interpreter, exceeds its timeout or its memory limit is recorded with
its status and the tail of its error, and the run goes on. A re-run of the same command (same cases) resumes from
the journal. When every case has run (or the run's time budget is spent: the rest are recorded as not run), the
run file ``<out>/<run_id>.json`` is written atomically and the journal removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ctbench.api.claims import declared_only
from ctbench.catalog.describe import describe
from ctbench.catalog.registry import get_task
from ctbench.isolation.lifetime import become_subreaper
from ctbench.machine.env import environment, node
from ctbench.run.cases import Case, run_key
from ctbench.run.executors import LocalExecutor
from ctbench.run.journal import Journal
from ctbench.run.launch import remove_stale_folders
from ctbench.run.records import stop_record
from ctbench.run.settings import SANDBOX_MODES, RunSettings
from ctbench.store.matching import reused_record
from ctbench.store.record import finite_interval
from ctbench.store.results import Run
from ctbench.store.verdict import case_ok

__all__ = ["SANDBOX_MODES", "RunOutcome", "RunSettings", "run"]

Printer = Callable[[str], None]


@dataclass(frozen=True)
class RunOutcome:
    path: Path
    doc: Run

    @property
    def all_ok(self) -> bool:
        """Every case ok or invalid as its task expects (a negative control)."""
        return all(case_ok(c) for c in self.doc["cases"])


def _run_checks(cases: Sequence[Case], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each task's checks across its cases; a task whose checks raise gets one failed check saying so (the run
    file is still written). Cases carried over from a stored run (``reused``) are not among them: their checks
    were decided in that run, on the machine that measured them."""
    checks: list[dict[str, Any]] = []
    for task_name in dict.fromkeys(c.task for c in cases):
        task_records = [r for r in records if r["task"] == task_name and not r.get("reused")]
        try:
            task = get_task(task_name)
            found = task.run_checks(task_records)
        except Exception as exc:
            error = f"the task's run checks raised {type(exc).__name__}: {exc}"
            checks.append({"task": task_name, "name": "run_checks", "scope": {}, "value": None, "threshold": None,
                           "passed": False, "description": error[:2000]})  # fmt: skip
            continue
        names = [claim.name for claim in task.claims]
        for rc in found:
            rc = replace(rc, check=declared_only(names, {rc.name: rc.check})[rc.name])
            checks.append(
                {
                    "task": rc.task,
                    "name": rc.name,
                    "scope": dict(rc.scope),
                    "value": rc.check.value,
                    "threshold": rc.check.threshold,
                    "passed": rc.check.passed,
                    "description": rc.check.description,
                    "interval": finite_interval(rc.check.interval),
                }
            )
    return checks


def _settle(record: dict[str, Any], case: Case) -> None:
    """What only the runner decides about a record: whether an invalid case is a negative control its task
    declares (never what the case says of itself)."""
    task = get_task(case.task)
    expected = task.expected_invalid(case.impl.name, task.scales[case.scale], case.params)
    record["expected_invalid"] = expected if record["status"] == "invalid" else None


def run(cases: Sequence[Case], settings: RunSettings, say: Printer = print, executor: Any = None) -> RunOutcome:
    """Run every case not already in the journal on ``executor`` (default: this machine), then write the run
    file. One writer per run: a second identical command raises ``UsageError`` while this one holds the lock."""
    env = environment()  # before any case: the git state is the code's, not the run's own output
    descriptions = {name: describe(get_task(name)) for name in dict.fromkeys(c.task for c in cases)}  # fail early
    key = run_key(cases, {k: v for k, v in settings.as_record().items() if k not in ("left_out",)})
    journal = Journal(settings.out_dir, key)
    journal.lock()
    try:
        executor = executor or LocalExecutor(settings, say)
        return _run(cases, settings, say, env, key, journal, executor, descriptions)
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
    descriptions: dict[str, dict[str, Any]],
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

    not_run: dict[str, dict[str, Any]] = {}  # kept out of the journal: a resumed run runs them
    for case, record in executor.run(pending, may_start, label):
        if record is None:
            error = f"not run: the run's time budget of {settings.max_run_time_s:g} s was spent"
            not_run[case.key] = stop_record(case, "timeout", error, settings, 0.0)
            continue
        if case.reuse is not None:
            record = reused_record(record, case.reuse.stored, case.reuse.run, case.reuse.spec)
        _settle(record, case)
        journal.add(case.key, record)  # first: what the terminal says is done is in the journal
        error_lines = (record.get("error") or "").strip().splitlines()
        detail = f": {error_lines[0]}" if error_lines else f" [{record['dataset']}]"
        where = f" on {record['host']}" if executor.name != "local" and record.get("host") else ""
        say(f"        {case.label()}: {record['status']} in {record.get('duration_s', 0):.1f} s{where}{detail}")
    records = [journal.records.get(c.key) or not_run[c.key] for c in cases]
    nodes = getattr(executor, "nodes", None) or {node()["hostname"]: node()}
    doc = Run.new(
        run_id=journal.header["run_id"],
        created=journal.header["created"],
        env=env,
        nodes=nodes,
        settings={**settings.as_record(), **executor.describe()},
        tasks=descriptions,
        cases=records,
        checks=_run_checks(cases, records),
    )
    path = doc.write(settings.out_dir)
    journal.remove()
    synthetic = sorted({r["dataset"] for r in records if r["dataset"].startswith("synthetic")})
    if synthetic:
        say(
            f"WARNING: some cases ran on SYNTHETIC data ({', '.join(synthetic)}), not the paper's datasets: "
            "put the real data under --data-root for comparable numbers"
        )
    return RunOutcome(path, doc)
