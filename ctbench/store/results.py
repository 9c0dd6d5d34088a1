"""The results store: one JSON document per run, written atomically, never overwritten, validated on read.

The schema is public and versioned; ``results/README.md`` documents it field by field and ``ctbench.store.schema``
checks it. A file that cannot be used raises ``ResultFileError`` naming the file and the field, and ``load_runs`` skips
it and goes on with the rest: corrupt JSON, a foreign document, a newer schema, a run-level field of the wrong type,
JSON's ``NaN``/``Infinity``, an integer of more than ``MAX_INT_DIGITS`` digits, nesting deeper than ``MAX_DEPTH``, a
file over ``MAX_FILE_BYTES``, or something that is not a regular file (a FIFO, a device, a link to one).

The loader bounds each record, not the file: a case record that fails the schema (a field of the wrong type, an
unknown status, more than ``schema.MAX_METRICS`` metrics, a negative time) is left out with a warning naming the
file and the case, and the file's other cases are read. A string longer than ``MAX_TEXT`` characters is cut to that
length (on writing, and on loading with a warning naming the case), so one huge note never makes a file unloadable:
a file over ``MAX_BYTES`` is read with its long strings cut before it is parsed. Lone surrogates (JSON's
``"\\ud800"``) are written as escapes and read back as U+FFFD, so every string a reader sees can be encoded.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ctbench.store import schema
from ctbench.store.schema import MAX_DEPTH, MAX_INT_DIGITS
from ctbench.store.text import printable, shown, without_surrogates

SCHEMA = "ctbench.run/2"
SCHEMA_VERSION = 2  # 2: ``tasks`` (each task's description) and per-case ``process``; version 1 still loads
STATUSES = schema.STATUSES
MAX_BYTES = 256 * 2**20  # JSON text parsed whole; a larger file has its long strings cut first
MAX_FILE_BYTES = 4 * 2**30  # never read: larger than any run file with its strings cut can be
MAX_TEXT = 2**20  # characters of one string (a note, an error): longer ones are cut, the case is kept
FILE_MODE = 0o644  # less the umask
CUT = re.compile(r"…\[cut by ctbench: (\d+ (?:characters|bytes)) in all\]\Z")


class ResultFileError(ValueError):
    """A run file that cannot be used; the message names the file and the field (terminal-safe: ``printable``)."""

    def __init__(self, path: Path | str, field: str, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        super().__init__(printable(f"{path}: {field}: {problem}"))


@dataclass(frozen=True)
class Skipped:
    """A file that could not be read, or (``case`` set) one case of a file whose other cases were read. Both fields
    are for display: escaped by ``ctbench.store.text.printable``."""

    path: str
    reason: str
    case: str = ""


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


def validate(doc: Any, path: Path | str = "<run>") -> dict[str, Any]:
    """Check ``doc`` against the run schema (``ctbench.store.schema``); return it unchanged or raise
    ``ResultFileError``."""
    path = Path(path)
    _check_version(doc, path)
    try:
        schema.check_depth(doc)
        schema.RUN(doc, "")
    except schema.Problem as exc:
        raise ResultFileError(path, exc.field, exc.problem) from None
    return cast("dict[str, Any]", doc)  # _check_version refused anything but an object


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
        kept.append(case)
    doc["cases"] = kept
    return left_out


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


def _cut(text: str) -> str:
    """``text`` cut to ``MAX_TEXT`` characters, the last ones saying how long it was."""
    mark = f"…[cut by ctbench: {len(text)} characters in all]"
    return text[: MAX_TEXT - len(mark)] + mark


def _mend(doc: Any, surrogates: bool = True) -> bool:
    """In place: every lone surrogate in a string or key of ``doc`` replaced by U+FFFD (where ``surrogates``), every
    string over ``MAX_TEXT`` characters cut (``_cut``). True when a string was cut here or before (``CUT``)."""
    cut = False
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if surrogates and any(isinstance(k, str) and without_surrogates(k) != k for k in value):
                items = list(value.items())
                value.clear()
                value.update((without_surrogates(k) if isinstance(k, str) else k, v) for k, v in items)
            pairs: Iterable[tuple[Any, Any]] = value.items()
        elif isinstance(value, list):
            pairs = enumerate(value)
        else:
            continue
        for key, item in list(pairs):
            if isinstance(item, str):
                fixed = without_surrogates(item) if surrogates else item
                if len(fixed) > MAX_TEXT:
                    fixed = _cut(fixed)
                cut = cut or (fixed.endswith(" in all]") and CUT.search(fixed) is not None)
                if fixed is not item:
                    value[key] = fixed
            elif isinstance(item, (dict, list)):
                stack.append(item)
    return cut


def _cut_places(doc: Any) -> list[tuple[str, str]]:
    """Where ``doc`` holds a cut string (``CUT``), as ``cases[3].note``, and how long it was."""
    places = []
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, where = stack.pop()
        pairs = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in pairs:
            child = f"{where}[{key}]" if isinstance(value, list) else f"{where}.{key}" if where else str(key)
            if isinstance(item, str) and (found := CUT.search(item)):
                places.append((child, found.group(1)))
            elif isinstance(item, (dict, list)):
                stack.append((item, child))
    return sorted(places)


def write_run(doc: dict[str, Any], out_dir: Path) -> Path:
    """Validate and store a run document as ``<out_dir>/<run_id>.json``; strings over ``MAX_TEXT`` characters are
    stored cut (the document passed in is not changed)."""
    stored = _jsonable(doc)
    _mend(stored, surrogates=False)  # written as ``\\udXXX`` escapes: the file is exact, readers get U+FFFD
    validate(stored, out_dir / f"{doc['run_id']}.json")
    return write_atomic(out_dir / f"{doc['run_id']}.json", stored)


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
    """The bytes of ``path`` if it is a regular file (or a link to one): read whole up to ``MAX_BYTES``; up to
    ``MAX_FILE_BYTES``, mapped and read with its long strings cut (``_cut_strings``). A FIFO is never opened for a
    blocking read, a device never read without bound."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ResultFileError(path, "<file>", "not a regular file (a folder, FIFO, device or socket)")
        if info.st_size > MAX_FILE_BYTES:
            raise ResultFileError(path, "<file>", f"{info.st_size} bytes, over the {MAX_FILE_BYTES}-byte limit")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced between the stat and the open
                raise ResultFileError(path, "<file>", "not a regular file")
            size = os.fstat(f.fileno()).st_size
            if size <= MAX_BYTES:
                data = f.read(MAX_BYTES + 1)
            else:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    data = _cut_strings(mapped, path)
    except OSError as exc:
        raise ResultFileError(path, "<file>", f"cannot be read ({exc.strerror or exc})") from exc
    if len(data) > MAX_BYTES:
        raise ResultFileError(path, "<file>", f"over the {MAX_BYTES}-byte limit")
    return data


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string literal


