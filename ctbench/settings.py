"""A run's settings, and the records of cases that sent none (stopped by a limit, crashed, not run)."""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ctbench.cases import Case
from ctbench.launch import Outcome, bwrap
from ctbench.worker import ERROR_TAIL, blank_record, host_facts

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
    max_memory_bytes: int | None = None  # None: 80% of the RAM of the machine the case runs on
    max_run_time_s: float = math.inf  # cases not started by then are recorded as not run
    warm: bool = True  # start local cases from a warm template (``ctbench.template``); False: a fresh interpreter
    extra: dict[str, Any] = field(default_factory=dict)  # what an executor adds to the run's settings record

    def sandboxed(self, case: Case) -> bool:
        if self.sandbox == "on":
            return True
        return self.sandbox == "auto" and case.impl.submission != "reference" and bwrap() is not None

    def memory_limit(self) -> int:
        return self.max_memory_bytes or default_max_memory()

    def worker_args(self) -> list[str]:
        return [self.device, str(self.data_root), str(self.cache_dir), str(self.threads)]

    def as_record(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "data_root": str(self.data_root),
            "threads": self.threads,
            "left_out": list(self.left_out),
            "sandbox": self.sandbox,
            "max_memory_bytes": self.max_memory_bytes,
            "start": "warm" if self.warm else "cold",
            **self.extra,
        }


def stop_record(case: Case, status: str, error: str, settings: RunSettings, duration_s: float) -> dict[str, Any]:
    """The record of a case that sent none: every field a record has, with the status and the reason."""
    record = blank_record(case.to_json(), case.impl)
    record.update(status=status, error=error[-ERROR_TAIL:], duration_s=duration_s, device=settings.device)
    record.update(threads=settings.threads, sandboxed=False, host=socket.gethostname())
    return record


def _reason(outcome: Outcome, timeout_s: float, limit: int) -> str:
    if outcome.status == "timeout":
        return f"exceeded the case timeout of {timeout_s:g} s"
    if outcome.status == "oom":
        return (
            f"exceeded the memory limit of {limit / 2**30:.2f} GiB "
            f"(peak seen {outcome.peak_memory_bytes / 2**30:.2f} GiB)"
        )
    return f"worker exited with code {outcome.returncode}; {outcome.rejected or 'it returned no record'}"


def record_of(outcome: Outcome, case: Case, settings: RunSettings, timeout_s: float, sandbox: bool) -> dict[str, Any]:
    """The record a case sent (when the runner accepted it), else a stop record whose error starts with why."""
    if outcome.record is not None:
        return {**outcome.record, "sandboxed": sandbox}
    status = outcome.status if outcome.status != "done" else "failed"
    reason = _reason(outcome, timeout_s, settings.memory_limit())
    tail = outcome.log_tail[-max(ERROR_TAIL - len(reason) - 1, 0) :]
    record = stop_record(case, status, f"{reason}\n{tail}".strip(), settings, outcome.duration_s)
    return {**record, **host_facts(), "sandboxed": sandbox}
