"""How long the report takes on a large result set: ``python -m report.benchmark_build [N_CASES]``.

Writes ``N_CASES`` synthetic ``adjoint_resnet`` cases (default 10,000) as run files of 1,000 cases each
(5 methods plus submissions, a depth sweep, three seeds, two scales, two machines, 2% failed), then times
``build_report`` over them: loading, aggregation, the task's declared plots, every page and the CSV files. The
numbers in these files are random draws, made only to exercise the report; they are never results.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from ctbench.store.results import SCHEMA, Run

TASK = "adjoint_resnet"
IMPLS = (
    "backprop",
    "checkpoint",
    "adjoint_euler",
    "adjoint_heun",
    "torchdiffeq",
    "my_adjoint",
    "other_method",
)
DEPTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
SCALES = (("smoke", "synthetic-cifar10-shape"), ("small", "cifar10"))
MACHINES = (
    {"cpu": "Synthetic CPU A", "cpu_cores": 2, "gpus": []},
    {
        "cpu": "Synthetic CPU B",
        "cpu_cores": 16,
        "gpus": [{"name": "Synthetic GPU", "driver": "1", "memory_bytes": 2**34}],
    },
)
CASES_PER_RUN = 1000


def _metric(unit: str, higher: bool | None) -> dict[str, Any]:
    return {"unit": unit, "higher_is_better": higher, "description": "synthetic"}


def _vs_depth(name: str, metric: str) -> dict[str, Any]:
    return {"name": name, "x": "param.depth", "y": metric, "xlog": True, "ylog": True, "where": {}}


# the description a run file of the task carries (``ctbench.catalog.describe``), written out: no task code is imported
DESCRIPTION = {
    "summary": "synthetic cases, to time the report",
    "paper": {"title": "synthetic", "authors": "synthetic", "venue": "-", "url": ""},
    "step": "a synthetic step",
    "primary_metric": "test_accuracy",
    "metrics": {
        "test_accuracy": _metric("fraction", True),
        "grad_rel_error": _metric("", False),
        "reconstruction_error": _metric("", False),
        "step_peak_memory_bytes": _metric("bytes", False),
        "step_time_s": _metric("s", False),
        "throughput_samples_s": _metric("samples/s", True),
    },
    "paper_numbers": [],
    "plots": [
        _vs_depth("step_memory_vs_depth", "step_peak_memory_bytes"),
        _vs_depth("step_time_vs_depth", "step_time_s"),
        _vs_depth("grad_error_vs_depth", "grad_rel_error"),
    ],
}


def _case(rng: random.Random, impl: str, depth: int, scale: str, dataset: str, seed: int) -> dict[str, Any]:
    failed = rng.random() < 0.02
    memory_free = impl not in ("backprop", "checkpoint")
    metrics = (
        {}
        if failed
        else {
            "test_accuracy": rng.uniform(0.5, 0.9),
            "grad_rel_error": rng.uniform(1e-4, 1e-1) / depth if memory_free else 0.0,
            "step_peak_memory_bytes": rng.uniform(1e7, 2e7) * (1 if memory_free else depth),
            "step_time_s": rng.uniform(0.01, 0.02) * depth,
            "throughput_samples_s": rng.uniform(100, 1000),
        }
    )
    if memory_free and not failed:
        metrics["reconstruction_error"] = rng.uniform(1e-5, 1e-2)
    submission = "reference" if impl in IMPLS[:5] else "synthetic-submission"
    return {
        "task": TASK,
        "impl": impl,
        "submission": submission,
        "manifest": {"name": impl, "authors": ["synthetic"], "url": "https://example.org/" + impl},
        "scale": scale,
        "params": {"depth": depth},
        "seed": seed,
        "dataset": dataset,
        "status": "failed" if failed else "ok",
        "metrics": metrics,
        "checks": {"finite": {"value": 0.0, "threshold": 0.0, "passed": not failed, "description": "synthetic"}},
        "series": {},
        "spread": {} if failed else {"step_time_s": metrics["step_time_s"] * 0.05},
        "error": "RuntimeError: synthetic failure" if failed else None,
    }


def synthetic_runs(n_cases: int, out_dir: Path, seed: int = 0) -> list[Path]:
    """Write ``n_cases`` synthetic cases as run files under ``out_dir``; return their paths."""
    rng = random.Random(seed)
    combos = itertools.cycle(itertools.product(range(3), SCALES, DEPTHS, IMPLS))
    paths = []
    for r, start in enumerate(range(0, n_cases, CASES_PER_RUN)):
        cases = []
        for _ in range(min(CASES_PER_RUN, n_cases - start)):
            seed_, (scale, dataset), depth, impl = next(combos)
            cases.append(_case(rng, impl, depth, scale, dataset, seed_))
        doc = {
            "schema": SCHEMA,
            "run_id": f"20250101T{r:06d}Z-synthetic",
            "created": f"2025-01-01T00:00:{r % 60:02d}+00:00",
            "env": {"ctbench": "synthetic", **MACHINES[r % len(MACHINES)]},
            "tasks": {TASK: DESCRIPTION},
            "cases": cases,
            "checks": [],
        }
        paths.append(Run(doc).write(out_dir))
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cases", type=int, nargs="?", default=10_000)
    args = p.parse_args(argv)
    from report import build_report

    with tempfile.TemporaryDirectory(prefix="ctbench-report-bench-") as tmp:
        runs = Path(tmp, "runs")
        synthetic_runs(args.cases, runs)
        start, cpu = time.perf_counter(), time.process_time()
        build_report([runs], Path(tmp, "site"))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        files = [f for f in Path(tmp, "site").rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        pages = sorted(((f.stat().st_size, f.name) for f in files if f.suffix == ".html"), reverse=True)
        data = {f.name: f.stat().st_size for f in files if f.name in ("cases.csv.gz", "leaderboard.csv")}
    load = os.getloadavg()[0]
    print(
        f"report over {args.cases} cases: {seconds:.1f} s wall, {cpu:.1f} s CPU, "
        f"{size / 2**20:.1f} MiB written ({os.cpu_count()} cores, load average {load:.1f})"
    )
    print(f"{len(pages)} pages; the largest: " + ", ".join(f"{name} {b / 2**20:.2f} MiB" for b, name in pages[:3]))
    print("data: " + ", ".join(f"{name} {b / 2**20:.1f} MiB" for name, b in data.items()))


if __name__ == "__main__":
    main()
