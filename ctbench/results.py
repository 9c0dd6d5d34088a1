"""The results store: one JSON document per run, written atomically, never overwritten, validated on read.

The schema is public and versioned; ``results/README.md`` documents it field by field. A file that cannot be read
(corrupt JSON, a foreign document, a newer schema) raises ``ResultFileError`` naming the file and the field, and
``load_runs`` skips it and goes on with the rest.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = "ctbench.run/2"
SCHEMA_VERSION = 2  # 2: ``tasks`` (each task's description) and per-case ``process``; version 1 still loads
STATUSES = ("ok", "failed", "invalid", "timeout")

_CASE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "task": str,
    "impl": str,
    "submission": str,
    "scale": str,
    "params": dict,
    "seed": int,
    "dataset": str,
    "status": str,
    "metrics": dict,
    "checks": dict,
}


class ResultFileError(ValueError):
    """A run file that cannot be used; the message names the file and the field."""

    def __init__(self, path: Path | str, field: str, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        super().__init__(f"{path}: {field}: {problem}")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def _require(doc: dict, key: str, kind: type | tuple[type, ...], where: str, path: Path) -> Any:
    if key not in doc:
        raise ResultFileError(path, f"{where}{key}", "missing")
    if not isinstance(doc[key], kind) or (kind is int and isinstance(doc[key], bool)):
        raise ResultFileError(path, f"{where}{key}", f"expected {getattr(kind, '__name__', kind)}")
    return doc[key]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(doc: Any, path: Path | str = "<run>") -> dict:
    """Check ``doc`` against the run schema; return it unchanged or raise ``ResultFileError``."""
    path = Path(path)
    if not isinstance(doc, dict):
        raise ResultFileError(path, "<root>", "not a JSON object")
    schema = doc.get("schema")
    if not isinstance(schema, str) or not schema.startswith("ctbench.run/"):
        raise ResultFileError(path, "schema", f"not a ctbench run file (schema={schema!r})")
    version = schema.rsplit("/", 1)[1]
    if not version.isdigit() or int(version) > SCHEMA_VERSION:
        raise ResultFileError(path, "schema", f"{schema} is newer than this ctbench reads ({SCHEMA}); upgrade ctbench")
    for key, kind in (("run_id", str), ("created", str), ("env", dict), ("cases", list)):
        _require(doc, key, kind, "", path)
    if "tasks" in doc:
        _require(doc, "tasks", dict, "", path)
        for name, spec in doc["tasks"].items():
            if not isinstance(spec, dict) or not isinstance(spec.get("metrics", {}), dict):
                raise ResultFileError(path, f"tasks.{name}", "not a task description (an object with `metrics`)")
    for i, case in enumerate(doc["cases"]):
        where = f"cases[{i}]."
        if not isinstance(case, dict):
            raise ResultFileError(path, f"cases[{i}]", "not an object")
        for key, kind in _CASE_FIELDS.items():
            _require(case, key, kind, where, path)
        if case["status"] not in STATUSES:
            raise ResultFileError(path, f"{where}status", f"{case['status']!r} is not one of {', '.join(STATUSES)}")
        for name, value in case["metrics"].items():
            if value is not None and not _number(value):  # null: a value that was not finite
                raise ResultFileError(path, f"{where}metrics.{name}", "not a number")
        for name, check in case["checks"].items():
            if not isinstance(check, dict) or not {"value", "threshold", "passed"} <= check.keys():
                raise ResultFileError(path, f"{where}checks.{name}", "needs value, threshold, passed")
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


def write_atomic(path: Path, doc: Any) -> Path:
    """Write JSON to ``path`` through a temporary file and a rename; refuse to overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
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


def load_run(path: Path | str) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except UnicodeDecodeError as exc:
        raise ResultFileError(path, "<file>", f"not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise ResultFileError(path, "<file>", f"not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    return validate(doc, path)


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
        except (ResultFileError, OSError) as exc:
            skipped.append(Skipped(str(f), str(exc)))
            continue
        doc["_path"] = str(f)
        _describe_missing(doc, describe)
        runs.append(doc)
    return runs, skipped
