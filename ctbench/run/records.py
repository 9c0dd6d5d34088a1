"""The record of a case as the runner keeps it: the one the case sent (accepted by ``ctbench.run.launch``) with what
only the runner may say about it (where it ran, what held it, its outside view of the step, and ``suspect`` when
the case's own figures contradict that view: ``ctbench.isolation.outside``), or a stop record when it sent none
(stopped by a limit, crashed, not run)."""

from __future__ import annotations

import signal
from typing import Any

from ctbench.catalog.registry import get_task
from ctbench.isolation.outside import nothing_seen, verdict
from ctbench.run.cases import Case
from ctbench.run.launch import Outcome
from ctbench.run.settings import RunSettings
from ctbench.store.record import ERROR_TAIL, Record


def stop_record(
    case: Case, status: str, error: str, settings: RunSettings, duration_s: float, where: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The record of a case that sent none: every field a record has, with the status and the reason."""
    return Record.stopped(
        case.to_json(),
        status,
        error,
        duration_s=duration_s,
        device=settings.device,
        threads=settings.threads,
        sandboxed=False,
        outside=nothing_seen(),
        **(where or {}),
    )


def _reason(outcome: Outcome, timeout_s: float, limit: int) -> str:
    if outcome.status == "timeout":
        return f"exceeded the case timeout of {timeout_s:g} s"
    if outcome.status == "oom":
        return (
            f"exceeded the memory limit of {limit / 2**30:.2f} GiB "
            f"(peak seen {outcome.peak_memory_bytes / 2**30:.2f} GiB)"
        )
    return f"worker {exit_reason(outcome.returncode)}; {outcome.rejected or 'it returned no record'}"


def exit_reason(code: int | None) -> str:
    """How a worker ended, naming the signal that killed it: -n is Popen's code for signal n (Python's fault handler
    re-raises the signal), 128 + n a shell's or bubblewrap's."""
    if code is not None and code < 0 and (name := _signal_name(-code)):
        return f"was killed by {name}"
    if code is not None and code > 128 and (name := _signal_name(code - 128)):
        return f"exited with code {code} ({name})"
    return f"exited with code {code}"


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def timed_calls(case: Case) -> int | None:
    """How many calls the engine times for ``case`` (its scale's policy), None if the runner cannot load its task."""
    try:
        return get_task(case.task).scales[case.scale].policy.repeat
    except Exception:  # a task that does not load here: the mark's own count stands
        return None


def record_of(
    outcome: Outcome,
    case: Case,
    settings: RunSettings,
    timeout_s: float,
    sandbox: bool,
    where: dict[str, Any],
    memory_limit: int,
) -> dict[str, Any]:
    """The record a case sent, else a stop record whose error starts with why. ``where`` (its host and hardware
    label, as the runner or the case's node sees them) overrides what the case said about itself; so do the
    runner's ``containment`` and ``outside`` figures. A case whose figures the outside view contradicts is
    ``suspect``, its reason first in its error."""
    runner = {"sandboxed": sandbox, "start": outcome.start, "containment": outcome.containment,
              "outside": dict(outcome.outside)}  # fmt: skip
    if outcome.record is not None:
        record = {**outcome.record, **where, **runner}
        reason = verdict(record, outcome.outside, timed_calls(case), settings.device)
        if reason and record["status"] in ("ok", "invalid"):
            error = "\n".join(filter(None, [reason, record.get("error")]))
            record.update(status="suspect", error=error[:ERROR_TAIL])
        return record
    status = outcome.status if outcome.status != "done" else "failed"
    reason = _reason(outcome, timeout_s, memory_limit)
    tail = outcome.log_tail[-max(ERROR_TAIL - len(reason) - 1, 0) :]
    record = stop_record(case, status, f"{reason}\n{tail}".strip(), settings, outcome.duration_s, where)
    return {**record, **runner}
