"""Where tasks live beyond this repository: ``CTBENCH_PATH`` names extra roots (``os.pathsep``-separated), each
with the repository's shape, ``<root>/suites/<task>/`` and ``<root>/reference_impls/<task>/``. The packages
``suites`` and ``reference_impls`` extend their search path with them, so a task added there is found by the
registry, by every case's subprocess (which inherits the variable) and by the generic benchmarks, with no
engine edit."""

from __future__ import annotations

import os
from pathlib import Path

VARIABLE = "CTBENCH_PATH"


def extend(path: list[str], folder: str) -> list[str]:
    """``path`` (a package's ``__path__``) followed by ``<root>/<folder>`` for each root in ``CTBENCH_PATH``."""
    extra = [str(Path(r) / folder) for r in os.environ.get(VARIABLE, "").split(os.pathsep) if r]
    return [*path, *(p for p in extra if Path(p).is_dir() and p not in path)]
