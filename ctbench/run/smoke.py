"""In-process access to a task's cases at smoke scale, for tests, pytest-benchmark and asv.

These go through the same ``Task.prepare`` and the same engine (``ctbench.run.protocol``) as the runner's
subprocesses; nothing here re-implements a protocol. ``step`` is the prepared step the engine measures, which
pytest-benchmark and asv time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ctbench.api.cache import CACHE
from ctbench.api.claims import declared_only
from ctbench.api.implementation import ImplRef, load_class, resolve, task_references
from ctbench.api.measure import Meter
from ctbench.api.task import CaseResult, Context, Prepared
from ctbench.catalog.registry import get_task, tasks
from ctbench.run import process
from ctbench.run.protocol import run_case as _run_case

DEVICE = torch.device("cpu")


def context(task_name: str, seed: int = 0, data_root: Path | None = None) -> Context:
    meter = Meter(DEVICE, get_task(task_name).phases)
    return Context(DEVICE, data_root or CACHE / "data", CACHE, seed, meter)


def reference(task_name: str, impl_name: str) -> Any:
    """A fresh instance of a reference implementation, by its manifest name."""
    task = get_task(task_name)
    refs = {r.name: r for r in task_references(task)}
    return load_class(refs[impl_name].spec)()


def default_params(task_name: str, scale: str = "smoke") -> dict[str, Any]:
    """The first value of every grid axis of ``scale``."""
    return {k: v[0] for k, v in get_task(task_name).scales[scale].grid.items()}


def state(task_name: str) -> process.State:
    """The process state a smoke case runs under: the scale's threads, else one (as ``ctbench run`` on a CPU)."""
    return process.State(threads=get_task(task_name).scales["smoke"].threads or 1)


@contextmanager
def case_state(task_name: str) -> Iterator[process.State]:
    """The smoke case's process state for the block (for timing a prepared step in-process)."""
    with process.applied(state(task_name)) as applied:
        yield applied


def _case(task_name: str, impl: Any, params: Mapping[str, Any] | None, seed: int):
    task = get_task(task_name)
    impl = reference(task_name, impl) if isinstance(impl, str) else impl
    process.seed_everything(seed)
    return task, impl, task.scales["smoke"], {**default_params(task_name), **(params or {})}


def run_case(
    task_name: str, impl: Any, params: Mapping[str, Any] | None = None, seed: int = 0, **ctx: Any
) -> CaseResult:
    """A whole smoke case on the CPU, as the worker runs it; ``impl`` is an instance or a reference name."""
    with case_state(task_name) as applied:
        task, impl, scale, full = _case(task_name, impl, params, seed)
        result = _run_case(task, impl, scale, full, context(task_name, seed, **ctx), applied)
    result.checks = declared_only((claim.name for claim in task.claims), result.checks)
    return result


def prepare(task_name: str, impl: Any, params: Mapping[str, Any] | None = None, seed: int = 0) -> Prepared:
    """The smoke case prepared by its task, not yet measured."""
    task, impl, scale, full = _case(task_name, impl, params, seed)
    return task.prepare(impl, scale, full, context(task_name, seed))


def step(task_name: str, impl: Any, params: Mapping[str, Any] | None = None, seed: int = 0) -> Callable[[], Any]:
    """The prepared step the engine measures (what benchmarks time)."""
    prepared = prepare(task_name, impl, params, seed)
    if prepared.step is None:
        raise ValueError(f"{task_name}: this implementation has no step to time ({prepared.no_step})")
    return prepared.step


SUBMISSION_VARIABLE = "CTBENCH_SUBMISSION"  # "TASK=SPEC[;TASK=SPEC...]": submissions the benchmarks time too
TASKS_VARIABLE = "CTBENCH_TASKS"  # "TASK[,TASK...]": the tasks the benchmarks cover (default: every task)


@dataclass(frozen=True)
class BenchCase:
    """One prepared step the generic benchmarks time: a task, an implementation and a smoke grid point.
    ``spec`` loads a submission (None for a reference, loaded by its name)."""

    task: str
    impl: str
    params: Mapping[str, Any]
    spec: str | None = None

    @property
    def id(self) -> str:
        point = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.task}:{self.impl}[{point}]"

    def instance(self) -> Any:
        return load_class(self.spec)() if self.spec else reference(self.task, self.impl)


def _submissions() -> list[tuple[str, ImplRef]]:
    """(task, implementation) for every class named in ``CTBENCH_SUBMISSION``."""
    pairs = []
    for item in filter(None, os.environ.get(SUBMISSION_VARIABLE, "").split(";")):
        task, sep, spec = item.partition("=")
        if not sep:
            raise ValueError(f"{SUBMISSION_VARIABLE}={item!r}: expected TASK=SPEC (e.g. adjoint_resnet=my.py:Mine)")
        task = task.strip()
        pairs += [(task, ref) for ref in resolve(spec.strip(), get_task(task).interface, submission="benchmark")]
    return pairs


def bench_cases() -> list[BenchCase]:
    """Every task's references at its benchmark points (``Task.benchmark_points``), then the submissions named
    in ``CTBENCH_SUBMISSION``, leaving out the points a task skips for an implementation; ``CTBENCH_TASKS``
    narrows them to some tasks."""
    chosen = [t.strip() for t in os.environ.get(TASKS_VARIABLE, "").split(",") if t.strip()]
    selected = {name: task for name, task in tasks().items() if not chosen or name in chosen}
    pairs = [(name, ref) for name, task in selected.items() for ref in task_references(task)]
    cases = []
    for task_name, ref in pairs + [(t, r) for t, r in _submissions() if not chosen or t in chosen]:
        task = get_task(task_name)
        spec = None if ref.submission == "reference" else ref.spec
        for point in task.benchmark_points():
            if task.skip(ref.name, task.scales["smoke"], point) is None:
                cases.append(BenchCase(task_name, ref.name, point, spec))
    return cases
