"""Run files as the reading commands load them: skipped files named on stderr, described by the installed tasks
where a run file carries no description."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctbench.catalog.registry import description
from ctbench.store.results import load_runs


def read_runs(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    runs, skipped = load_runs(list(paths), description)
    for s in skipped:
        print(f"skipped {s.reason}", file=sys.stderr)
    return runs
