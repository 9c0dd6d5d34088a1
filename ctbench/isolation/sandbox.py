"""The bubblewrap sandbox a submission's code runs in: a case, and the resolution of a submission's spec.

What the sandboxed process sees and can do:

- **No privilege.** It runs in its own user namespace (``--unshare-user``, where the kernel allows one) and with
  every capability dropped (``--cap-drop ALL``), so even as root it cannot unmount or remount its view.
- **A read-only view of the machine** built from bind mounts, minus the *hidden* paths: the run's ``--out`` (its
  journal and run files), ``/tmp`` and ``/run`` (where other programs keep their Unix sockets). A hidden path is
  never mounted over: its parent is rebuilt from its other children, so it is absent from the view and from
  ``/proc/self/mountinfo`` alike. Paths the process needs inside a hidden folder (the interpreter, the code, the
  data and the cache under ``/tmp``) are exposed again, read-only.
- **One writable folder**: its own (``case_dir``), which is also its ``TMPDIR``.
- **A minimal /dev**: ``null``, ``zero``, ``urandom``, a private ``shm`` and ``fd``; on a CUDA case the NVIDIA device
  nodes too. No tty, kvm, kmsg, loop or block device.
- **No network** (not even loopback), its own PID, IPC and UTS namespaces, its own session, killed with its parent.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ALWAYS_HIDDEN = ("/tmp", "/run", "/var/run", "/dev", "/proc")  # /dev and /proc are made anew below
DEVICES = ("null", "zero", "urandom")


def bwrap() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def user_namespaces() -> bool:
    """Whether bubblewrap can give a process its own user namespace here (some kernels and containers forbid it)."""
    tool = bwrap()
    if tool is None:
        return False
    probe = [tool, "--unshare-user", "--ro-bind", "/", "/", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _bind(source: Path) -> list[str]:
    """Mount ``source`` read-only at the same place (a symbolic link is recreated as one)."""
    if source.is_symlink():
        return ["--symlink", os.readlink(source), str(source)]
    return ["--ro-bind", str(source), str(source)]


def view(folder: Path, hidden: list[Path]) -> list[str]:
    """Read-only mounts that show ``folder`` whole but for the ``hidden`` paths inside it: a folder holding a
    hidden path is rebuilt from its other children (recursively), so the hidden path is never a mount point."""
    inner = [h for h in hidden if _inside(h, folder)]
    if not inner:
        return _bind(folder)
    if folder in inner:
        return []
    args: list[str] = []
    try:
        children = sorted(folder.iterdir())
    except OSError:  # unreadable: shown empty
        return args
    for child in children:
        if child.is_symlink():
            args += _bind(child)
        elif child.is_dir():
            args += view(child, inner)
        elif child.exists() and not any(_inside(h, child) for h in inner):
            args += _bind(child)
    return args


def needed_paths(extra: Iterable[Path | str] = ()) -> list[Path]:
    """What a worker reads: the interpreter's prefixes, the import path, task folders (``CTBENCH_PATH``), and
    ``extra`` (the data root, the cache, the submission's folder)."""
    paths = [sys.prefix, sys.base_prefix, sys.executable, *sys.path, *extra]
    paths += [p for p in os.environ.get("CTBENCH_PATH", "").split(os.pathsep) if p]
    found: list[Path] = []
    for path in paths:
        if path and os.path.exists(path):
            real = _real(path)
            found.append(real if real.is_dir() else real.parent)
    return sorted(set(found))


def _devices(device: str) -> list[str]:
    args = ["--tmpfs", "/dev"]
    for name in DEVICES:
        args += ["--dev-bind", f"/dev/{name}", f"/dev/{name}"]
    args += ["--perms", "1777", "--tmpfs", "/dev/shm", "--symlink", "/proc/self/fd", "/dev/fd"]
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        args += ["--symlink", f"/proc/self/fd/{i}", f"/dev/{name}"]
    if device.startswith("cuda"):
        for node in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind", str(node), str(node)]
    return args


def sandbox_args(case_dir: Path, hidden: list[Path], device: str, expose: Iterable[Path | str] = ()) -> list[str]:
    """bubblewrap's arguments for a process whose only writable folder is ``case_dir`` (see the module's text).

    ``hidden``: paths the process must neither see nor learn (the run's ``--out``); ``expose``: paths it needs to
    read even where they lie in an always-hidden folder such as ``/tmp`` (a hidden path inside them stays hidden)."""
    case_dir = _real(case_dir)
    secret = [_real(h) for h in hidden]
    always = [_real(h) for h in ALWAYS_HIDDEN]
    args = [bwrap() or "bwrap", "--tmpfs", "/"]
    args += view(Path("/"), [*always, *secret])
    for path in needed_paths(expose):
        if any(_inside(path, h) for h in always) and not any(_inside(path, h) for h in secret):
            if not _inside(path, case_dir):
                args += view(path, secret)
    args += ["--proc", "/proc", *_devices(device)]
    args += ["--bind", str(case_dir), str(case_dir), "--chdir", str(case_dir)]
    args += ["--remount-ro", "/", "--cap-drop", "ALL"]
    args += ["--unshare-user"] if user_namespaces() else []
    args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--die-with-parent", "--new-session"]
    return args
