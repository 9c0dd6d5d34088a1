"""One case in its own process, contained: what the case can reach, how its record comes back, and that nothing
it started outlives it.

- The worker (``python -m ctbench.run.worker``) starts in a fresh temporary folder (its working directory) holding only
  the case's description; ``--out`` and the journal appear nowhere in its command line or environment. Its record
  comes back through an inherited pipe, in frames behind a per-case secret (``ctbench.isolation.channel``); the runner
  accepts one record, and only if it is for the case it launched. Files a case writes are ignored.
- Sandbox (``bubblewrap``): a read-only view of the filesystem except the case's folder (its ``TMPDIR``), no
  network, its own PID namespace (the runner and its command line are invisible), the results folder hidden,
  ``--die-with-parent``.
- Containment (``ctbench.isolation.containment``): the case runs in its own session and process group; the runner is a
  child subreaper, so descendants that escape the group (setsid, double fork) are reparented to it, count
  against the case while it runs and are ended with it, in rounds until none is left; the worker dies with the
  runner (``PR_SET_PDEATHSIG``), and a pid file beside the case's folder lets the next run end what a killed
  runner left. Memory: a cgroup v2 per case where the machine offers one (``ctbench.isolation.cgroup``: the kernel holds
  ``memory.max``); always, the runner's watch of everything the case holds (``ctbench.isolation.footprint``: resident
  memory, memfds, ``/dev/shm``); past the limit the case ends with status ``oom``. The record says which held it
  (``containment``: ``cgroup2`` or ``watch``). Logs are read bounded (the tail).
- Outside view (``ctbench.isolation.outside``): the engine's marks, sent through the case's channel
  (``ctbench.isolation.channel``),
  are timed on the runner's clock, with the tree's CPU time and memory from ``/proc``; ``Outcome.outside``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ctbench.isolation import cgroup, containment, procfs
from ctbench.isolation.channel import Reader
from ctbench.isolation.footprint import footprint, host_shm_device
from ctbench.isolation.lifetime import CGROUP_ENV, case_cgroups
from ctbench.isolation.outside import Observer
from ctbench.isolation.sandbox import sandbox_args
from ctbench.run.template import Template
from ctbench.store.files import ResultFileError, parse
from ctbench.store.record import IDENTITY, Record
from ctbench.store.schema import Problem

LOG_TAIL = 4000  # characters of a case's output kept in its error
MAX_RECORD_BYTES = 256 * 2**20  # a record larger than this is refused (series of a few thousand points are ~MB)
POLL_S = 0.1
PREFIX = "ctbench-case-"
OWNER = "runner.pid"


def remove_stale_folders() -> list[str]:
    """Clean up after runners that were killed: end the processes their cases' pid files list (those still alive
    with their listed start time, and their groups and sessions), then remove the case folders whose runner is no
    longer alive; return the folders' paths."""
    removed = []
    temp = Path(tempfile.gettempdir())
    for path in temp.glob(f"{PREFIX}*{containment.PIDS}"):
        doc = containment.read_pids(path)
        if doc is not None and not containment.runner_alive(doc):
            containment.end_listed(path)
            path.unlink(missing_ok=True)
    for folder in temp.glob(f"{PREFIX}*"):
        try:
            owner = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue
        if not psutil.pid_exists(owner):
            containment.end_listed(containment.pid_file(folder))
            containment.pid_file(folder).unlink(missing_ok=True)
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
    containment: str = "watch"  # "cgroup2": a cgroup v2 held its memory (and the watch); "watch": the watch alone
    outside: dict[str, Any] = field(default_factory=dict)  # the runner's view of the step (ctbench.isolation.outside)


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


