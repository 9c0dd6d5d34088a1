"""Warm start: a template process that has already imported torch, the engine, every task with its references and
``torch._dynamo``, and forks one fresh child per case, so a case starts in milliseconds instead of seconds.

Isolation stays: each case is its own process (its own session, its own folder, its own pipe for the record), and
a crash in a case never reaches the template. The template forks before any CUDA initialisation or thread pool
starts (it never runs a tensor operation), so each child sets its threads and may initialise CUDA itself.

Protocol on a Unix socket pair: the runner sends ``{"case_dir", "argv", "env"}`` with two file descriptors (the
record pipe's write end and the log), the template answers ``{"pid"}``, and later ``{"exited", "status"}`` for
that child.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

_LENGTH = struct.Struct("!I")


def _send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    body = json.dumps(message).encode()
    socket.send_fds(sock, [_LENGTH.pack(len(body)) + body], list(fds))


def _recv(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    head, fds, _, _ = socket.recv_fds(sock, _LENGTH.size, max_fds)
    if len(head) < _LENGTH.size:
        return None, fds
    (length,) = _LENGTH.unpack(head)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body), fds


# --- the template process ----------------------------------------------------------------------------------------
def preload(task_names: list[str]) -> None:
    """Import what the run's cases import, without running a tensor operation (no thread pool) and without
    touching CUDA. A task or reference that fails to import here is left to fail in its own cases."""
    import torch
    import torch._dynamo  # noqa: F401  (the first torch.optim optimiser imports it: seconds per case otherwise)

    from ctbench.api import data  # noqa: F401
    from ctbench.api.implementation import task_references
    from ctbench.catalog.registry import get_task

    data.import_torchvision()
    for name in task_names:
        try:
            task_references(get_task(name))
        except Exception:  # the case will report it, with its traceback
            pass
    if torch.cuda.is_initialized():  # a fork would hand every case a broken CUDA context
        raise RuntimeError("CUDA was initialised while importing the tasks: cases cannot be forked from here")
    # what the imports made lives as long as the process: out of the collector's sight, a case's gc.collect() (the
    # engine collects before each memory reading) scans the case's own objects only, 0.1 s less per reading here
    gc.collect()
    gc.freeze()


def _child(request: dict[str, Any], record_fd: int, log_fd: int) -> None:
    """In the forked child: become the case's worker."""
    os.setsid()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.chdir(request["case_dir"])
    os.environ.update(request["env"])
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(request["env"]["TMPDIR"], "inductor")
    tempfile.tempdir = None  # the template cached /tmp: the case's own TMPDIR from now on
    sys.path[0] = request["case_dir"]  # as a fresh interpreter started in the case's folder
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from ctbench.run import worker

    argv = [*request["argv"][:1], str(record_fd), *request["argv"][2:]]
    try:
        code = worker.main(argv)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _reap(sock: socket.socket) -> None:
    """Report every child that has exited since the last call."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(sock, {"exited": pid, "status": os.waitstatus_to_exitcode(status)})


def serve(sock: socket.socket) -> None:
    """Fork a child per request until the runner closes the socket; report each child's exit. Single-threaded
    (a fork from a multi-threaded process can deadlock the child)."""
    while True:
        readable, _, _ = select.select([sock], [], [], 0.02)
        _reap(sock)
        if not readable:
            continue
        request, fds = _recv(sock, max_fds=2)
        if request is None:
            return
        record_fd, log_fd = fds
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(request, record_fd, log_fd)
        _send(sock, {"pid": pid, "request": request["case_dir"]})
        os.close(record_fd)
        os.close(log_fd)


def main(argv: list[str]) -> NoReturn:
    """``python -m ctbench.run.template FD TASK...``: preload the tasks, then serve the runner on socket FD."""
    from ctbench.isolation.lifetime import die_with_parent

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's: it closes the socket, we leave
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"  # torch.cuda.is_available() without initialising CUDA
    sock = socket.socket(fileno=int(argv[0]))
    preload(argv[1:])
    _send(sock, {"ready": os.getpid()})
    try:
        serve(sock)
    except (BrokenPipeError, ConnectionResetError):  # the runner shut the socket while we reported an exit
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # nothing else to release (no tensor ever ran here); an interpreter teardown takes 0.5 s


# --- the runner's side -------------------------------------------------------------------------------------------
class Template:
    """The runner's handle on a template process: ``spawn`` a case, ``poll`` its exit status."""

    def __init__(self, task_names: list[str], ready_timeout_s: float = 300.0) -> None:
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ctbench.run.template", str(theirs.fileno()), *task_names],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        self.sock = ours
        self.exited: dict[int, int] = {}
        self.pids: dict[str, int] = {}  # request (the case's folder) -> pid
        self.changed = threading.Condition()
        self.sock.settimeout(ready_timeout_s)
        try:
            ready, _ = _recv(self.sock)
        except OSError:
            ready = None
        if not ready or "ready" not in ready:
            self.close()
            raise RuntimeError("the warm template did not start")
        self.sock.settimeout(None)
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        while True:
            try:
                message, _ = _recv(self.sock)
            except OSError:
                message = None
            with self.changed:
                if message is None:
                    self.proc.poll()
                    self.changed.notify_all()
                    return
                if "exited" in message:
                    self.exited[message["exited"]] = message["status"]
                elif "pid" in message:
                    self.pids[message["request"]] = message["pid"]
                self.changed.notify_all()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def start(self, case_dir: Path, argv: list[str], env: dict[str, str], record_fd: int, log_fd: int) -> Forked:
        """Fork a worker for the case (its request is named by its folder); a template that does not answer is
        stopped, so that no later case can take this one's late reply."""
        key = str(case_dir)
        with self.changed:
            _send(self.sock, {"case_dir": key, "argv": argv, "env": env}, [record_fd, log_fd])
            if not self.changed.wait_for(lambda: key in self.pids or not self.alive, timeout=30):
                self.proc.kill()
                raise RuntimeError("the warm template did not answer")
            if key not in self.pids:
                raise RuntimeError("the warm template died")
            return Forked(self, self.pids.pop(key))

    def wait(self, pid: int, timeout: float) -> int | None:
        """The child's exit status, or None if it is still running after ``timeout`` seconds."""
        with self.changed:
            self.changed.wait_for(lambda: pid in self.exited or not self.alive, timeout=timeout)
            if pid in self.exited:
                return self.exited.pop(pid)
            return None if self.alive else -signal.SIGKILL

    def close(self) -> None:
        """End the template: shut the socket down (a plain close leaves it open while the listening thread is
        blocked reading it, so the template never saw the end and was killed after 10 s), then wait for it."""
        try:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already gone
                pass
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Forked:
    """A case forked by the template, with ``subprocess.Popen``'s ``pid``, ``wait`` and ``returncode``."""

    def __init__(self, template: Template, pid: int):
        self.template, self.pid = template, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.template.wait(self.pid, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.template.wait(self.pid, 1e9 if timeout is None else timeout)
        if self.returncode is None:
            # timeout is None here only after 1e9 s; TimeoutExpired formats None, typeshed wants a float
            raise subprocess.TimeoutExpired(f"case {self.pid}", timeout)  # type: ignore[arg-type]
        return self.returncode


if __name__ == "__main__":
    main(sys.argv[1:])