def _prefix(content: bytes, size: int) -> bytes:
    """The first ``size`` bytes or fewer of a string literal's ``content``: never half an escape or a character."""
    head = content[:size]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.end >= len(head) and exc.reason == "unexpected end of data":
            head = head[: exc.start]
    last = head.rfind(b"\\", max(0, len(head) - 6))
    if last >= 0:
        run = last
        while run > 0 and head[run - 1] == 0x5C:
            run -= 1
        if (last - run) % 2 == 0:  # an odd run of backslashes: the last one starts an escape
            need = 6 if head[last + 1 : last + 2] in (b"u", b"") else 2
            if last + need > len(head):
                head = head[:last]
    return head


def _cut_strings(data: Any, path: Path) -> bytes:
    """The JSON text ``data`` with every string literal longer than ``MAX_TEXT`` bytes cut as ``_cut`` cuts it, so
    that a file over ``MAX_BYTES`` whose size is long strings parses; ``ResultFileError`` once the text left is over
    ``MAX_BYTES`` anyway."""
    pieces, start, removed = [], 0, 0
    for match in _STRING.finditer(data):
        first, last = match.span()
        if first - removed > MAX_BYTES:
            break
        length = last - first - 2
        if length <= MAX_TEXT:
            continue
        mark = f"…[cut by ctbench: {length} bytes in all]".encode()
        head = _prefix(data[first + 1 : first + 1 + MAX_TEXT - len(mark)], MAX_TEXT - len(mark))
        pieces += [data[start : first + 1], head, mark]
        removed += length - len(head) - len(mark)
        start = last - 1
    if len(data) - removed > MAX_BYTES:
        raise ResultFileError(path, "<file>", f"{len(data)} bytes, over the {MAX_BYTES}-byte limit even with its long "
                              "strings cut")  # fmt: skip
    pieces.append(data[start:])
    return b"".join(pieces)


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


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _load(path: Path) -> tuple[dict[str, Any], list[Skipped]]:
    """The usable run in ``path`` (its unusable cases left out) and what was left out or cut, case by case."""
    data = _read_regular(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultFileError(path, "<file>", f"not UTF-8 text ({exc.reason})") from None
    doc = parse(text, path)
    _check_version(doc, path)
    try:
        schema.check_depth(doc)
    except schema.Problem as exc:
        raise ResultFileError(path, exc.field, exc.problem) from None
    notes = []
    if _mend(doc, surrogates=_SURROGATE_ESCAPE.search(text) is not None):
        cases = doc.get("cases") if isinstance(doc.get("cases"), list) else []
        for where, length in _cut_places(doc):
            index = re.match(r"cases\[(\d+)\]", where)
            who = f" ({_who(cases[int(index.group(1))])})" if index and int(index.group(1)) < len(cases) else ""
            reason = f"{where}{who}: {length}, cut to {MAX_TEXT} characters; the case is kept"
            notes.append(Skipped(printable(shown(path)), printable(f"{shown(path)}: {reason}"), where.split(".")[0]))
    notes += _usable_cases(doc, path)
    return validate(doc, path), notes


def load_run(path: Path | str) -> dict[str, Any]:
    """The validated run document in ``path``; ``ResultFileError`` for anything that is not a usable run file. Its
    unusable case records are left out (``load_runs`` names them)."""
    return _load(Path(path))[0]


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


def load_runs(
    paths: Iterable[Path | str], describe: Describe | None = None
) -> tuple[list[dict[str, Any]], list[Skipped]]:
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
