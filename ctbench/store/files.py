"""JSON files of the store, bounded: written atomically and never overwritten, read without trusting them.

A file that cannot be used raises ``ResultFileError`` naming the file and the field: corrupt JSON, JSON's
``NaN``/``Infinity``, an integer of more than ``MAX_INT_DIGITS`` digits, nesting deeper than ``MAX_DEPTH``, a file over
``MAX_FILE_BYTES``, or something that is not a regular file (a FIFO, a device, a link to one). A string longer than
``MAX_TEXT`` characters is cut to that length (``mend``), so one huge note never makes a file unloadable: a file over
``MAX_BYTES`` is read with its long strings cut before it is parsed. Lone surrogates (JSON's ``"\\ud800"``) are written
as escapes and read back as U+FFFD, so every string a reader sees can be encoded.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctbench.store.schema import MAX_DEPTH, MAX_INT_DIGITS, Problem
from ctbench.store.text import printable, without_surrogates

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


def jsonable(value: Any) -> Any:
    """NaN and infinities are not JSON: store them as null (a failed case keeps its other numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
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
            json.dump(jsonable(doc), f, indent=1, allow_nan=False)
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


def mend(doc: Any, surrogates: bool = True, limit: int | None = None) -> bool:
    """In place: every lone surrogate in a string or key of ``doc`` replaced by U+FFFD (where ``surrogates``), every
    string over ``MAX_TEXT`` characters cut (``_cut``). True when a string was cut here or before (``CUT``). With
    ``limit``, objects and lists nested deeper than that are refused as ``schema.check_depth`` refuses them (one walk
    over a large document does both)."""
    cut = False
    stack = [(doc, 1)]
    deepest = math.inf if limit is None else limit
    while stack:
        value, depth = stack.pop()
        if depth > deepest and isinstance(value, (dict, list)):
            raise Problem("<root>", f"nested deeper than {limit} levels")
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
                stack.append((item, depth + 1))
    return cut


def cut_places(doc: Any) -> list[tuple[str, str]]:
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


def read_regular(path: Path) -> bytes:
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
