"""Task discovery: every package ``suites.<name>`` that exposes ``TASK`` (a ``ctbench.Task`` instance).

Adding a task is adding ``suites/<name>/`` and ``reference_impls/<name>/``; nothing here changes. A case's
subprocess imports only its own task, and a task that fails to import is reported without breaking the others.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

import suites
from ctbench.task import Task


class UsageError(ValueError):
    """Bad input from the command line: unknown task, scale, parameter. Exit code 2."""


def task_names() -> list[str]:
    """Names of the task packages in ``suites/``, found without importing them."""
    return sorted(m.name for m in pkgutil.iter_modules(suites.__path__) if m.ispkg)


@cache
def _load(name: str) -> Task | str:
    """The task, or the reason it cannot be loaded."""
    try:
        task = getattr(importlib.import_module(f"suites.{name}"), "TASK", None)
    except Exception as exc:
        return f"suites.{name} failed to import: {type(exc).__name__}: {exc}"
    if not isinstance(task, Task):
        return f"suites.{name} has no `TASK` (a ctbench.Task instance)"
    return task


def get_task(name: str) -> Task:
    if name not in task_names():
        raise UsageError(f"unknown task {name!r}; valid tasks: {', '.join(task_names()) or 'none'}")
    loaded = _load(name)
    if isinstance(loaded, str):
        raise UsageError(loaded)
    return loaded


def tasks() -> dict[str, Task]:
    """Every task that loads, by name."""
    return {n: t for n in task_names() if isinstance(t := _load(n), Task)}


def broken_tasks() -> dict[str, str]:
    """Task packages that do not load, with the reason."""
    return {n: r for n in task_names() if isinstance(r := _load(n), str)}


def description(name: str) -> dict[str, Any] | None:
    """The installed task's description (``ctbench.describe``), or None when it is not installed or broken."""
    from ctbench.describe import describe

    loaded = _load(name) if name in task_names() else None
    return describe(loaded) if isinstance(loaded, Task) else None
