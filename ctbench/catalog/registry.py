"""Task discovery, by name, from two sources:

- the ``ctbench.tasks`` entry-point group: a package installed with ``pip`` declares
  ``[project.entry-points."ctbench.tasks"] mytask = "mypackage.task:TASK"`` (an object, a ``ctbench.Task``
  instance, or a module that exposes ``TASK``); its references are in the task's ``reference_package``.
  The built-in tasks are registered this way in ``pyproject.toml``;
- task folders: every package ``suites.<name>`` that exposes ``TASK``, in this repository's ``suites/`` or a root
  named by ``CTBENCH_PATH`` (``ctbench.catalog.roots``), with its references in ``reference_impls/<name>/``.

An entry point wins over a folder of the same name. Adding a task edits nothing here. A case's subprocess loads
only its own task, and a task that fails to load is reported without breaking the others.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
from functools import cache
from typing import Any

from ctbench.api.task import Task

GROUP = "ctbench.tasks"  # the entry-point group tasks are registered in
FOLDERS = "suites"  # the package whose folders (this repository's and CTBENCH_PATH's) hold task packages


class UsageError(ValueError):
    """Bad input from the command line: unknown task, scale, parameter. Exit code 2."""


@cache
def _sources() -> dict[str, str]:
    """Task name -> where it is loaded from (``module:attribute`` or a module), found without loading any task."""
    found: dict[str, str] = {}
    spec = importlib.util.find_spec(FOLDERS)
    if spec is not None and spec.submodule_search_locations is not None:
        folders = importlib.import_module(FOLDERS).__path__  # with CTBENCH_PATH's roots added
        found |= {m.name: f"{FOLDERS}.{m.name}" for m in pkgutil.iter_modules(folders) if m.ispkg}
    found |= {ep.name: ep.value for ep in importlib.metadata.entry_points(group=GROUP)}
    return found


def task_names() -> list[str]:
    """Names of every registered task, found without loading them."""
    return sorted(_sources())


@cache
def _load(name: str) -> Task | str:
    """The task, or the reason it cannot be loaded."""
    source = _sources()[name]
    module_name, _, attribute = source.partition(":")
    try:
        loaded: Any = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else ["TASK"]:
            loaded = getattr(loaded, part, None)
    except Exception as exc:
        return f"{source} failed to import: {type(exc).__name__}: {exc}"
    if not isinstance(loaded, Task):
        return f"{source} is not a ctbench.Task instance" if attribute else f"{source} has no `TASK` (a ctbench.Task)"
    if getattr(loaded, "name", None) != name:
        return f"{source} is registered as {name!r} but its name is {getattr(loaded, 'name', None)!r}"
    return loaded


def refresh() -> None:
    """Forget what was found and loaded (after installing a task, or changing ``CTBENCH_PATH`` in this process)."""
    _sources.cache_clear()
    _load.cache_clear()


def get_task(name: str) -> Task:
    if name not in _sources():
        raise UsageError(f"unknown task {name!r}; valid tasks: {', '.join(task_names()) or 'none'}")
    loaded = _load(name)
    if isinstance(loaded, str):
        raise UsageError(loaded)
    return loaded


def tasks() -> dict[str, Task]:
    """Every task that loads, by name."""
    return {n: t for n in task_names() if isinstance(t := _load(n), Task)}


def broken_tasks() -> dict[str, str]:
    """Registered tasks that do not load, with the reason."""
    return {n: r for n in task_names() if isinstance(r := _load(n), str)}


def description(name: str) -> dict[str, Any] | None:
    """The installed task's description (``ctbench.catalog.describe``), or None when it is not installed or broken."""
    from ctbench.catalog.describe import describe

    loaded = _load(name) if name in _sources() else None
    return describe(loaded) if isinstance(loaded, Task) else None
