"""The runner's own view of a case's measured step, and what it says about the figures the case reports.

A case's code runs in the process that times it, so it can patch the engine's clock or its memory reading. The
runner therefore watches the step from outside, on its own clock and from ``/proc``, using the marks the engine
sends through the case's channel (``ctbench.isolation.channel``) as its windows start and end:

- ``timing`` (with the number of calls the engine is about to time), ``call`` between two timed calls, ``timed``:
  the arrival times give ``window_s`` (first to last) and ``call_median_s`` (the median call); the process tree's
  CPU time between the first and the last ``cpu_s``.
- ``memory`` ... ``memory_end``, once per memory reading: the engine resets the process's peak resident memory
  (VmHWM) before it sends ``memory``, so the worker's VmHWM read when ``memory_end`` arrives, less its resident
  memory when ``memory`` arrived, is that reading's growth; ``memory_growth_bytes`` is the median over readings.
- ``peak_rss_bytes``: the largest footprint of the case's processes (``ctbench.isolation.footprint``) the runner saw
  while a window was open, their resident memory when a timing mark came, or the worker's VmHWM at the end of a memory
  reading, whichever is largest (None if the case was gone before the runner could look).

``verdict`` compares, one-sided (the outside window also holds the engine's own work between the timed calls and
the marks' travel, so it is always the longer):

- time: suspect when ``step_time_s × timed_calls`` < ``TIME_FRACTION`` × ``window_s``, the window exceeds the
  reported time by more than ``TIME_SLACK_S``, and ``step_time_s`` < ``TIME_FRACTION`` × ``call_median_s`` (the
  median of the timed calls on the runner's clock, between ``call`` marks: one late mark inflates one call, not
  the median). Measured over 178 honest cases (the smoke run of every task beside other work, the tiny task
  beside 2-3 CPU-bound loops): steps of 10 ms or more kept ``step × calls`` at 0.74 or more of the
  window and the step at 0.75 or more of the typical call; shorter steps saw windows up to 10 ms longer than
  reported (marks that arrive late), well inside the slack. A clock slowed 1000x reports 0.001 of both.
- memory (on a CPU): suspect when ``step_peak_memory_bytes`` < ``MEMORY_FRACTION`` × ``memory_growth_bytes`` and
  the growth exceeds it by more than ``MEMORY_SLACK_BYTES``. Honest cases above: the growth never exceeded the
  reported step memory by more than 0.2 MiB.
- marks: a case that reports a step time but whose marks did not come, came out of order, or announced another
  number of timed calls than its scale's policy, is suspect.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ctbench.isolation import procfs

TIME_FRACTION = 0.2
TIME_SLACK_S = 0.05
MEMORY_FRACTION = 0.25
MEMORY_SLACK_BYTES = 64 * 2**20
ORDER = {
    "timing": (None,),
    "call": ("timing", "call"),
    "timed": ("timing", "call"),
    "memory": ("timed", "memory_end"),
    "memory_end": ("memory",),
}


def nothing_seen() -> dict[str, Any]:
    """The outside figures of a case the runner saw no step of (not run, or its node lost)."""
    names = ("window_s", "call_median_s", "cpu_s", "timed_calls", "peak_rss_bytes", "memory_growth_bytes")
    return dict.fromkeys(names) | {"marks": "missing"}


def _cpu_s(pids: list[int]) -> float:
    return sum(s.cpu_ticks for p in pids if (s := procfs.stat(p)) is not None) / procfs.CLOCK_TICKS


def _kb(pid: int | None, field: str) -> int | None:
    fields = procfs.status(pid, (field,)) if pid is not None else None
    return fields[field] * 1024 if fields and field in fields else None


class Observer:
    """Collects the outside figures of one case. ``mark`` is called from the thread reading the channel (it reads
    the clock first), ``sample`` from the runner's watch with the footprint it just measured; ``members`` gives the
    case's processes as the watch last saw them, ``worker`` the process that runs the engine."""

    def __init__(self, members: Callable[[], list[int]], worker: Callable[[], int | None],
                 clock: Callable[[], float] = time.perf_counter):  # fmt: skip
        self.members, self.worker, self.clock = members, worker, clock
        self.lock = threading.Lock()
        self.last: str | None = None
        self.out_of_order = ""
        self.calls: int | None = None
        self.times: dict[str, float] = {}
        self.calls_at: list[float] = []  # arrival of "timing", each "call", "timed": the bounds of each timed call
        self.cpu: dict[str, float] = {}
        self.open = False
        self.peak = 0
        self.base: int | None = None
        self.growth: list[int] = []

    def mark(self, mark: Mapping[str, Any]) -> None:
        now, name = self.clock(), mark.get("mark")
        with self.lock:
            if self.out_of_order:
                return
            if name not in ORDER or self.last not in ORDER[name]:
                self.out_of_order = f"mark {str(name)[:40]!r} after {self.last!r}"
                return
            self.last = name
            if name in ("timing", "call", "timed"):
                self.calls_at.append(now)
            if name == "timing":
                calls = mark.get("calls")
                self.calls = calls if isinstance(calls, int) and not isinstance(calls, bool) else None
            if name in ("timing", "timed"):
                members = self.members()
                self.times[name], self.cpu[name] = now, _cpu_s(members)
                self.peak = max(self.peak, sum(_kb(p, "VmRSS") or 0 for p in members))
            self.open = name in ("timing", "memory")
            worker = self.worker()
            if name == "memory":
                self.base = _kb(worker, "VmRSS")
            elif name == "memory_end":
                hwm = _kb(worker, "VmHWM")
                if hwm is not None and self.base is not None:
                    self.growth.append(max(hwm - self.base, 0))
                    self.peak = max(self.peak, hwm)

    def sample(self, footprint_bytes: int) -> None:
        with self.lock:
            if self.open:
                self.peak = max(self.peak, footprint_bytes)

    def figures(self) -> dict[str, Any]:
        """``window_s``, ``call_median_s``, ``cpu_s``, ``timed_calls``, ``peak_rss_bytes``, ``memory_growth_bytes``
        (None where not seen) and ``marks``: ``complete``, ``missing`` or why they were refused."""
        with self.lock:
            done = "timing" in self.times and "timed" in self.times
            window = self.times["timed"] - self.times["timing"] if done else None
            calls = [b - a for a, b in zip(self.calls_at, self.calls_at[1:], strict=False)]
            return {
                "window_s": window,
                "call_median_s": statistics.median(calls) if done and calls else None,
                "cpu_s": self.cpu["timed"] - self.cpu["timing"] if done else None,
                "timed_calls": self.calls,
                "peak_rss_bytes": self.peak or None,
                "memory_growth_bytes": int(statistics.median(self.growth)) if self.growth else None,
                "marks": self.out_of_order or ("complete" if done else "missing"),
            }


