"""Resolving a submission's spec without running its code in the runner.

A submission's module may do anything when imported, so the runner never imports it: ``resolve_isolated`` starts
``python -m ctbench.catalog.resolver`` in a fresh process (inside the bubblewrap sandbox where the run sandboxes
submissions), which imports the spec, checks it against its task's interface (``implementation.resolve``) and
answers with plain data on an inherited pipe (``tasks_of_isolated`` asks such a process which tasks' interfaces the
spec's classes implement, for ``--impl`` without ``--task``). The runner checks that answer as untrusted input. A
submission that cannot be resolved, or whose process exits, crashes, hangs or answers garbage while being resolved,
is an ``ImplementationError`` (a usage error: exit 2 before any case runs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from ctbench.api.implementation import ImplementationError, ImplRef, Manifest, manifest_problem
from ctbench.isolation.sandbox import sandbox_args

MAX_ANSWER_BYTES = 1 << 20
TASKS = "--tasks"  # the resolver's mode that answers which tasks a spec's classes implement
LOG_TAIL = 2000


def resolve_timeout() -> float:
    """Seconds a submission may take to import (``CTBENCH_RESOLVE_TIMEOUT``, default 120)."""
    try:
        return float(os.environ.get("CTBENCH_RESOLVE_TIMEOUT", "120"))
    except ValueError:
        return 120.0


def _read(fd: int, into: bytearray) -> None:
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(1 << 16):
            if len(into) <= MAX_ANSWER_BYTES:
                into.extend(chunk)


def _tail(path: Path) -> str:
    try:
        return path.read_bytes()[-LOG_TAIL:].decode(errors="replace").strip()
    except OSError:
        return ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


def _ref(item: Any, spec: str) -> ImplRef:
    """One ``ImplRef`` from the resolver's answer, every field checked (the answer came from submission code)."""
    if not isinstance(item, dict):
        raise ImplementationError(f"{spec}: resolving it gave a malformed answer")
    manifest, found, digest = item.get("manifest"), item.get("spec"), item.get("content_hash", "")
    if not isinstance(manifest, dict) or not isinstance(found, str) or not isinstance(digest, str):
        raise ImplementationError(f"{spec}: resolving it gave a malformed answer")
    fields: dict[str, Any] = {k: manifest.get(k) for k in ("name", "authors", "url", "description")}
    fields["authors"] = tuple(fields["authors"]) if isinstance(fields["authors"], list) else fields["authors"]
    problem = manifest_problem(fields)
    if problem:
        raise ImplementationError(f"{found}: {problem}")
    target = spec.partition(":")[0]
    expected = str(Path(target).resolve()) if target.endswith(".py") else target
    source = found.rpartition(":")[0]
    if not (source == expected or (Path(target).is_dir() and Path(source).parent == Path(target).resolve())):
        raise ImplementationError(f"{spec}: resolving it named code elsewhere ({found})")
    label = Path(target).resolve().name if Path(target).is_dir() else fields["name"]
    return ImplRef(Manifest(**fields), found, label, digest[:64])


