"""The runner: each case in its own subprocess, a journal of finished cases, one atomic run file at the end.

A case that raises, produces NaN, crashes the interpreter or exceeds its timeout is recorded with its status and
the tail of its error, and the run goes on. Finished cases are appended to ``<out>/.partial/<key>.jsonl`` as they
end; a re-run of the same command (same cases) finds that journal and skips them (resume). When every case has
run, the run file ``<out>/<run_id>.json`` is written atomically and the journal removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ctbench.cases import Case, run_key
from ctbench.describe import describe
from ctbench.env import environment
from ctbench.registry import get_task
from ctbench.results import SCHEMA, write_run
from ctbench.worker import ERROR_TAIL, blank_record

Printer = Callable[[str], None]


@dataclass(frozen=True)
class RunSettings:
    out_dir: Path
    data_root: Path
    cache_dir: Path
    device: str
    timeout_s: float | None = None  # None: each scale's own timeout
    threads: int = 0  # torch threads per case; 0: torch's default (one per core)


@dataclass(frozen=True)
class RunOutcome:
    path: Path
    doc: dict[str, Any]

    @property
    def all_ok(self) -> bool:
        return all(c["status"] == "ok" for c in self.doc["cases"])


def _stop_record(case: Case, status: str, error: str) -> dict[str, Any]:
    record = blank_record(case.to_json(), case.impl)
    record.update(status=status, error=error[-ERROR_TAIL:])
    return record


def run_one(case: Case, settings: RunSettings, timeout_s: float) -> dict[str, Any]:
    """Run ``case`` in a fresh Python process; kill its whole process group at the timeout."""
    with tempfile.TemporaryDirectory(prefix="ctbench-case-") as tmp:
        spec, record_path, log_path = Path(tmp, "case.json"), Path(tmp, "record.json"), Path(tmp, "log.txt")
        spec.write_text(json.dumps(case.to_json()))
        args = [
            str(spec),
            str(record_path),
            settings.device,
            str(settings.data_root),
            str(settings.cache_dir),
            str(settings.threads),
        ]
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ctbench.worker", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return _stop_record(case, "timeout", f"exceeded the case timeout of {timeout_s:.0f} s")
            except BaseException:  # Ctrl-C: take the child down with us, keep the journal
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
        if record_path.exists():
            return json.loads(record_path.read_text())
        tail = log_path.read_text(errors="replace")
        return _stop_record(case, "failed", f"worker exited with code {proc.returncode}\n{tail}")


class Journal:
    """Finished case records of an unfinished run, one JSON line each, flushed as they come."""

    def __init__(self, out_dir: Path, key: str):
        self.path = out_dir / ".partial" / f"{key}.jsonl"
        self.header: dict[str, Any] = {}
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            lines = self.path.read_text().splitlines()
            self.header = json.loads(lines[0])
            for line in lines[1:]:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: that case runs again
                    continue
                self.records[entry["key"]] = entry["record"]

    def start(self, run_id: str, created: str) -> None:
        if not self.header:
            self.header = {"run_id": run_id, "created": created}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.header) + "\n")

    def add(self, key: str, record: dict[str, Any]) -> None:
        self.records[key] = record
        with open(self.path, "a") as f:
            f.write(json.dumps({"key": key, "record": record}) + "\n")
            f.flush()
            os.fsync(f.fileno())


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
    """Run every case not already in the journal, then write the run file."""
    env = environment()  # before any case: the git state is the code's, not the run's own output
    key = run_key(cases)
    journal = Journal(settings.out_dir, key)
    now = datetime.now(timezone.utc)
    journal.start(f"{now:%Y%m%dT%H%M%SZ}-{key}", now.isoformat(timespec="seconds"))
    if journal.records:
        say(f"resuming run {journal.header['run_id']}: {len(journal.records)} of {len(cases)} cases already done")
    start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        if case.key in journal.records:
            continue
        timeout = settings.timeout_s or get_task(case.task).scales[case.scale].timeout_s
        say(f"[{i}/{len(cases)}] {case.label()} ... (elapsed {time.perf_counter() - start:.0f} s)")
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
        "settings": {"device": settings.device, "data_root": str(settings.data_root), "threads": settings.threads},
        "tasks": {name: describe(get_task(name)) for name in dict.fromkeys(c.task for c in cases)},
        "cases": records,
        "checks": _run_checks(cases, records),
    }
    path = write_run(doc, settings.out_dir)
    journal.path.unlink()
    synthetic = sorted({r["dataset"] for r in records if r["dataset"].startswith("synthetic")})
    if synthetic:
        say(
            f"WARNING: some cases ran on SYNTHETIC data ({', '.join(synthetic)}), not the paper's datasets: "
            "put the real data under --data-root for comparable numbers"
        )
    return RunOutcome(path, doc)
