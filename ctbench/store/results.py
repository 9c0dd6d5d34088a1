"""Run files: one versioned JSON document per run, the ``Run`` type that builds, validates, reads and writes it.

The schema is public and versioned; ``results/README.md`` documents it field by field and ``ctbench.store.schema``
checks it. A file that cannot be used raises ``ResultFileError`` naming the file and the field, and ``load_runs`` skips
it and goes on with the rest: what ``ctbench.store.files`` refuses to read, a foreign document, a newer schema, a
run-level field of the wrong type.

The loader bounds each record, not the file: a case record that fails the schema (a field of the wrong type, an
unknown status, more than ``schema.MAX_METRICS`` metrics, a negative time) is left out with a warning naming the
file and the case, and the file's other cases are read; a string cut to ``MAX_TEXT`` characters is named too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ctbench.store import files, schema
from ctbench.store.files import (
    ResultFileError,
    Skipped,
    cut_places,
    jsonable,
    mend,
    parse,
    read_regular,
    write_atomic,
)
from ctbench.store.record import Record
from ctbench.store.text import printable, shown

__all__ = ["SCHEMA", "STATUSES", "Describe", "ResultFileError", "Run", "Skipped", "load_runs", "run_files"]

SCHEMA = "ctbench.run/2"
SCHEMA_VERSION = 2  # 2: ``tasks`` (each task's description) and per-case ``process``; version 1 still loads
STATUSES = schema.STATUSES


def _passes(doc: Any, path: Path, *checks: Callable[..., None]) -> None:
    """Every ``check(doc, "")`` (``ctbench.store.schema``), a ``Problem`` raised as ``ResultFileError`` of ``path``."""
    try:
        for check in checks:
            check(doc, "")
    except schema.Problem as exc:
        raise ResultFileError(path, exc.field, exc.problem) from None


def _check_version(doc: Any, path: Path) -> None:
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


class Run(dict[str, Any]):
    """One run: the document of a run file (a ``dict`` of its fields, as the file holds them; its ``cases`` are
    ``Record``s). ``new`` builds one, ``validated`` checks one against the schema, ``load`` reads one from its file
    and ``write`` stores one, atomically and never over another."""

    @classmethod
    def new(
        cls,
        *,
        run_id: str,
        created: str,
        env: dict[str, Any],
        nodes: dict[str, Any],
        settings: dict[str, Any],
        tasks: dict[str, Any],
        cases: list[dict[str, Any]],
        checks: list[dict[str, Any]],
    ) -> Run:
        """A run of the current schema version."""
        records = [Record(c) for c in cases]
        return cls(schema=SCHEMA, run_id=run_id, created=created, env=env, nodes=nodes, settings=settings,
                   tasks=tasks, cases=records, checks=checks)  # fmt: skip

    @classmethod
    def validated(cls, doc: Any, path: Path | str = "<run>") -> Run:
        """``doc`` as a ``Run`` if it passes the run schema (``ctbench.store.schema``), else ``ResultFileError``."""
        path = Path(path)
        _check_version(doc, path)
        _passes(doc, path, schema.shallow, schema.RUN)
        return doc if isinstance(doc, Run) else cls(doc)

    @classmethod
    def load(cls, path: Path | str) -> Run:
        """The validated run in ``path``; ``ResultFileError`` for anything that is not a usable run file. Its
        unusable case records are left out (``load_runs`` names them)."""
        return _load(Path(path))[0]

    @property
    def version(self) -> int:
        """The schema version the run's file was written with."""
        return int(str(self["schema"]).rsplit("/", 1)[1])

    @property
    def cases(self) -> list[Record]:
        return list(self["cases"])

    def write(self, out_dir: Path) -> Path:
        """Validate and store the run as ``<out_dir>/<run_id>.json``; strings over ``MAX_TEXT`` characters are
        stored cut (the run itself is not changed)."""
        stored = jsonable(self)
        mend(stored, surrogates=False)  # written as ``\\udXXX`` escapes: the file is exact, readers get U+FFFD
        path = out_dir / f"{self['run_id']}.json"
        Run.validated(stored, path)
        return write_atomic(path, stored)


