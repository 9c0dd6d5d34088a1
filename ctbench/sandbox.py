"""The bubblewrap sandbox a submission's code runs in."""

from __future__ import annotations

import shutil
from pathlib import Path


def bwrap() -> str | None:
    return shutil.which("bwrap")


def sandbox_args(case_dir: Path, hidden: list[Path], device: str) -> list[str]:
    """bubblewrap's arguments: read-only /, the case folder writable (its TMPDIR), no network, own PIDs."""
    args = [bwrap() or "bwrap", "--ro-bind", "/", "/", "--proc", "/proc"]
    args += ["--dev-bind", "/dev", "/dev"] if device.startswith("cuda") else ["--dev", "/dev"]
    for path in hidden:
        if path.exists():
            args += ["--tmpfs", str(path.resolve())]
    args += ["--bind", str(case_dir), str(case_dir), "--chdir", str(case_dir)]
    args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session"]
    return args
