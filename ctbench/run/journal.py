"""The journal of an unfinished run: ``<out>/.partial/<key>.jsonl``, a header line then one finished case per
line, flushed as each case ends, so that Ctrl-C, a kill or a crash loses nothing and the same command resumes.

One writer per run: ``<key>.lock`` is held (``flock``) for the run's life; a second identical command finds it
held and stops with a usage error naming the pid that holds it. A damaged or foreign line, or a case record that
fails the run schema (``ctbench.store.schema.CASE``: an unknown status, a manifest name that is not a string, a negative
time), is skipped with a warning (that case runs again); a journal without a readable header (a run id that is not
a plain file name, a creation time that is not a string) gets a new one and keeps its good lines.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any

from ctbench.catalog.registry import UsageError
from ctbench.store import schema
from ctbench.store.files import ResultFileError, parse
from ctbench.store.record import Record
from ctbench.store.text import printable

RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")  # a run id is the run file's name: nothing else


def _is_header(entry: Any) -> bool:
    """A header line: a run id that is a plain file name and a creation time."""
    if not isinstance(entry, dict) or not isinstance(entry.get("created"), str):
        return False
    return isinstance(entry.get("run_id"), str) and RUN_ID.fullmatch(entry["run_id"]) is not None


def _problem(record: dict[str, Any]) -> str:
    """Why ``record`` is not a case record the run file may hold (``ctbench.store.schema.CASE``); empty if it is."""
    try:
        Record.validated(record, "record")
    except schema.Problem as exc:
        return f"a malformed case record ({exc})"
    return ""


class Journal:
    """Finished case records of an unfinished run, one JSON line each."""

    def __init__(self, out_dir: Path, key: str):
        self.path = out_dir / ".partial" / f"{key}.jsonl"
        self.lock_path = self.path.with_suffix(".lock")
        self.header: dict[str, Any] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []
        self._lock: Any = None

    def lock(self) -> None:
        """Hold the run's lock, or raise ``UsageError`` naming the process that holds it. The lock file is removed
        while locked (``unlock``), so after locking we check it is still the file at the path: a lock taken on a
        file another run has just removed would not exclude anyone."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            handle = open(self.lock_path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                handle.close()
                raise UsageError(
                    f"another ctbench run (pid {holder}) is running the same cases into {self.path.parent.parent}; "
                    "wait for it to finish, or give this one another --out"
                ) from None
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                handle.truncate(0)
                handle.write(str(os.getpid()))
                handle.flush()
                self._lock = handle
                return
            handle.close()  # removed under us by a run that just finished: take the new file
        raise UsageError(f"could not take the lock {self.lock_path}: it keeps changing")

    def unlock(self) -> None:
        if self._lock is not None:
            self.lock_path.unlink(missing_ok=True)  # while still locked: see ``lock``
            self._lock.close()
            self._lock = None

    def load(self, valid_keys: set[str]) -> None:
        """Read what an earlier, interrupted run of the same cases finished."""
        if not self.path.exists():
            return
        lines = self.path.read_text(errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            try:
                entry = parse(line, f"{self.path}:{number}")
            except ResultFileError:
                self.warnings.append(f"{self.path}:{number}: damaged line skipped (that case runs again)")
                continue
            if number == 1 and _is_header(entry):
                self.header = {"run_id": entry["run_id"], "created": entry["created"]}
            elif isinstance(entry, dict) and entry.get("key") in valid_keys and isinstance(entry.get("record"), dict):
                problem = _problem(entry["record"])
                if problem:
                    self.warnings.append(printable(f"{self.path}:{number}: {problem}; skipped (that case runs again)"))
                else:
                    self.records[entry["key"]] = entry["record"]
            else:
                self.warnings.append(f"{self.path}:{number}: not a case of this run, skipped")
        if not self.header and self.records:
            self.warnings.append(f"{self.path}: no readable header; a new one is written, finished cases kept")

    def start(self, run_id: str, created: str) -> None:
        """Write the header (and the finished cases again, when the header had to be replaced)."""
        if self.header and self.path.exists():
            return
        self.header = {"run_id": run_id, "created": created}
        lines = [json.dumps(self.header)] + [json.dumps({"key": k, "record": r}) for k, r in self.records.items()]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.path)

    def add(self, key: str, record: dict[str, Any]) -> None:
        self.records[key] = record
        with open(self.path, "a") as f:
            f.write(json.dumps({"key": key, "record": record}, allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        """The run is written: drop the journal (and ``.partial`` when nothing else is left in it)."""
        self.path.unlink(missing_ok=True)
        self.unlock()
        try:
            self.path.parent.rmdir()
        except OSError:  # another run's journal is still there
            pass
