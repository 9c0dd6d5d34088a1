"""The runner: each case in its own contained process (``ctbench.launch``), a journal of finished cases
(``ctbench.journal``), one atomic run file at the end.

A case that raises, produces NaN, crashes the interpreter, exceeds its timeout or its memory limit is recorded with
its status and the tail of its error, and the run goes on. Finished cases are journalled as they end; a re-run of
the same command (same cases) resumes from the journal. When every case has run (or the run's time budget is
spent: the rest are recorded as not run), the run file ``<out>/<run_id>.json`` is written atomically and the
journal removed. Submissions run sandboxed (bubblewrap) where it is available.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from ctbench.cases import Case, run_key
from ctbench.describe import describe
from ctbench.env import environment
from ctbench.journal import Journal
from ctbench.launch import Limits, become_subreaper, bwrap, launch, remove_stale_folders
from ctbench.registry import get_task
from ctbench.results import SCHEMA, write_run
from ctbench.worker import ERROR_TAIL, blank_record

Printer = Callable[[str], None]
SANDBOX_MODES = ("auto", "on", "off")


def default_max_memory() -> int:
    """80% of the machine's RAM: one case may use most of it, never all of it."""
    return int(0.8 * psutil.virtual_memory().total)


@dataclass(frozen=True)
class RunSettings:
    out_dir: Path
    data_root: Path
    cache_dir: Path
    device: str
    timeout_s: float | None = None  # None: each scale's own timeout
    threads: int = 0  # torch threads per case; 0: torch's default (one per core)
    left_out: tuple[str, ...] = ()  # references not run here, with the reason (a peer library not installed)
    sandbox: str = "auto"  # "auto": submissions sandboxed where bwrap exists; "on": every case (bwrap required)
    max_memory_bytes: int = field(default_factory=default_max_memory)
    max_run_time_s: float = math.inf  # cases not started by then are recorded as not run

    def sandboxed(self, case: Case) -> bool:
        if self.sandbox == "on":
            return True
        return self.sandbox == "auto" and case.impl.submission != "reference" and bwrap() is not None


@dataclass(frozen=True)
class RunOutcome:
    path: Path
    doc: dict[str, Any]

    @property
    def all_ok(self) -> bool:
        """Every case ok or invalid as its task expects (a negative control)."""
        return all(c["status"] == "ok" or (c["status"] == "invalid" and c.get("expected_invalid"))
                   for c in self.doc["cases"])  # fmt: skip


def _stop_record(case: Case, status: str, error: str, settings: RunSettings, duration_s: float) -> dict[str, Any]:
    """The record of a case that returned none: every field a record has, with the status and the reason."""
    record = blank_record(case.to_json(), case.impl)
    record.update(status=status, error=error[-ERROR_TAIL:], duration_s=duration_s, device=settings.device)
    record.update(threads=settings.threads, sandboxed=False)
    return record


def _stop_reason(outcome: Any, timeout_s: float, settings: RunSettings) -> str:
    if outcome.status == "timeout":
        return f"exceeded the case timeout of {timeout_s:g} s"
    if outcome.status == "oom":
        limit, peak = settings.max_memory_bytes / 2**30, outcome.peak_memory_bytes / 2**30
        return f"exceeded the memory limit of {limit:.2f} GiB (peak seen {peak:.2f} GiB)"
    return f"worker exited with code {outcome.returncode}; {outcome.rejected or 'it returned no record'}"


def run_one(case: Case, settings: RunSettings, timeout_s: float, spare: frozenset[int] = frozenset()) -> dict[str, Any]:
    """Run ``case`` in a contained process; return the record it sent (if accepted) or a stop record."""
    sandbox = settings.sandboxed(case)
    outcome = launch(
        case.to_json(),
        [settings.device, str(settings.data_root), str(settings.cache_dir), str(settings.threads)],
        Limits(timeout_s, settings.max_memory_bytes),
        sandbox=sandbox,
        hidden=[settings.out_dir],
        device=settings.device,
        spare=set(spare),
    )
    if outcome.record is not None:
        return {**outcome.record, "sandboxed": sandbox}
    status = outcome.status if outcome.status != "done" else "failed"
    reason = _stop_reason(outcome, timeout_s, settings)  # first line of the error, whatever the log's length
    tail = outcome.log_tail[-max(ERROR_TAIL - len(reason) - 1, 0) :]
    record = _stop_record(case, status, f"{reason}\n{tail}".strip(), settings, outcome.duration_s)
    return {**record, "sandboxed": sandbox}


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


def run(cases: Sequence[Case], settings: RunSettings, say: Printer = print) -> RunOutcome:
    """Run every case not already in the journal, then write the run file. One writer per run: a second
    identical command raises ``UsageError`` while this one holds the journal's lock."""
    env = environment()  # before any case: the git state is the code's, not the run's own output
    key = run_key(cases)
    journal = Journal(settings.out_dir, key)
    journal.lock()
    try:
        return _run(cases, settings, say, env, key, journal)
    finally:
        journal.unlock()


def _run(
    cases: Sequence[Case], settings: RunSettings, say: Printer, env: dict[str, Any], key: str, journal: Journal
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
    for i, case in enumerate(cases, 1):
        if case.key in journal.records:
            continue
        elapsed = time.perf_counter() - start
        if elapsed > settings.max_run_time_s:
            error = f"not run: the run's time budget of {settings.max_run_time_s:g} s was spent"
            journal.add(case.key, _stop_record(case, "timeout", error, settings, 0.0))
            continue
        timeout = settings.timeout_s or get_task(case.task).scales[case.scale].timeout_s
        say(f"[{i}/{len(cases)}] {case.label()} ... (elapsed {elapsed:.0f} s)")
        record = run_one(case, settings, timeout)
        error = (record.get("error") or "").strip().splitlines()
        detail = f": {error[0]}" if error else f" [{record['dataset']}]"
        say(f"        {record['status']} in {record.get('duration_s', 0):.1f} s{detail}")
        journal.add(case.key, record)
    records = [journal.records[c.key] for c in cases]
    doc = {
        "schema": SCHEMA,
        "run_id": journal.header["run_id"],
        "created": journal.header["created"],
        "env": env,
        "settings": {
            "device": settings.device,
            "data_root": str(settings.data_root),
            "threads": settings.threads,
            "left_out": list(settings.left_out),
            "sandbox": settings.sandbox,
            "max_memory_bytes": settings.max_memory_bytes,
        },
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
