"""One case in its own process, contained: what the case can reach, how its record comes back, and that nothing
it started outlives it.

- The worker (``python -m ctbench.worker``) starts in a fresh temporary folder (its working directory) holding only
  the case's description; ``--out`` and the journal appear nowhere in its command line or environment. Its record
  comes back through an inherited pipe, prefixed by a per-case secret; the runner accepts one record, and only
  if it is for the case it launched. Files a case writes are ignored.
- Sandbox (``bubblewrap``): a read-only view of the filesystem except the case's folder (its ``TMPDIR``), no
  network, its own PID namespace (the runner and its command line are invisible), the results folder hidden,
  ``--die-with-parent``.
- Containment: the case runs in its own session and process group; the runner is a child subreaper, so
  descendants that escape the group (setsid, double fork) are reparented to it and ended with the case; the
  worker dies with the runner (``PR_SET_PDEATHSIG``). A memory limit is enforced by watching the resident memory
  of the case's process tree; exceeding it ends the case with status ``oom``. Logs are read bounded (the tail).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ctbench.results import ResultFileError, parse
from ctbench.sandbox import sandbox_args
from ctbench.schema import CASE, Problem, check_depth
from ctbench.template import Template

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
LOG_TAIL = 4000  # characters of a case's output kept in its error
MAX_RECORD_BYTES = 256 * 2**20  # a record larger than this is refused (series of a few thousand points are ~MB)
POLL_S = 0.1
PREFIX = "ctbench-case-"
OWNER = "runner.pid"


def _prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def become_subreaper() -> bool:
    """Orphaned descendants of our cases are reparented to this process (so they can be found and ended)."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """In a worker: be killed when the process that started us dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def remove_stale_folders() -> list[str]:
    """Remove case folders left by a runner that was killed (its pid no longer alive); return their paths."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            owner = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue
        if not psutil.pid_exists(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


@dataclass(frozen=True)
class Limits:
    timeout_s: float
    max_memory_bytes: int


@dataclass
class Outcome:
    """What came back from one case: its record (None if none was accepted), or why it stopped."""

    record: dict[str, Any] | None
    status: str  # "done" (the worker exited), "timeout", "oom"
    returncode: int | None
    log_tail: str
    peak_memory_bytes: int
    duration_s: float
    rejected: str = ""  # why a record that came back was refused
    start: str = "cold"  # "warm": forked from the template; "cold": a fresh interpreter


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def _rss(processes: list[psutil.Process]) -> int:
    total = 0
    for p in processes:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _kill(processes: list[psutil.Process]) -> None:
    for p in processes:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(processes, timeout=5)


def end_orphans(spare: set[int]) -> int:
    """Kill every descendant of this process (a subreaper) that is not in ``spare`` (those that existed before
    the case): after a case, they can only be its escaped descendants. Returns how many were ended."""
    me = psutil.Process()
    orphans = [p for p in _tree(me)[1:] if p.pid not in spare]
    _kill(orphans)
    return len(orphans)


def _tail(path: Path, limit: int = LOG_TAIL) -> str:
    """The last ``limit`` characters of a log, read without loading the whole file."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(size - 4 * limit, 0))
            return f.read().decode(errors="replace")[-limit:]
    except OSError:
        return ""


def _read_pipe(fd: int, into: bytearray, overflow: list[bool]) -> None:
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(1 << 16):
            if len(into) + len(chunk) > MAX_RECORD_BYTES:
                overflow.append(True)
                continue  # keep draining so the worker never blocks on a full pipe
            into.extend(chunk)


# what the runner, not the case, decides about a record: taken from the case it launched
LAUNCHED = ("task", "impl", "submission", "impl_spec", "impl_hash", "manifest", "scale", "params", "seed")


