"""Who belongs to a running case, and ending them all, even after the runner itself was killed.

The runner is a child subreaper: a descendant of a case that leaves the case's process tree (``setsid`` and a
double fork) is reparented to the runner. So the processes of a case are its own tree plus every child of the
runner that is not one of the runner's own (those that existed before the case: ``spare``), with their trees.
They count against the case's memory limit while it runs, and are ended with it.

Ending (``end``) is a bounded loop: SIGKILL every member and every process group a member is in, reap the
runner's orphaned children, look again; until none is left or the deadline passes. A process that forks and exits
every few milliseconds is caught because each round finds the child it left (reparented to the runner) and a
child of the runner cannot change its pid until the runner reaps it.

After a ``kill -9`` of the runner nothing reaps: each case writes a pid file beside its folder (``PIDS``, outside
the folder a sandboxed case can write) listing the runner and every member seen, each with its start time. The
next run ends the listed processes that are still alive with the same start time, and the members of their
process groups and sessions (whose ids cannot have been reused while a member holds them), never itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from ctbench.isolation import procfs

PIDS = ".pids"  # the pid file of case folder F is F + PIDS
MAX_LISTED = 4096  # processes a pid file keeps (the latest seen); a case that spawns more is ended in the run
ROUND_S = 0.002  # pause between two rounds of ending


class Members:
    """The processes of one case as the runner (a subreaper) sees them: the tree of ``root`` (while it is the
    process that started at ``root_start``: its pid is reused once it is reaped) and the trees of the runner's
    children outside ``spare`` (what escaped the case)."""

    def __init__(self, root: int, root_start: int | None, spare: set[int]):
        self.root, self.root_start, self.spare, self.me = root, root_start, set(spare), os.getpid()

    def of(self, table: dict[int, procfs.Stat]) -> list[int]:
        """The case's processes in ``table`` (a ``procfs.scan()``), zombies included."""
        escaped = [s.pid for s in table.values() if s.ppid == self.me and s.pid not in self.spare]
        root = table.get(self.root)
        roots = [self.root] if root is not None and root.start == self.root_start else []
        return procfs.descendants([*roots, *escaped], table)

    def reap(self, table: dict[int, procfs.Stat]) -> None:
        """Collect the exit status of the runner's orphaned children that have exited (never the case's own process
        or a spare one, whose owners wait for them): a process that forks and exits fast would otherwise fill the
        pid space with zombies."""
        for s in table.values():
            if s.ppid == self.me and s.state == "Z" and s.pid != self.root and s.pid not in self.spare:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(s.pid, os.WNOHANG)

    def protected_groups(self, table: dict[int, procfs.Stat]) -> set[int]:
        """Process groups never signalled: the runner's, and those of its spare children."""
        return {0, 1, os.getpgrp(), *(table[p].pgid for p in self.spare if p in table)}


def runner_descendants(table: dict[int, procfs.Stat]) -> set[int]:
    """Every descendant of this process in ``table``: before a case starts, the runner's own (``spare``)."""
    me = os.getpid()
    return set(procfs.descendants([s.pid for s in table.values() if s.ppid == me], table))


def _live(pids: list[int], table: dict[int, procfs.Stat]) -> list[int]:
    return [p for p in pids if table[p].state not in ("Z", "X")]


def _kill(pids: list[int], groups: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for group in groups:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)


def _has_members(group: int) -> bool:
    """Some process (a zombie included) is still in process group ``group``."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except OSError:  # not ours to signal: it exists
        return True
    return True


def end(members: Members, deadline_s: float = 10.0) -> list[int]:
    """SIGKILL the case's processes and every process group one of them is or was in (zombies tell their group
    too), reap, and look again, until no member is alive and every such group is empty, or the deadline passes.
    A group is signalled as a whole, so a process that forks and exits in it is ended with its newest child,
    which a scan of ``/proc`` alone may never catch. Returns the pids still alive at the deadline."""
    stop = time.monotonic() + deadline_s
    groups: set[int] = set()
    while True:
        table = procfs.scan()
        found = members.of(table)
        groups |= {table[p].pgid for p in found} - members.protected_groups(table)
        live = _live(found, table)
        _kill(live, groups)
        members.reap(table)
        groups = {g for g in groups if _has_members(g)}  # an emptied group is never signalled again
        if (not live and not groups) or time.monotonic() > stop:
            return live
        time.sleep(ROUND_S)


# --- pid files: what a killed runner left -------------------------------------------------------------------------
def pid_file(folder: Path) -> Path:
    return folder.with_name(folder.name + PIDS)


def entry(s: procfs.Stat) -> list[int]:
    """A process as a pid file lists it: pid, start time, process group, session."""
    return [s.pid, s.start, s.pgid, s.sid]


def write_pids(folder: Path, listed: list[list[int]]) -> None:
    """Write (atomically) the pid file of the case in ``folder``: this runner (pid and start time) and ``listed``
    (``entry`` of each process seen; the first and the last ``MAX_LISTED`` are kept)."""
    me = procfs.stat(os.getpid())
    kept = listed if len(listed) <= MAX_LISTED else [listed[0], *listed[-MAX_LISTED + 1 :]]
    doc = {"runner": [os.getpid(), me.start if me else None], "processes": kept}
    path = pid_file(folder)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def read_pids(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def runner_alive(doc: dict) -> bool:
    """The runner that wrote the pid file is still running (same pid, same start time)."""
    runner = doc.get("runner")
    if not (isinstance(runner, list) and len(runner) == 2 and all(isinstance(v, int) for v in runner)):
        return False
    return procfs.alive(runner[0], runner[1])


def _targets(listed: list[list[int]], table: dict[int, procfs.Stat]) -> tuple[list[int], set[int]]:
    """What to end for a pid file's list: the processes alive with their listed start time and the members of
    every group or session whose leader was listed and is either gone or still the listed process; and those
    groups (never this process's own group or session)."""
    me = procfs.stat(os.getpid())
    ours = {os.getpid(), *((me.pgid, me.sid) if me is not None else ())}
    starts = {entry[0]: entry[1] for entry in listed}
    ids = set()
    for *_, pgid, sid in listed:
        for leader in (pgid, sid):
            if leader in starts and leader not in ours:
                current = table.get(leader)
                if current is None or current.start == starts[leader]:
                    ids.add(leader)
    found = {pid for pid, start, *_ in listed if pid in table and table[pid].start == start}
    found |= {s.pid for s in table.values() if s.pgid in ids or s.sid in ids}
    live = [p for p in found if table[p].state not in ("Z", "X") and not ours & {p, table[p].pgid, table[p].sid}]
    return live, ids


def end_listed(path: Path, deadline_s: float = 10.0) -> int:
    """End what the pid file at ``path`` lists (see ``_targets``), in rounds until nothing listed is alive and its
    groups are empty, or the deadline passes; returns how many processes were seen and signalled."""
    doc = read_pids(path) or {}
    listed = [e for e in doc.get("processes") or [] if isinstance(e, list) and len(e) == 4
              and all(isinstance(v, int) and not isinstance(v, bool) and v > 1 for v in e)]  # fmt: skip
    signalled: set[int] = set()
    stop = time.monotonic() + deadline_s
    while listed and time.monotonic() < stop:
        targets, groups = _targets(listed, procfs.scan())
        groups = {g for g in groups if _has_members(g)}
        if not targets and not groups:
            break
        signalled.update(targets)
        _kill(targets, groups)
        time.sleep(ROUND_S)
    return len(signalled)
