"""One case, in its own process: load the task and the implementation, run the protocol, write the case record.

``python -m ctbench.worker CASE.json RECORD.json`` is what the runner starts for every case; ``execute`` is the
same thing in-process (tests and asv call it). A protocol that raises produces a ``failed`` record with the error;
a metric that is NaN or infinite makes the case ``failed`` too, never a silent number.
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctbench.implementation import ImplRef, Manifest, load_class
from ctbench.registry import get_task
from ctbench.results import write_atomic
from ctbench.task import CaseResult, Context

ERROR_TAIL = 4000  # characters of a traceback kept in the record


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def blank_record(case: dict[str, Any], impl: ImplRef) -> dict[str, Any]:
    manifest = impl.manifest
    return {
        "task": case["task"],
        "impl": manifest.name,
        "submission": impl.submission,
        "impl_spec": impl.spec,
        "manifest": {"name": manifest.name, "authors": list(manifest.authors), "url": manifest.url},
        "scale": case["scale"],
        "params": case["params"],
        "seed": case["seed"],
        "dataset": "unknown",
        "status": "failed",
        "metrics": {},
        "checks": {},
        "series": {},
        "spread": {},
        "error": None,
        "note": None,
    }


def _fill(record: dict[str, Any], result: CaseResult) -> None:
    record.update(
        dataset=result.dataset,
        metrics={k: float(v) for k, v in result.metrics.items()},
        checks={
            k: {"value": c.value, "threshold": c.threshold, "passed": c.passed, "description": c.description}
            for k, c in result.checks.items()
        },
        series=result.series,
        spread=result.spread,
        note=result.note,
    )
    bad = result.nonfinite_metrics()
    if bad:
        record.update(status="failed", error=f"non-finite metric(s): {', '.join(bad)}")
    elif result.invalid_reason:
        record.update(status="invalid", error=result.invalid_reason)
    else:
        record["status"] = "ok"


def execute(case: dict[str, Any], device: str, data_root: Path, cache_dir: Path) -> dict[str, Any]:
    """Run one case (``Case.to_json()`` form) and return its record in the results schema."""
    impl = ImplRef(Manifest(**case["impl"]["manifest"]), case["impl"]["spec"], case["impl"]["submission"])
    record = blank_record(case, impl)
    start = time.perf_counter()
    try:
        task = get_task(case["task"])
        scale = task.scales[case["scale"]]
        seed_everything(case["seed"])
        ctx = Context(torch.device(device), Path(data_root), Path(cache_dir), case["seed"])
        _fill(record, task.run(load_class(impl.spec)(), scale, case["params"], ctx))
    except Exception as exc:
        tb = traceback.format_exc()
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}\n{tb[-ERROR_TAIL:]}")
    record["duration_s"] = time.perf_counter() - start
    record["device"] = device
    record["threads"] = torch.get_num_threads()
    return record


def main(argv: list[str]) -> int:
    case_path, record_path, device, data_root, cache_dir, threads = argv
    if int(threads) > 0:
        torch.set_num_threads(int(threads))
    case = json.loads(Path(case_path).read_text())
    write_atomic(Path(record_path), execute(case, device, Path(data_root), Path(cache_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
