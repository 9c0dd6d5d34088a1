"""Task discovery: every package ``suites.<name>`` that exposes a ``task`` (a ``ctbench.Task`` instance).

Adding a task is adding ``suites/<name>/`` and ``reference_impls/<name>/``; nothing here changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

import suites
from ctbench.task import Task


class UsageError(ValueError):
    """Bad input from the command line: unknown task, scale, parameter. Exit code 2."""


@cache
def tasks() -> dict[str, Task]:
    found: dict[str, Task] = {}
    for module in pkgutil.iter_modules(suites.__path__):
        if not module.ispkg:
            continue
        task = getattr(importlib.import_module(f"suites.{module.name}"), "task", None)
        if isinstance(task, Task):
            found[task.name] = task
    return dict(sorted(found.items()))


def get_task(name: str) -> Task:
    try:
        return tasks()[name]
    except KeyError:
        raise UsageError(f"unknown task {name!r}; valid tasks: {', '.join(tasks()) or 'none'}") from None
