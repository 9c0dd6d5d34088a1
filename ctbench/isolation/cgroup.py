"""A cgroup v2 per case, where the machine offers one: the kernel then holds the case's memory (``memory.max``, swap
off, the whole group killed together on OOM) and ends every process in it at once (``cgroup.kill``), however
they left the case's process tree.

``parent()`` decides, once per runner, whether cases get a cgroup: ``/sys/fs/cgroup`` must be a cgroup2 mount
(not v1, not the hybrid layout with v2 under ``unified``), this process's cgroup must offer the ``memory``
controller and be writable. Cgroup v2 lets a cgroup hand controllers to children only while it holds no process
itself, so when ``memory`` is not yet enabled for its children the runner moves itself into a leaf
(``ctbench-runner``) and enables it; if that fails (other processes share the cgroup) it moves back and cases run
without a cgroup: the runner's tree watch (``ctbench.isolation.containment``) holds them alone. The watch runs in both
cases: a case that can write to the cgroup tree could move itself out of its group.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
RUNNER_LEAF = "ctbench-runner"
CASE_PREFIX = "ctbench-case-"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, value: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


def is_cgroup2_mount(mounts: str, root: Path = ROOT) -> bool:
    """``root`` is mounted as cgroup2 in ``mounts`` (the text of ``/proc/self/mounts``)."""
    found = ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == str(root):
            found = fields[2]  # the last mount on a path is the one in effect
    return found == "cgroup2"


def own_cgroup(membership: str, root: Path = ROOT) -> Path | None:
    """This process's cgroup in the v2 hierarchy, from the text of ``/proc/self/cgroup`` (its ``0::PATH`` line)."""
    for line in membership.splitlines():
        if line.startswith("0::"):
            return root / line[3:].strip().lstrip("/")
    return None


def parent(root: Path = ROOT, proc_self: Path = Path("/proc/self"), pid: int | None = None) -> Path | None:
    """The cgroup under which each case gets its own cgroup with a memory limit, or None where this machine (or
    this user) offers none: then cases are held by the runner's watch alone. May move this process into a leaf
    cgroup of its own (see the module's docstring)."""
    if not is_cgroup2_mount(_read(proc_self / "mounts"), root):
        return None
    own = own_cgroup(_read(proc_self / "cgroup"), root)
    if own is None or "memory" not in _read(own / "cgroup.controllers").split():
        return None
    control = own / "cgroup.subtree_control"
    if not (os.access(own, os.W_OK) and os.access(control, os.W_OK) and os.access(own / "cgroup.procs", os.W_OK)):
        return None
    if "memory" in _read(control).split():
        return own
    leaf, me = own / RUNNER_LEAF, str(pid if pid is not None else os.getpid())
    try:
        leaf.mkdir(exist_ok=True)
    except OSError:
        return None
    if _write(leaf / "cgroup.procs", me) and _write(control, "+memory"):
        return own
    _write(own / "cgroup.procs", me)  # back where we were: the cgroup is shared, the watch holds cases alone
    return None


@dataclass(frozen=True)
class CaseGroup:
    """The cgroup of one case: processes join it by writing their pid to ``procs``."""

    path: Path

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def join(self, pid: int) -> bool:
        return _write(self.procs, str(pid))

    def oom_killed(self) -> bool:
        """The kernel ended a process of the group for its memory limit."""
        for line in _read(self.path / "memory.events").splitlines():
            name, _, count = line.partition(" ")
            if name in ("oom_kill", "oom_group_kill") and count.strip().isdigit() and int(count) > 0:
                return True
        return False

    def peak_bytes(self) -> int:
        """The group's peak memory (``memory.peak``, kernel 5.19+), else its current memory; 0 if unreadable."""
        for name in ("memory.peak", "memory.current"):
            text = _read(self.path / name).strip()
            if text.isdigit():
                return int(text)
        return 0

    def kill(self) -> None:
        """SIGKILL every process in the group (``cgroup.kill``, kernel 5.14+); without it the caller's tree kill
        does the work."""
        _write(self.path / "cgroup.kill", "1")

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:  # a process not yet reaped: the group goes when the machine next cleans up
            pass


def case_group(under: Path, limit_bytes: int) -> CaseGroup | None:
    """A fresh cgroup under ``under`` holding at most ``limit_bytes`` (swap off, killed as a whole on OOM), or None
    if it cannot be made."""
    path = under / f"{CASE_PREFIX}{secrets.token_hex(6)}"
    try:
        path.mkdir()
    except OSError:
        return None
    group = CaseGroup(path)
    if not _write(path / "memory.max", str(limit_bytes)):
        group.remove()
        return None
    _write(path / "memory.swap.max", "0")  # absent without swap accounting: then nothing to turn off
    _write(path / "memory.oom.group", "1")
    return group
