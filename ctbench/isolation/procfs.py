"""What ``/proc`` says about processes, read directly (one small file per fact, no process handle kept): parents,
groups, sessions, start times, CPU time and memory counters.

Every reader returns None (or skips the process) when the process is gone or unreadable: a process may exit
between two reads, and callers treat a missing process as one that no longer needs ending.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    """A process's line of ``/proc/PID/stat``: ``start`` is its start time in clock ticks after boot (with the pid,
    it names one process for the machine's uptime: a reused pid has another start time); ``cpu_ticks`` its user
    and system time, with that of the children it reaped."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start: int
    cpu_ticks: int


def stat(pid: int) -> Stat | None:
    """The process's stat line, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
    except OSError:
        return None
    fields = line[line.rfind(b")") + 2 :].split()  # the name may hold spaces and parentheses: cut after the last ")"
    try:
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        return Stat(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0].decode(), int(fields[19]),
                    utime + stime + cutime + cstime)  # fmt: skip
    except (IndexError, ValueError):
        return None


def scan() -> dict[int, Stat]:
    """Every process of the machine (of this PID namespace) that could be read, by pid."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (s := stat(int(name))) is not None:
            table[s.pid] = s
    return table


def descendants(roots: Iterable[int], table: dict[int, Stat]) -> list[int]:
    """The roots that are in ``table`` and all their descendants in it, each once, parents before children."""
    children: dict[int, list[int]] = {}
    for s in table.values():
        children.setdefault(s.ppid, []).append(s.pid)
    found, seen = [], set()
    stack = [r for r in roots if r in table]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def status(pid: int, fields: tuple[str, ...]) -> dict[str, int] | None:
    """Numeric fields of ``/proc/PID/status`` (the first number of each line: kB for memory), or None if the process
    is gone. A field the kernel does not report is absent from the answer."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in fields:
            try:
                found[name] = int(value.split()[0])
            except (IndexError, ValueError):
                pass
    return found


def alive(pid: int, start: int) -> bool:
    """The process ``pid`` exists, is not a zombie, and is the one that started at ``start`` (not a reused pid)."""
    s = stat(pid)
    return s is not None and s.start == start and s.state not in ("Z", "X")