def verdict(record: Mapping[str, Any], outside: Mapping[str, Any], expected_calls: int | None, device: str) -> str:
    """Why the case's own figures cannot be believed against the outside view, or "" when they can (or when the
    case measured no step)."""
    metrics = record.get("metrics") or {}
    step = metrics.get("step_time_s")
    if not isinstance(step, (int, float)):
        return ""
    marks = outside.get("marks")
    if marks != "complete":
        reason = "did not come back" if marks == "missing" else f"came out of order ({marks})"
        return f"suspect: the case reports a step time but the engine's timing marks {reason}"
    calls, window = outside["timed_calls"], outside["window_s"]
    if calls is None or (expected_calls is not None and calls != expected_calls):
        return f"suspect: the engine announced {calls} timed calls, its scale times {expected_calls}"
    reported, per_call = step * calls, outside.get("call_median_s")
    if reported < TIME_FRACTION * window and window - reported > TIME_SLACK_S:
        if per_call is None or step < TIME_FRACTION * per_call:  # not one late mark: the typical call, too
            return (
                f"suspect: {calls} timed calls of {step:.3g} s make {reported:.3g} s, but the runner's clock saw "
                f"{window:.3g} s (below {TIME_FRACTION:g} of it; a typical call {per_call or 0:.3g} s): the "
                "case's clock was not the runner's"
            )
    memory, growth = metrics.get("step_peak_memory_bytes"), outside.get("memory_growth_bytes")
    if device == "cpu" and isinstance(memory, (int, float)) and growth is not None:
        if memory < MEMORY_FRACTION * growth and growth - memory > MEMORY_SLACK_BYTES:
            return (
                f"suspect: the case reports a step memory of {memory / 2**20:.3g} MiB, but the runner saw its "
                f"process grow by {growth / 2**20:.3g} MiB in the engine's memory readings"
            )
    return ""
