"""What a run runs, decided before anything runs: the device and scale, the implementations (references by name,
submissions resolved in their own sandboxed process: the runner never imports a submission's code), and the
cases (task x implementation x scale x parameters x seed). Every bad name is a ``UsageError`` (exit 2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ctbench.api.cache import CACHE
from ctbench.api.implementation import ImplRef, task_references
from ctbench.catalog.registry import UsageError, get_task, tasks
from ctbench.catalog.resolver import resolve_isolated, tasks_of_isolated
from ctbench.isolation.sandbox import bwrap
from ctbench.run.cases import Case, SkippedPoint, in_rounds, parse_param, plan, unique
from ctbench.run.executors import LocalExecutor
from ctbench.run.settings import RunSettings
from ctbench.store.schema import REFERENCE


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


def is_spec(selector: str) -> bool:
    """Whether an ``--impl`` selector names a submission (a file, folder, module or ``:Class``), not a reference."""
    return ":" in selector or selector.endswith(".py") or Path(selector).is_dir() or "." in selector


def _isolation(sandbox: str, data_root: Path | None) -> tuple[bool, list[Path]]:
    """Whether a submission is resolved sandboxed, and the folders its process may read."""
    return sandbox == "on" or (sandbox == "auto" and bwrap() is not None), [CACHE, *([data_root] if data_root else [])]


def tasks_for(selectors: Sequence[str], sandbox: str = "auto", data_root: Path | None = None) -> list[str]:
    """The one task that ``--impl`` selectors given without ``--task`` are about: a reference name's task, or the
    task whose interface a submission's classes implement (subclass, or provide its abstract methods: asked of
    the submission's own process, as ``implementations`` resolves it). A ``UsageError`` naming the selector and
    asking for ``--task`` where no task or several match, or where the selectors name different tasks."""
    names = list(tasks())
    references = {name: {r.name for r in task_references(get_task(name))} for name in names}
    isolated, shown = _isolation(sandbox, data_root)
    found: dict[str, str] = {}
    for selector in dict.fromkeys(selectors):
        if not is_spec(selector):
            matches = [name for name in names if selector in references[name]]
            what = "no task has a reference of that name" if not matches else "a reference of several tasks"
        else:
            matches = tasks_of_isolated(selector, names, sandbox=isolated, expose=shown)
            what = (
                f"it implements none of the tasks' interfaces (it neither subclasses one nor provides its abstract "
                f"methods; tasks: {', '.join(names)})"
                if not matches
                else "it implements the interfaces of several tasks"
            )
        if len(matches) != 1:
            listed = f" ({', '.join(matches)})" if matches else ""
            raise UsageError(f"--impl {selector}: cannot tell its task: {what}{listed}; give --task")
        found[selector] = matches[0]
    chosen = sorted(set(found.values()))
    if len(chosen) > 1:
        pairs = ", ".join(f"{sel} -> {task}" for sel, task in found.items())
        raise UsageError(f"--impl names implementations of several tasks ({pairs}); give --task")
    return chosen


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
        if not is_spec(spec):
            raise UsageError(f"unknown implementation {spec!r} for {task.name}; references: {', '.join(by_name)}")
    isolated, shown = _isolation(sandbox, data_root)
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
    return in_rounds(unique(found))


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
