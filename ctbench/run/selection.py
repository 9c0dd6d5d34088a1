"""What a run runs, decided before anything runs: the device and scale, the implementations (references by name,
submissions resolved in their own sandboxed process: the runner never imports a submission's code), and the
cases (task x implementation x scale x parameters x seed). Every bad name is a ``UsageError`` (exit 2)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ctbench.api.implementation import ImplRef, task_references
from ctbench.catalog.registry import UsageError, get_task
from ctbench.catalog.resolver import resolve_isolated
from ctbench.isolation.sandbox import bwrap
from ctbench.run.cases import Case, SkippedPoint, parse_param, plan, unique
from ctbench.run.executors import LocalExecutor
from ctbench.run.settings import RunSettings
from ctbench.store.schema import REFERENCE

CACHE = Path(os.environ.get("CTBENCH_CACHE", Path.home() / ".cache" / "ctbench"))  # pretrained weights, data, h*


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def scale_for(device: str, scale: str) -> str:
    """``auto``: smoke on a CPU, small on a GPU."""
    if scale != "auto":
        return scale
    return "small" if device.startswith("cuda") else "smoke"


def check_names(task_name: str, submissions: Sequence[ImplRef], references: Sequence[ImplRef]) -> None:
    """A submission may not pose as a reference: not named ``reference``, nor after a reference of its task."""
    taken = {REFERENCE} | {r.name for r in references}
    for sub in submissions:
        clash = {sub.name, sub.submission} & taken
        if clash:
            raise UsageError(
                f"{sub.spec}: the name {sorted(clash)[0]!r} is reserved for {task_name}'s reference implementations "
                f"({', '.join(sorted(taken))}); give the submission's manifest (or folder) another name"
            )


def implementations(
    task_name: str,
    selectors: Sequence[str],
    skip_references: bool,
    sandbox: str = "auto",
    data_root: Path | None = None,
) -> list[ImplRef]:
    """The references the selectors name (all of them when they name none) and the submissions they name, each
    submission resolved in its own process, sandboxed unless ``sandbox`` is ``off`` (or no bubblewrap with
    ``auto``)."""
    task = get_task(task_name)
    refs = task_references(task)
    by_name = {r.name: r for r in refs}
    names = [s for s in selectors if s in by_name]
    specs = [s for s in selectors if s not in by_name]
    for spec in specs:
        if ":" not in spec and not spec.endswith(".py") and not Path(spec).is_dir() and "." not in spec:
            raise UsageError(f"unknown implementation {spec!r} for {task.name}; references: {', '.join(by_name)}")
    isolated = sandbox == "on" or (sandbox == "auto" and bwrap() is not None)
    shown = [CACHE, *([data_root] if data_root else [])]
    submissions = [ref for spec in specs for ref in resolve_isolated(spec, task.name, sandbox=isolated, expose=shown)]
    check_names(task.name, submissions, refs)
    chosen = [by_name[n] for n in names]
    if not names and not skip_references:
        chosen = refs
    return chosen + submissions


def cases(
    task_names: Sequence[str],
    scale: str,
    selectors: Sequence[str] = (),
    params: Sequence[str] = (),
    seeds: Sequence[int] = (),
    skip_references: bool = False,
    sandbox: str = "auto",
    data_root: Path | None = None,
    skipped: list[SkippedPoint] | None = None,
) -> list[Case]:
    """The run's cases; ``params`` are ``NAME=V1,V2`` overrides; the grid points the tasks skip go to ``skipped``.
    With several tasks, an override applies to the tasks that have that parameter."""
    overrides: Mapping[str, Any] = dict(parse_param(p) for p in params)
    found: list[Case] = []
    for name in dict.fromkeys(task_names):
        task = get_task(name)
        grid = task.scales[scale].grid if scale in task.scales else {}
        task_overrides = {k: v for k, v in overrides.items() if len(task_names) == 1 or k in grid}
        impls = implementations(name, selectors, skip_references, sandbox, data_root)
        planned, skips = plan(task, impls, scale, task_overrides, list(seeds) or None)
        found += planned
        if skipped is not None:
            skipped += skips
    if not found:
        raise UsageError("no case to run (every combination was skipped)")
    return unique(found)


def executor(kind: str, settings: RunSettings, say: Callable[[str], None], ray_address: str | None = None,
             cases_per_node: int = 1) -> Any:  # fmt: skip
    """The executor named by ``kind`` (local or ray); a Ray address that does not answer is a usage error before
    any case runs."""
    if kind == "local":
        if ray_address:
            raise UsageError("--ray-address needs --executor ray")
        return LocalExecutor(settings, say)
    if not ray_address:
        raise UsageError("--executor ray needs --ray-address HOST:PORT (the head node: `ray start --head`)")
    try:
        from ctbench.run.ray_executor import RayExecutor
    except ImportError as exc:
        raise UsageError(f"--executor ray needs Ray: pip install 'ctbench[ray]' ({exc})") from None
    return RayExecutor(settings, ray_address, cases_per_node, say)
