"""Run files the tests share, written here (valid against ``ctbench.store.results.Run.validated``): cases of the real
``adjoint_resnet`` task, carrying its description (``ctbench.catalog.describe``) so its metrics, units and plots are
used, plus a run of a task whose run file describes nothing; and small helpers to write them and bound a test's
time."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import signal
from pathlib import Path
from typing import Any

from ctbench.catalog.registry import description
from ctbench.store.results import SCHEMA, Run
from report import Built, build_report

REPO = Path(__file__).resolve().parents[1]

INJECTION = "<script>alert(1)</script>"
CPU_ENV = {
    "ctbench": "0.1.0",
    "git_commit": "0123456789abcdef",
    "git_dirty": False,
    "python": "3.11.7",
    "torch": "2.13.0",
    "cuda": None,
    "cudnn": None,
    "cuda_available": False,
    "gpus": [],
    "cpu": "Test CPU",
    "cpu_cores": 2,
    "torch_threads": 2,
    "ram_bytes": 24 * 2**30,
    "env_vars": {"OMP_NUM_THREADS": "1"},
}
GPU_ENV = {
    **CPU_ENV,
    "cuda": "12.4",
    "cuda_available": True,
    "gpus": [{"name": "Test GPU", "driver": "550.1", "memory_bytes": 2**35}],
}
METHODS = ("backprop", "checkpoint", "adjoint_euler", "adjoint_heun", "torchdiffeq")


def case(
    impl: str,
    depth: int,
    *,
    scale: str = "smoke",
    dataset: str = "synthetic-cifar10-shape",
    seed: int = 0,
    submission: str = "reference",
    status: str = "ok",
    error: str | None = None,
    url: str = "",
    task: str = "adjoint_resnet",
    accuracy: float = 0.8,
    time_s: float = 0.1,
    **metrics: float,
) -> dict[str, Any]:
    """A case record as the worker writes it; memory grows with depth for backprop, flat for the adjoints."""
    memory_free = impl.startswith("adjoint") or submission != "reference"
    values = {
        "test_accuracy": accuracy,
        "step_peak_memory_bytes": 2e7 * (1 if memory_free else depth / 8),
        "step_time_s": time_s * depth / 8,
        "throughput_samples_s": 320.0 / time_s,
        "grad_rel_error": 0.1 / depth,
        **metrics,
    }
    return {
        "task": task,
        "impl": impl,
        "submission": submission,
        "impl_spec": f"reference_impls.{task}.{impl}:X",
        "manifest": {"name": impl, "authors": ["A. Author"], "url": url},
        "scale": scale,
        "params": {"depth": depth},
        "seed": seed,
        "dataset": dataset,
        "status": status,
        "metrics": {} if status == "failed" else values,
        "checks": {"loss_finite": {"value": 1.0, "threshold": 1.0, "passed": status == "ok", "description": "loss"}},
        "series": {},
        # the quality metric's spread as several seeds would give it: rows 0.04 apart are ranked, 0.001 apart tie
        "spread": {"step_time_s": 0.002, "step_peak_memory_bytes": 0.0, "test_accuracy": 0.005},
        "error": error,
    }


RUN_CHECKS = [
    {
        "task": "adjoint_resnet",
        "name": "memory_flat_in_depth",
        "scope": {"impl": "adjoint_euler"},
        "value": 0.02,
        "threshold": 0.15,
        "passed": True,
        "description": "step memory growth",
    },
    {
        "task": "adjoint_resnet",
        "name": "heun_error_below_euler",
        "scope": {"depth": 8},
        "value": 1.3,
        "threshold": 1.0,
        "passed": False,
        "description": "heun / euler",
    },
]


def processes(cases: list[dict[str, Any]], seeds: tuple[int, ...] = (0, 1)) -> list[dict[str, Any]]:
    """Each case once per seed of ``seeds`` with the same numbers: a point measured in several processes, whose
    timings ``compare`` judges between runs (their range over processes is 0; the recorded spread counts)."""
    return [{**copy.deepcopy(c), "seed": seed} for c in cases for seed in seeds]


def run_doc(
    run_id: str,
    created: str,
    cases: list[dict[str, Any]],
    env: dict[str, Any] = CPU_ENV,
    checks: list[dict[str, Any]] = (),
) -> dict[str, Any]:
    doc = {
        "schema": SCHEMA,
        "run_id": run_id,
        "created": created,
        "env": copy.deepcopy(env),
        "settings": {"device": "cpu", "data_root": "/data"},
        "tasks": {name: description(name) for name in {c["task"] for c in cases} if description(name)},
        "cases": cases,
        "checks": list(checks),
    }
    return Run.validated(doc)


TIMED = ("backprop", "checkpoint")  # ``smoke_cases`` measures these in two processes a point


def smoke_cases(accuracy_shift: float = 0.0, time_scale: float = 1.0) -> list[dict[str, Any]]:
    cases = [
        case(
            impl,
            depth,
            accuracy=0.70 + 0.04 * i + (accuracy_shift if impl == "adjoint_heun" else 0.0),
            time_s=0.1 * (time_scale if impl == "backprop" else 1.0),
        )
        for i, impl in enumerate(METHODS)
        for depth in (8, 64)
    ]
    for c in cases:
        if accuracy_shift and c["impl"] == "adjoint_heun":
            c["spread"].pop("test_accuracy")  # the shifted accuracy is one seed's: no spread, so never judged
    # backprop and checkpoint in two processes a point: ``compare`` judges their timings between runs
    cases = processes([c for c in cases if c["impl"] in TIMED]) + [c for c in cases if c["impl"] not in TIMED]
    cases.append(case(INJECTION, 8, submission=INJECTION, url="javascript:alert(2)", accuracy=0.99))
    cases.append(
        case(
            "nan_method",
            8,
            submission="team-x",
            status="failed",
            accuracy=0.999,
            error=f"non-finite metric(s): test_accuracy {INJECTION}",
        )
    )
    cases.append(case("sloppy", 8, submission="team-y", status="invalid", accuracy=0.999, error="did not converge"))
    return cases


def write_results(folder: Path) -> dict[str, Path]:
    """Two comparable smoke runs, a small-scale run on a GPU, a run of an unknown task, two bad files, and a
    pytest-benchmark JSON beside the results folder."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = {
        "old": run_doc("20250101T000000Z-aaaa", "2025-01-01T00:00:00+00:00", smoke_cases(), checks=RUN_CHECKS),
        # heun's accuracy up by 0.1 (no spread: one seed), backprop 3x slower (worse), the rest unchanged (within
        # noise where timed, else no spread)
        "new": run_doc("20250102T000000Z-aaaa", "2025-01-02T00:00:00+00:00", smoke_cases(0.1, 3.0), checks=RUN_CHECKS),
        "gpu": run_doc(
            "20250103T000000Z-bbbb",
            "2025-01-03T00:00:00+00:00",
            [case(m, 8, scale="small", dataset="cifar10", accuracy=0.9 - 0.01 * i) for i, m in enumerate(METHODS)],
            env=GPU_ENV,
        ),
        "unknown": run_doc(
            "20241231T000000Z-cccc",
            "2024-12-31T00:00:00+00:00",
            [case("solver", 1, task="not_a_task_here", accuracy=0.5)],
        ),
    }
    paths = {}
    for name, doc in docs.items():
        paths[name] = folder / f"{doc['run_id']}.json"
        paths[name].write_text(json.dumps(doc))
    paths["bench"] = folder.parent / "pytest-benchmark.json"
    stats = {
        "min": 0.01,
        "max": 0.03,
        "mean": 0.02,
        "stddev": 0.005,
        "rounds": 3,
        "median": 0.02,
        "iqr": 0.004,
    }
    paths["bench"].write_text(
        json.dumps(
            {
                "machine_info": {"python_version": "3.11.7", "cpu": {"brand_raw": "Test CPU", "count": 2}},
                "commit_info": {"id": "abc", "dirty": True},
                "datetime": "2025-01-01T00:00:00",
                "version": "5.1.0",
                "benchmarks": [
                    {
                        "group": "adjoint_resnet",
                        "name": f"test_hot_step[{m}]",
                        "params": {"impl": m},
                        "stats": {**stats, "median": 0.02 * (i + 1)},
                    }
                    for i, m in enumerate([*METHODS, INJECTION])
                ],
            }
        )
    )
    paths["corrupt"] = folder / "corrupt.json"
    paths["corrupt"].write_text('{"schema": "ctbench.run/1", "run_id": ')
    paths["newer"] = folder / "newer.json"
    paths["newer"].write_text(json.dumps({**docs["old"], "schema": "ctbench.run/99"}))
    return paths


@functools.cache
def fixture_site(root: Path) -> tuple[Path, Built, dict[str, Path]]:
    """The report over ``write_results``, built once per session (the browser tests drive the same pages)."""
    paths = write_results(root / "results")
    built = build_report([root / "results"], root / "site", pytest_benchmark=paths["bench"])
    return root / "site", built, paths


TASK = "adjoint_resnet"
RLO = "\u202e"


def good_doc(run_id: str = "20250101T000000Z-good", created: str = "2025-01-01T00:00:00+00:00", **over: Any) -> dict:
    cases = [case(impl, 8, accuracy=0.70 + 0.04 * i, **over) for i, impl in enumerate(METHODS)]
    return run_doc(run_id, created, cases)


def write(folder: Path, name: str, doc: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def interruptible() -> None:
    """``preexec_fn`` of a process a test interrupts with SIGINT: Ctrl-C's default action, whatever the test command
    inherited (a shell without job control starts its background commands with SIGINT ignored, and a Python started
    so never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) if the block takes longer than ``seconds``."""

    def expire(*_):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
