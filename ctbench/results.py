"""The results store: one JSON document per run, written atomically, never overwritten, validated on read.

The schema is public and versioned; ``results/README.md`` documents it field by field and ``ctbench.schema`` checks
it. A file that cannot be used raises ``ResultFileError`` naming the file and the field, and ``load_runs`` skips
it and goes on with the rest: corrupt JSON, a foreign document, a newer schema, a field of the wrong type, JSON's
``NaN``/``Infinity``, an integer of more than ``MAX_INT_DIGITS`` digits, nesting deeper than ``MAX_DEPTH``, a file
over ``MAX_BYTES``, or something that is not a regular file (a FIFO, a device, a link to one).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctbench import schema
from ctbench.schema import MAX_DEPTH, MAX_INT_DIGITS

SCHEMA = "ctbench.run/2"
SCHEMA_VERSION = 2  # 2: ``tasks`` (each task's description) and per-case ``process``; version 1 still loads
STATUSES = schema.STATUSES
MAX_BYTES = 256 * 2**20  # a run file is read whole: refuse one larger than this
FILE_MODE = 0o644  # less the umask


class ResultFileError(ValueError):
    """A run file that cannot be used; the message names the file and the field."""

    def __init__(self, path: Path | str, field: str, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        super().__init__(f"{path}: {field}: {problem}")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def validate(doc: Any, path: Path | str = "<run>") -> dict:
    """Check ``doc`` against the run schema (``ctbench.schema``); return it unchanged or raise ``ResultFileError``."""
    path = Path(path)
    if not isinstance(doc, dict):
        raise ResultFileError(path, "<root>", "not a JSON object")
    version_field = doc.get("schema")
    if not isinstance(version_field, str) or not version_field.startswith("ctbench.run/"):
        raise ResultFileError(path, "schema", f"not a ctbench run file (schema={version_field!r:.80})")
    version = version_field.rsplit("/", 1)[1]
    if not version.isdigit() or len(version) > 6 or int(version) > SCHEMA_VERSION:
        raise ResultFileError(
            path, "schema", f"{version_field:.80} is newer than this ctbench reads ({SCHEMA}); upgrade ctbench"
        )
    try:
        schema.check_depth(doc)
        schema.RUN(doc, "")
    except schema.Problem as exc:
        raise ResultFileError(path, exc.field, exc.problem) from None
    return doc


def _jsonable(value: Any) -> Any:
    """NaN and infinities are not JSON: store them as null (a failed case keeps its other numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _create_temporary(folder: Path, name: str) -> tuple[int, Path]:
    """A new file beside ``name``, mode ``FILE_MODE`` less the umask (``mkstemp`` would make it 0600)."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {folder / name}")


def write_atomic(path: Path, doc: Any) -> Path:
    """Write JSON to ``path`` through a temporary file and a hard link; refuse to overwrite an existing file.
    Non-finite numbers are written as null; the file's mode is 0644 less the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path.parent, path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_jsonable(doc), f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails if path exists: results are never overwritten
    finally:
        os.unlink(tmp)
    return path


def write_run(doc: dict, out_dir: Path) -> Path:
    """Validate and store a run document as ``<out_dir>/<run_id>.json``."""
    validate(_jsonable(doc), out_dir / f"{doc['run_id']}.json")
    return write_atomic(out_dir / f"{doc['run_id']}.json", doc)


class _Refused(ValueError):
    """A JSON token the run format does not allow (raised by the decoder's hooks)."""


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number a run file may hold (non-finite values are stored as null)")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(digits.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(digits)


def _finite_float(digits: str) -> float:
    value = float(digits)
    if not math.isfinite(value):
        raise _Refused(f"{digits:.40} overflows to a non-finite number")
    return value


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file (or a link to one) of at most ``MAX_BYTES``: a FIFO is never
    opened for a blocking read, a device never read without bound."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ResultFileError(path, "<file>", "not a regular file (a folder, FIFO, device or socket)")
        if info.st_size > MAX_BYTES:
            raise ResultFileError(path, "<file>", f"{info.st_size} bytes, over the {MAX_BYTES}-byte limit")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced between the stat and the open
                raise ResultFileError(path, "<file>", "not a regular file")
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ResultFileError(path, "<file>", f"cannot be read ({exc.strerror or exc})") from exc
    if len(data) > MAX_BYTES:
        raise ResultFileError(path, "<file>", f"over the {MAX_BYTES}-byte limit")
    return data


def parse(text: str, path: Path | str = "<run>") -> Any:
    """JSON text -> Python, refusing ``NaN``/``Infinity``, overlong integers and runaway nesting by name."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ResultFileError(path, "<file>", f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except _Refused as exc:
        raise ResultFileError(path, "<file>", str(exc)) from None
    except RecursionError:
        raise ResultFileError(path, "<file>", f"nested deeper than {MAX_DEPTH} levels") from None


def load_run(path: Path | str) -> dict:
    """The validated run document in ``path``; ``ResultFileError`` for anything that is not a usable run file."""
    path = Path(path)
    data = _read_regular(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultFileError(path, "<file>", f"not UTF-8 text ({exc.reason})") from None
    return validate(parse(text, path), path)


def run_files(paths: Iterable[Path | str]) -> list[Path]:
    """The run files named by ``paths``: files as given, folders searched recursively for ``*.json``."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*.json") if not f.name.startswith("."))
        else:
            files.append(p)
    return files


Describe = Callable[[str], "dict[str, Any] | None"]


def _describe_missing(doc: dict, describe: Describe | None) -> None:
    """A version-1 run carries no task descriptions: take them from ``describe`` (the installed tasks) where
    it knows the task; a task it does not know is rendered without units or ranks."""
    tasks = doc.setdefault("tasks", {})
    if describe is None:
        return
    for name in dict.fromkeys(c["task"] for c in doc["cases"]):
        if name not in tasks and (spec := describe(name)) is not None:
            tasks[name] = spec


def load_runs(paths: Iterable[Path | str], describe: Describe | None = None) -> tuple[list[dict], list[Skipped]]:
    """Every readable run among ``paths``, and the files skipped with the reason. ``describe`` (task name ->
    description, or None) fills in the descriptions that version-1 run files lack."""
    runs, skipped = [], []
    for f in run_files(paths):
        try:
            doc = load_run(f)
        except (ResultFileError, OSError) as exc:  # load_run names OSErrors itself; this is a second net
            skipped.append(Skipped(str(f), str(exc)))
            continue
        doc["_path"] = str(f)
        _describe_missing(doc, describe)
        runs.append(doc)
    return runs, skipped