def _ask(arguments: list[str], spec: str, sandbox: bool, expose: list[Path] | None, timeout_s: float | None) -> dict:
    """``python -m ctbench.catalog.resolver ARGUMENTS SPEC FD`` in its own process (sandboxed when ``sandbox``):
    its answer, a dict, or an ``ImplementationError`` when it sent none, an error, or ran past ``timeout_s``."""
    target = spec.partition(":")[0]
    if target.endswith(".py") and not Path(target).is_file():
        raise ImplementationError(f"no such file: {target}")
    timeout_s = resolve_timeout() if timeout_s is None else timeout_s
    folder = Path(tempfile.mkdtemp(prefix="ctbench-resolve-"))
    read_fd, write_fd = os.pipe()
    answer = bytearray()
    log_path = folder / "log.txt"
    absolute = str(Path(target).resolve()) + spec[len(target) :] if Path(target).exists() else spec
    command = [sys.executable, "-m", "ctbench.catalog.resolver", *arguments, absolute, str(write_fd)]
    if sandbox:
        shown = [Path(target).resolve().parent if Path(target).exists() else Path.cwd(), *(expose or [])]
        command = [*sandbox_args(folder, [], "cpu", expose=shown), *command]
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command,
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(write_fd,),
                env={**os.environ, "TMPDIR": str(folder)},
            )
        os.close(write_fd)
        reader = threading.Thread(target=_read, args=(read_fd, answer), daemon=True)
        reader.start()
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ImplementationError(
                f"{spec}: importing it did not finish within {timeout_s:g} s (CTBENCH_RESOLVE_TIMEOUT)"
            ) from None
        _kill_group(proc)  # whatever it left in its session
        reader.join(timeout=10)
        tail = _tail(log_path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if len(answer) > MAX_ANSWER_BYTES:
        raise ImplementationError(f"{spec}: resolving it gave an answer over {MAX_ANSWER_BYTES} bytes")
    try:
        reply = json.loads(answer.decode())
    except (UnicodeDecodeError, ValueError):
        reply = None
    if returncode != 0 or not isinstance(reply, dict):
        why = f"exit status {returncode}" if returncode else "no answer"
        raise ImplementationError(
            f"{spec}: its process ended while being resolved ({why}){': ' + tail if tail else ''}"
        )
    if "error" in reply:
        raise ImplementationError(str(reply["error"]))
    return reply


def resolve_isolated(
    spec: str, task: str, *, sandbox: bool, expose: list[Path] | None = None, timeout_s: float | None = None
) -> list[ImplRef]:
    """``implementation.resolve(spec, <task's interface>)`` run in a separate process (bubblewrap-sandboxed when
    ``sandbox``); the refs it found, checked. ``expose``: folders the process must read (data, cache)."""
    items = _ask([task], spec, sandbox, expose, timeout_s).get("refs")
    if not isinstance(items, list) or not items:
        raise ImplementationError(f"{spec}: resolving it gave a malformed answer")
    return [_ref(item, spec) for item in items]


def tasks_of_isolated(
    spec: str, tasks: list[str], *, sandbox: bool, expose: list[Path] | None = None, timeout_s: float | None = None
) -> list[str]:
    """Which of ``tasks`` the classes ``spec`` names implement (``implementation.implementing``), found in a
    separate process as ``resolve_isolated`` resolves; the answer checked to be some of ``tasks``."""
    found = _ask([TASKS, ",".join(tasks)], spec, sandbox, expose, timeout_s).get("tasks")
    if not isinstance(found, list) or not all(isinstance(t, str) and t in tasks for t in found):
        raise ImplementationError(f"{spec}: finding its task gave a malformed answer")
    return found


def main(argv: list[str]) -> int:
    """``python -m ctbench.catalog.resolver TASK SPEC FD``: resolve SPEC against TASK's interface, answer on FD;
    ``... --tasks TASK,TASK SPEC FD``: which of those tasks' interfaces SPEC's classes implement."""
    from ctbench.api.implementation import implementing, resolve, spec_classes
    from ctbench.catalog.registry import get_task

    if argv[0] == TASKS:
        _, names, spec, fd = argv
        try:
            interfaces = {name: get_task(name).interface for name in names.split(",")}
            answer: dict[str, Any] = {"tasks": implementing(spec_classes(spec), interfaces)}
        except ImplementationError as exc:
            answer = {"error": str(exc)}
        return _answer(answer, fd)
    task_name, spec, fd = argv
    try:
        refs = resolve(spec, get_task(task_name).interface)
        answer = {
            "refs": [
                {
                    "manifest": {
                        "name": r.manifest.name,
                        "authors": list(r.manifest.authors),
                        "url": r.manifest.url,
                        "description": r.manifest.description,
                    },
                    "spec": r.spec,
                    "submission": r.submission,
                    "content_hash": r.content_hash,
                }
                for r in refs
            ]
        }
    except ImplementationError as exc:
        answer = {"error": str(exc)}
    return _answer(answer, fd)


def _answer(answer: dict[str, Any], fd: str) -> int:
    body = json.dumps(answer, default=str).encode()
    with os.fdopen(int(fd), "wb") as pipe:
        pipe.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
