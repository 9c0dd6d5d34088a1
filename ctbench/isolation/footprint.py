"""The memory a set of processes holds, as the runner counts it against a case's limit: resident memory and the
shared memory the processes keep alive, each page counted once where the runner can tell.

The rule, for the processes of one case::

    total   = sum over processes of (RssAnon + RssFile)              # private and file-backed resident pages
            + max(objects + private_shm, sum over processes of RssShmem)

- ``objects``: every shared-memory object a process holds by a file descriptor or maps (a memfd, a file under
  ``/dev/shm``, a System V segment), counted once by its (device, inode) at its allocated size (``st_blocks``),
  whether or not its pages are mapped. Mapped objects are sized through ``/proc/PID/map_files`` where the runner
  may read it (root, or ``CAP_CHECKPOINT_RESTORE``); elsewhere their mapped pages count through ``RssShmem``.
- ``private_shm``: the used size of a ``/dev/shm`` that is the case's own (a sandbox mounts its own ``/dev``),
  read from ``/proc/PID/root/dev/shm``; every file there counts, held, mapped or only written and closed. Objects
  on that filesystem are not counted again. The host's ``/dev/shm`` is shared with the machine: there only the
  files a case process holds or maps count (a file written there and closed is not seen without the sandbox).
- ``RssShmem`` (shared pages mapped by each process) stands in when it is larger: it counts a segment once per
  process that maps it, so the rule errs towards counting more, never less, than the case holds.

Cost per process and reading: three small ``/proc`` files, a ``readlink`` per open descriptor, one ``stat`` per
shared object (about 1 ms for a process that imported torch).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from ctbench.isolation import procfs

SHARED = ("/memfd:", "/dev/shm/", "/SYSV")  # how shared-memory objects show in /proc/PID/fd and /proc/PID/maps
_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")


def host_shm_device() -> int | None:
    """The device of the machine's own ``/dev/shm`` (as this process sees it), None where there is none."""
    try:
        return os.stat("/dev/shm").st_dev
    except OSError:
        return None


@dataclass(frozen=True)
class Footprint:
    """Bytes held by a set of processes: ``private`` (anonymous and file-backed resident pages, summed per process),
    ``shared`` (shared-memory objects and private ``/dev/shm``, each counted once), ``mapped`` (``RssShmem`` summed)."""

    private: int = 0
    shared: int = 0
    mapped: int = 0

    @property
    def total(self) -> int:
        return self.private + max(self.shared, self.mapped)


def _held(pid: int, objects: dict[tuple[int, int], int]) -> None:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return
    for fd in fds:
        path = f"/proc/{pid}/fd/{fd}"
        try:
            if os.readlink(path).startswith(SHARED):
                st = os.stat(path)
                objects[(st.st_dev, st.st_ino)] = st.st_blocks * 512
        except OSError:
            continue


def _mapped(pid: int, objects: dict[tuple[int, int], int]) -> None:
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            lines = [line for line in f if b" /memfd:" in line or b" /dev/shm/" in line or b" /SYSV" in line]
    except OSError:
        return
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or not parts[5].decode(errors="replace").startswith(SHARED):
            continue
        try:
            major, minor = (int(v, 16) for v in parts[3].split(b":"))
            key = (os.makedev(major, minor), int(parts[4]))
        except ValueError:
            continue
        if key in objects:
            continue
        try:  # readable by root (or CAP_CHECKPOINT_RESTORE) only: elsewhere RssShmem counts these pages
            st = os.stat(f"/proc/{pid}/map_files/{parts[0].decode()}")
        except OSError:
            continue
        objects[(st.st_dev, st.st_ino)] = st.st_blocks * 512


def _private_shm(pid: int, host_shm: int | None, found: dict[int, int]) -> None:
    path = f"/proc/{pid}/root/dev/shm"
    try:
        device = os.stat(path).st_dev
        if device == host_shm or device in found:
            return
        vfs = os.statvfs(path)
    except OSError:
        return
    found[device] = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize


def footprint(pids: Iterable[int], host_shm: int | None) -> Footprint:
    """What the processes ``pids`` hold (see the module's rule); ``host_shm`` is ``host_shm_device()``."""
    private = mapped = 0
    objects: dict[tuple[int, int], int] = {}
    own_shm: dict[int, int] = {}
    for pid in pids:
        fields = procfs.status(pid, _FIELDS)
        if not fields:
            continue
        if "RssAnon" in fields:
            private += (fields["RssAnon"] + fields.get("RssFile", 0)) * 1024
        else:  # a kernel before 4.5: resident pages, shared ones included
            private += fields.get("VmRSS", 0) * 1024
        mapped += fields.get("RssShmem", 0) * 1024
        _private_shm(pid, host_shm, own_shm)
        _held(pid, objects)
        _mapped(pid, objects)
    shared = sum(size for (device, _), size in objects.items() if device not in own_shm) + sum(own_shm.values())
    return Footprint(private, shared, mapped)