def _accept(body: bytes | None, case: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The record ``body`` (what came behind the case's secret) if it is for ``case`` and is a well-formed case
    record (the schema's own check, NaN and infinities refused); else None and why. Fields the runner knows are
    taken from the case it launched, never from the record."""
    if not body:
        return None, ""
    try:
        record = parse(body.decode(errors="replace"), "<record>")
    except ResultFileError as exc:
        return None, f"the record that came back is not valid JSON ({exc.problem})"
    expected = Record.blank(case)
    if not isinstance(record, dict) or any(record.get(k) != expected[k] for k in ("task", "impl", "scale", "seed")):
        return None, "the record that came back is for another case (task, impl, scale or seed differ)"
    if record.get("params") != expected["params"] or record.get("submission") != expected["submission"]:
        return None, "the record that came back is for another case (params or submission differ)"
    record.update({k: expected[k] for k in IDENTITY})
    try:
        return Record.validated(record, "record"), ""
    except Problem as exc:
        return None, f"the record that came back is malformed: {exc}"


class _Watch:
    """The runner's watch over one running case: who its processes are (``ctbench.isolation.containment``), what they
    hold (``ctbench.isolation.footprint``), the limits, the pid file, and the samples the outside view needs."""

    def __init__(self, members: containment.Members, case_dir: Path, group: cgroup.CaseGroup | None):
        self.members, self.case_dir, self.group = members, case_dir, group
        self.host_shm = host_shm_device()
        self.pids: list[int] = []  # the case's live processes at the last look
        self.seen: dict[int, list[int]] = {}  # every process of the case seen, as the pid file lists it
        self.peak = 0

    def look(self) -> int:
        """Find the case's processes, reap its orphans, list new ones in the pid file; return what they hold."""
        table = procfs.scan()
        self.members.reap(table)
        self.pids = [p for p in self.members.of(table) if table[p].state not in ("Z", "X")]
        new = [p for p in self.pids if p not in self.seen or self.seen[p][1] != table[p].start]
        if new:
            self.seen.update((p, containment.entry(table[p])) for p in new)
            if len(self.seen) > 2 * containment.MAX_LISTED:  # a process that forks without end: the latest
                self.seen = dict([*self.seen.items()][:1] + [*self.seen.items()][-containment.MAX_LISTED :])
            containment.write_pids(self.case_dir, list(self.seen.values()))
        held = footprint(self.pids, self.host_shm).total
        if self.group is not None:
            held = max(held, self.group.peak_bytes())
        self.peak = max(self.peak, held)
        return held

    def worker(self, sandbox: bool) -> int | None:
        """The process that runs the engine: the case's own process, or in a sandbox the largest one inside it."""
        if not sandbox:
            return self.members.root
        sizes = {p: (procfs.status(p, ("VmRSS",)) or {}).get("VmRSS", 0) for p in self.pids}
        return max(sizes, key=sizes.__getitem__) if sizes else None

    def wait(self, proc: Any, limits: Limits, start: float, observer: Observer) -> str:
        """Wait for the case; return "done" when it exits, "oom" past the memory limit (or when its cgroup's OOM
        killer ended it), "timeout" past its time. The caller ends what is left."""
        while True:
            try:
                proc.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                pass
            else:
                return "oom" if self.group is not None and self.group.oom_killed() else "done"
            held = self.look()
            observer.sample(held)
            if held > limits.max_memory_bytes or (self.group is not None and self.group.oom_killed()):
                return "oom"
            if time.perf_counter() - start > limits.timeout_s:
                return "timeout"


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


def _read_channel(fd: int, reader: Reader) -> None:
    """Feed the channel's bytes to ``reader`` as they arrive (a mark is timed when it comes, not when a buffer
    fills), draining it to the end so the worker never blocks on a full pipe."""
    try:
        while chunk := os.read(fd, 1 << 16):
            reader.feed(chunk)
    finally:
        os.close(fd)
        reader.finish()


def _case_group(limits: Limits) -> cgroup.CaseGroup | None:
    parent = case_cgroups()
    return cgroup.case_group(parent, limits.max_memory_bytes) if parent is not None else None


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
    """Run ``python -m ctbench.run.worker`` for ``case`` in a fresh folder (forked from the warm ``template`` when one
    is given and the case is not sandboxed); return what came back. Whatever the case started is ended before
    this returns."""
    spare = containment.runner_descendants(procfs.scan())  # ours before the case: not its to lose
    case_dir = Path(tempfile.mkdtemp(prefix=PREFIX))
    (case_dir / OWNER).write_text(str(os.getpid()))
    secret = secrets.token_hex(16)
    (case_dir / "case.json").write_text(json.dumps({**case, "secret": secret}))
    (case_dir / "tmp").mkdir()
    env_extra = {"TMPDIR": str(case_dir / "tmp")}  # the case's scratch space is removed with its folder
    env_extra["TORCHINDUCTOR_CACHE_DIR"] = str(case_dir / "tmp" / "inductor")  # as a warm case's: not /tmp
    group = _case_group(limits)
    if group is not None:
        env_extra[CGROUP_ENV] = str(group.procs)  # a forked worker joins it before it loads anything
    read_fd, write_fd = os.pipe()
    argv = ["case.json", str(write_fd), *worker_args]
    command = [sys.executable, "-m", "ctbench.run.worker", *argv]
    if sandbox:
        spec_file = case["impl"]["spec"].rpartition(":")[0]
        shown: list[Path | str] = [*worker_args[1:3], *([Path(spec_file).parent] if spec_file.endswith(".py") else [])]
        command = [*sandbox_args(case_dir, hidden, device, expose=shown), *command]
    if group is not None:  # a fresh process joins it before it runs anything (the sandbox cannot write to it)
        command = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group.procs), *command]
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
        root = procfs.stat(proc.pid)
        members = containment.Members(proc.pid, root.start if root is not None else None, spare)
        watch = _Watch(members, case_dir, group)
        if group is not None:
            group.join(proc.pid)  # a forked worker may not have joined yet
        observer = Observer(lambda: watch.pids, lambda: watch.worker(sandbox))
        channel = Reader(secret, observer.mark, MAX_RECORD_BYTES)
        reader = threading.Thread(target=_read_channel, args=(read_fd, channel), daemon=True)
        reader.start()
        watch.look()
        try:
            status = watch.wait(proc, limits, start, observer)
        finally:  # also on Ctrl-C: take the case down with us
            if group is not None:
                group.kill()
            containment.end(members)  # the case's tree and what escaped it (reparented to us: subreaper)
            returncode = proc.wait()
        reader.join(timeout=10)
        record, rejected = _accept(channel.record, case) if status == "done" else (None, "")
        if status == "done" and channel.problem:
            record, rejected = None, channel.problem
        duration = time.perf_counter() - start
        containment_kind = "cgroup2" if group is not None else "watch"
        return Outcome(record, status, returncode, _tail(log_path), watch.peak, duration, rejected, started,
                       containment_kind, observer.figures())  # fmt: skip
    finally:
        if group is not None:
            group.remove()
        containment.pid_file(case_dir).unlink(missing_ok=True)
        shutil.rmtree(case_dir, ignore_errors=True)
