"""The pytest-benchmark JSON that CI writes: a table of hot-step timings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctbench.boards.cells import number
from ctbench.store.results import Skipped

CI_JSON = Path(".ci/out/pytest-benchmark.json")  # where .ci/run writes it, relative to the repository root
STATS = ("median", "iqr", "mean", "stddev", "min", "max")


@dataclass
class PytestBenchmark:
    path: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    info: list[tuple[str, str]] = field(default_factory=list)  # (label, value) about the machine and commit


def _info(doc: dict[str, Any]) -> list[tuple[str, str]]:
    machine, commit = doc.get("machine_info") or {}, doc.get("commit_info") or {}
    cpu = machine.get("cpu") or {}
    pairs = [
        ("written", doc.get("datetime")),
        ("pytest-benchmark", doc.get("version")),
        ("commit", commit.get("id")),
        ("dirty", commit.get("dirty")),
        ("branch", commit.get("branch")),
        ("python", machine.get("python_version")),
        ("cpu", cpu.get("brand_raw") if isinstance(cpu, dict) else None),
        ("cores", cpu.get("count") if isinstance(cpu, dict) else None),
        ("machine", machine.get("node")),
    ]
    return [(k, str(v)) for k, v in pairs if v is not None]


def load(path: Path | None) -> tuple[PytestBenchmark | None, Skipped | None]:
    """Read ``path`` (default: CI's JSON if it exists); a file that cannot be read is returned as skipped."""
    if path is None:
        if not CI_JSON.is_file():
            return None, None
        path = CI_JSON
    try:
        doc = json.loads(Path(path).read_text())
        benchmarks = doc["benchmarks"]
        rows = [
            {
                "group": b.get("group") or "",
                "name": b["name"],
                "params": ", ".join(f"{k}={v}" for k, v in (b.get("params") or {}).items()),
                "rounds": b["stats"]["rounds"],
                **{s: number(b["stats"].get(s), "s") for s in STATS},
                "sort": {s: repr(float(b["stats"][s])) for s in STATS if isinstance(b["stats"].get(s), (int, float))},
            }
            for b in benchmarks
        ]
    except OSError as exc:
        return None, Skipped(str(path), f"cannot read the pytest-benchmark JSON: {exc.strerror}")
    except ValueError as exc:
        return None, Skipped(str(path), f"not valid JSON: {exc}")
    except (KeyError, TypeError, AttributeError) as exc:
        return None, Skipped(str(path), f"not a pytest-benchmark JSON (bad or missing field {exc})")
    return PytestBenchmark(str(path), sorted(rows, key=lambda r: (r["group"], r["name"])), _info(doc)), None