def _who(case: Any) -> str:
    """A case as a reader finds it: ``task/impl scale seed N`` from whichever of those fields it has."""
    if not isinstance(case, dict):
        return "not an object"
    parts = [case.get(k) for k in ("task", "impl", "scale")]
    name = "/".join(str(p) for p in parts[:2] if isinstance(p, str)) or "?"
    scale = f" {parts[2]}" if isinstance(parts[2], str) else ""
    seed = f" seed {case['seed']}" if isinstance(case.get("seed"), int) else ""
    return printable(f"{name}{scale}{seed}")[:200]


def _usable_cases(doc: dict[str, Any], path: Path) -> list[Skipped]:
    """Leave out (in place) every case record of ``doc`` that fails the schema; one ``Skipped`` each, naming it."""
    cases = doc.get("cases")
    if not isinstance(cases, list):
        return []  # ``validate`` names the field
    kept, left_out = [], []
    for i, case in enumerate(cases):
        try:
            schema.CASE(case, f"cases[{i}]")
        except schema.Problem as exc:
            who = _who(case)
            reason = f"{exc.field} ({who}): {exc.problem}; this case is left out, the file's other cases are read"
            left_out.append(Skipped(printable(shown(path)), printable(f"{shown(path)}: {reason}"), f"cases[{i}] {who}"))
            continue
        kept.append(Record(case))
    doc["cases"] = kept
    return left_out


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _load(path: Path) -> tuple[Run, list[Skipped]]:
    """The usable run in ``path`` (its unusable cases left out) and what was left out or cut, case by case."""
    data = read_regular(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultFileError(path, "<file>", f"not UTF-8 text ({exc.reason})") from None
    doc = parse(text, path)
    _check_version(doc, path)
    try:
        was_cut = mend(doc, surrogates=_SURROGATE_ESCAPE.search(text) is not None, limit=schema.MAX_DEPTH)
    except schema.Problem as exc:
        raise ResultFileError(path, exc.field, exc.problem) from None
    notes = []
    if was_cut:
        cases = doc.get("cases") if isinstance(doc.get("cases"), list) else []
        for where, length in cut_places(doc):
            index = re.match(r"cases\[(\d+)\]", where)
            who = f" ({_who(cases[int(index.group(1))])})" if index and int(index.group(1)) < len(cases) else ""
            reason = f"{where}{who}: {length}, cut to {files.MAX_TEXT} characters; the case is kept"
            notes.append(Skipped(printable(shown(path)), printable(f"{shown(path)}: {reason}"), where.split(".")[0]))
    notes += _usable_cases(doc, path)
    _passes(doc, path, schema.RUN_HEAD)  # its depth checked by ``mend``, its cases one by one
    return Run(doc), notes


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


def _describe_missing(doc: dict[str, Any], describe: Describe | None) -> None:
    """A version-1 run carries no task descriptions: take them from ``describe`` (the installed tasks) where
    it knows the task; a task it does not know is rendered without units or ranks."""
    tasks = doc.setdefault("tasks", {})
    if describe is None:
        return
    for name in dict.fromkeys(c["task"] for c in doc["cases"]):
        if name not in tasks and (spec := describe(name)) is not None:
            tasks[name] = spec


def load_runs(paths: Iterable[Path | str], describe: Describe | None = None) -> tuple[list[Run], list[Skipped]]:
    """Every readable run among ``paths``, and what was skipped with the reason: whole files, and single cases of
    files whose other cases were read (``Skipped.case``). ``describe`` (task name -> description, or None) fills in
    the descriptions that version-1 run files lack. ``_path`` is the file as found (a non-UTF-8 byte of its name as
    Python reads it): show it through ``ctbench.store.text.shown``."""
    runs, skipped = [], []
    for f in run_files(paths):
        try:
            doc, notes = _load(f)
        except (ResultFileError, OSError) as exc:  # _load names OSErrors itself; this is a second net
            skipped.append(Skipped(printable(shown(f)), printable(str(exc))))
            continue
        skipped += notes
        doc["_path"] = str(f)
        _describe_missing(doc, describe)
        runs.append(doc)
    return runs, skipped
