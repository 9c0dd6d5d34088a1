"""Cached artefacts of the tasks (pretrained weights, a data subsample, h*): computed once per key, written
atomically (a temporary file in the same folder, then a rename), so concurrent cases and killed runs never leave
a half-written file that a later case would load."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import torch

T = TypeVar("T")

# where the tasks' artefacts and datasets live: $CTBENCH_CACHE, else ~/.cache/ctbench
CACHE = Path(os.environ.get("CTBENCH_CACHE", Path.home() / ".cache" / "ctbench"))


def key(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts (configuration, dataset name, seed, a version number)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _write(path: Path, write: Callable[[Path], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached(path: Path, build: Callable[[], T]) -> T:
    """The object stored at ``path`` (``torch.save`` format, or JSON for a ``.json`` path), else ``build()``,
    stored there atomically (where the cache can be written) and returned."""
    json_file = path.suffix == ".json"
    if path.exists():
        stored = json.loads(path.read_text()) if json_file else torch.load(path, map_location="cpu", weights_only=False)
        return cast(T, stored)  # what ``build`` returned when it was stored
    value = build()
    try:
        if json_file:
            _write(path, lambda tmp: tmp.write_text(json.dumps(value)))
        else:
            _write(path, lambda tmp: torch.save(value, tmp))
    except OSError:  # a read-only cache (a sandboxed case): the value is right, only not kept for later cases
        pass
    return value
