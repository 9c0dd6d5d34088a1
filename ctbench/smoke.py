"""In-process access to a task's protocol at smoke scale, for tests, pytest-benchmark and asv.

These call the same ``Task.run`` and ``Task.hot_step`` the runner calls in its subprocesses; nothing here
re-implements a protocol.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ctbench.implementation import load_class, reference_impls
from ctbench.registry import get_task
from ctbench.task import CaseResult, Context
from ctbench.worker import seed_everything

CACHE = Path(os.environ.get("CTBENCH_CACHE", Path.home() / ".cache" / "ctbench"))


def context(seed: int = 0, data_root: Path | None = None) -> Context:
    return Context(torch.device("cpu"), data_root or CACHE / "data", CACHE, seed)


def reference(task_name: str, impl_name: str) -> Any:
    """A fresh instance of a reference implementation, by its manifest name."""
    task = get_task(task_name)
    refs = {r.name: r for r in reference_impls(task.name, task.interface)}
    return load_class(refs[impl_name].spec)()


def default_params(task_name: str, scale: str = "smoke") -> dict[str, Any]:
    """The first value of every grid axis of ``scale``."""
    return {k: v[0] for k, v in get_task(task_name).scales[scale].grid.items()}


def run_case(task_name: str, impl: Any, params: Mapping[str, Any] | None = None, seed: int = 0, **ctx) -> CaseResult:
    """``Task.run`` at smoke scale on the CPU; ``impl`` is an instance or a reference name."""
    task = get_task(task_name)
    impl = reference(task_name, impl) if isinstance(impl, str) else impl
    seed_everything(seed)
    full = {**default_params(task_name), **(params or {})}
    return task.run(impl, task.scales["smoke"], full, context(seed, **ctx))


def hot_step(task_name: str, impl: Any, params: Mapping[str, Any] | None = None, seed: int = 0) -> Callable[[], Any]:
    """``Task.hot_step`` at smoke scale on the CPU."""
    task = get_task(task_name)
    impl = reference(task_name, impl) if isinstance(impl, str) else impl
    seed_everything(seed)
    full = {**default_params(task_name), **(params or {})}
    return task.hot_step(impl, task.scales["smoke"], full, context(seed))