def _accept(message: bytes, secret: str, case: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The record in ``message`` if it carries the secret, is for ``case`` and is a well-formed case record (the
    schema's own check, NaN and infinities refused); else None and why. Fields the runner knows are taken from
    the case it launched, never from the record."""
    head, _, body = message.partition(b"\n")
    if not message:
        return None, ""
    if head.decode(errors="replace") != secret:
        return None, "a record without the case's secret was refused"
    try:
        record = parse(body.decode(errors="replace"), "<record>")
    except ResultFileError as exc:
        return None, f"the record that came back is not valid JSON ({exc.problem})"
    expected = blank_identity(case)
    if not isinstance(record, dict) or any(record.get(k) != expected[k] for k in ("task", "impl", "scale", "seed")):
        return None, "the record that came back is for another case (task, impl, scale or seed differ)"
    if record.get("params") != expected["params"] or record.get("submission") != expected["submission"]:
        return None, "the record that came back is for another case (params or submission differ)"
    record.update({k: expected[k] for k in LAUNCHED})
    try:
        check_depth(record)
        CASE(record, "record")
    except Problem as exc:
        return None, f"the record that came back is malformed: {exc}"
    return record, ""


def blank_identity(case: dict[str, Any]) -> dict[str, Any]:
    """The identity fields of the record of ``case`` (``Case.to_json()`` form), as the runner launched it."""
    impl, manifest = case["impl"], case["impl"]["manifest"]
    return {
        "task": case["task"],
        "impl": manifest["name"],
        "submission": impl["submission"],
        "impl_spec": impl["spec"],
        "impl_hash": impl.get("content_hash", ""),
        "manifest": {"name": manifest["name"], "authors": list(manifest.get("authors", ())), "url": manifest["url"]},
        "scale": case["scale"],
        "params": case["params"],
        "seed": case["seed"],
    }


def _watch(proc: Any, handle: psutil.Process, limits: Limits, start: float) -> tuple[str, int]:
    """Wait for the case; end its whole process tree at the timeout or past the memory limit. Returns the
    status ("done", "timeout", "oom") and the peak resident memory of the tree seen."""
    peak = 0
    while True:
        try:
            proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
        else:
            return "done", peak
        tree = _tree(handle)
        peak = max(peak, _rss(tree))
        if peak > limits.max_memory_bytes:
            _kill(tree)
            return "oom", peak
        if time.perf_counter() - start > limits.timeout_s:
            _kill(tree)
            return "timeout", peak


def _start(
    command: list[str],
    argv: list[str],
    case_dir: Path,
    env_extra: dict[str, str],
    write_fd: int,
    log: Any,
    template: Template | None,
) -> tuple[Any, str]:
    """The case's process and how it started: forked from the warm template (``warm``), or, when there is none or
    it fails, a fresh interpreter (``cold``). Its stdin is /dev/null, its stdout and stderr the log."""
    if template is not None:
        try:
            return template.start(case_dir, argv, env_extra, write_fd, log.fileno()), "warm"
        except (OSError, RuntimeError):  # the template died or hangs: this case starts cold
            pass
    proc = subprocess.Popen(
        command,
        cwd=case_dir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        pass_fds=(write_fd,),
        env={**os.environ, **env_extra},
    )
    return proc, "cold"


def launch(
    case: dict[str, Any],
    worker_args: list[str],
    limits: Limits,
    *,
    sandbox: bool,
    hidden: list[Path],
    device: str,
    template: Template | None = None,
) -> Outcome:
    """Run ``python -m ctbench.worker`` for ``case`` in a fresh folder (forked from the warm ``template`` when one
    is given and the case is not sandboxed); return what came back."""
    spare = {p.pid for p in _tree(psutil.Process())[1:]}  # our children before the case: not its to lose
    case_dir = Path(tempfile.mkdtemp(prefix=PREFIX))
    (case_dir / OWNER).write_text(str(os.getpid()))
    secret = secrets.token_hex(16)
    (case_dir / "case.json").write_text(json.dumps({**case, "secret": secret}))
    (case_dir / "tmp").mkdir()
    env_extra = {"TMPDIR": str(case_dir / "tmp")}  # the case's scratch space is removed with its folder
    read_fd, write_fd = os.pipe()
    argv = ["case.json", str(write_fd), *worker_args]
    command = [sys.executable, "-m", "ctbench.worker", *argv]
    if sandbox:
        spec_file = case["impl"]["spec"].rpartition(":")[0]
        shown = [*worker_args[1:3], *([Path(spec_file).parent] if spec_file.endswith(".py") else [])]
        command = [*sandbox_args(case_dir, hidden, device, expose=shown), *command]
    message, overflow = bytearray(), []
    reader = threading.Thread(target=_read_pipe, args=(read_fd, message, overflow), daemon=True)
    start = time.perf_counter()
    log_path = case_dir / "log.txt"
    try:
        try:
            with open(log_path, "wb") as log:
                forker = template if not sandbox else None
                proc, started = _start(command, argv, case_dir, env_extra, write_fd, log, forker)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        reader.start()
        try:
            handle = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:  # it exited (and was reaped) before we looked: nothing to watch
            handle = None
        try:
            status, peak = _watch(proc, handle, limits, start) if handle is not None else ("done", 0)
        except BaseException:  # Ctrl-C: take the case down with us
            _kill(_tree(handle) if handle is not None else [])
            raise
        finally:
            returncode = proc.wait()
            end_orphans(spare)  # what escaped the case's group and was reparented to us (subreaper)
        reader.join(timeout=10)
        record, rejected = _accept(bytes(message), secret, case) if status == "done" else (None, "")
        if overflow:
            record, rejected = None, f"the record that came back exceeds {MAX_RECORD_BYTES} bytes"
        duration = time.perf_counter() - start
        return Outcome(record, status, returncode, _tail(log_path), peak, duration, rejected, started)
    finally:
        shutil.rmtree(case_dir, ignore_errors=True)
