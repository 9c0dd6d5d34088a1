"""Executors: where and in what order a run's cases execute. The runner hands an executor the cases still to run;
the executor yields each case with its record as it finishes (or with None when the run's time budget was spent
before it could start), and the runner journals them, so Ctrl-C and resume behave the same whatever executes.

``LocalExecutor`` runs one case at a time on this machine, each in a fresh process forked from a warm template
(``ctbench.run.template``) or started cold. ``RayExecutor`` (``ctbench.run.ray_executor``) spreads them over a Ray
cluster.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ctbench.run.cases import Case
from ctbench.run.launch import Limits, launch
from ctbench.run.records import record_of
from ctbench.run.settings import RunSettings
from ctbench.run.template import Template
from ctbench.run.worker import host_facts

Pending = Sequence[tuple[Case, float]]  # a case and its timeout in seconds
Finished = Iterator[tuple[Case, dict[str, Any] | None]]


class Templates:
    """The warm template of a local run, started on first use (with the run's tasks) and again if it dies; None
    when the run is cold, and from the first time a template fails to start (the run goes on cold)."""

    def __init__(self, warm: bool):
        self.warm, self.failed = warm, False
        self.current: Template | None = None

    def get(self, task_names: list[str]) -> Template | None:
        if not self.warm or self.failed:
            return None
        if self.current is None or not self.current.alive:
            try:
                self.current = Template(task_names)
            except (OSError, RuntimeError):
                self.failed, self.current = True, None
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


def run_one(case: Case, settings: RunSettings, timeout_s: float, template: Template | None = None) -> dict[str, Any]:
    """Run ``case`` in a contained process on this machine (forked from ``template`` when given and the case is not
    sandboxed); return the record it sent, or a stop record saying why it sent none."""
    sandbox, limit = settings.sandboxed(case), settings.memory_limit()
    outcome = launch(
        case.to_json(),
        settings.worker_args(),
        Limits(timeout_s, limit),
        sandbox=sandbox,
        hidden=[settings.out_dir],
        device=settings.device,
        template=template,
    )
    return record_of(outcome, case, settings, timeout_s, sandbox, here(), limit)


@functools.cache
def here() -> dict[str, Any]:
    """This machine's host name and hardware label, as the runner (not a case) sees them."""
    return host_facts()


class LocalExecutor:
    """One case at a time on this machine, in the order given."""

    name = "local"

    def __init__(self, settings: RunSettings, say: Callable[[str], None] = print):
        self.settings, self.say = settings, say
        self.templates = Templates(settings.warm)

    def run(self, pending: Pending, may_start: Callable[[], bool], label: Callable[[Case], str]) -> Finished:
        task_names = list(dict.fromkeys(case.task for case, _ in pending))
        try:
            for case, timeout in pending:
                if not may_start():
                    yield case, None
                    continue
                self.say(f"{label(case)} ...")
                template = None if self.settings.sandboxed(case) else self.templates.get(task_names)
                yield case, run_one(case, self.settings, timeout, template)
        finally:
            self.templates.close()

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name}
