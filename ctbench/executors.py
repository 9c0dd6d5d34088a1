"""Executors: where and in what order a run's cases execute. The runner hands an executor the cases still to run;
the executor yields each case with its record as it finishes (or with None when the run's time budget was spent
before it could start), and the runner journals them, so Ctrl-C and resume behave the same whatever executes.

``LocalExecutor`` runs one case at a time on this machine, each in a fresh process forked from a warm template
(``ctbench.template``) or started cold. ``RayExecutor`` (``ctbench.ray_executor``) spreads them over a Ray cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ctbench.cases import Case
from ctbench.launch import Limits, launch
from ctbench.settings import RunSettings, record_of
from ctbench.template import Template

Pending = Sequence[tuple[Case, float]]  # a case and its timeout in seconds
Finished = Iterator[tuple[Case, dict[str, Any] | None]]


class Templates:
    """The warm template of a local run, started on first use and again if it dies; None when cold."""

    def __init__(self, warm: bool):
        self.warm, self.current = warm, None

    def get(self) -> Template | None:
        if self.warm and (self.current is None or not self.current.alive):
            self.current = Template()
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


def run_one(case: Case, settings: RunSettings, timeout_s: float, template: Template | None = None) -> dict[str, Any]:
    """Run ``case`` in a contained process on this machine (forked from ``template`` when given and the case is not
    sandboxed); return the record it sent, or a stop record saying why it sent none."""
    sandbox = settings.sandboxed(case)
    outcome = launch(
        case.to_json(),
        settings.worker_args(),
        Limits(timeout_s, settings.memory_limit()),
        sandbox=sandbox,
        hidden=[settings.out_dir],
        device=settings.device,
        template=template,
    )
    return record_of(outcome, case, settings, timeout_s, sandbox)


class LocalExecutor:
    """One case at a time on this machine, in the order given."""

    name = "local"

    def __init__(self, settings: RunSettings, say: Callable[[str], None] = print):
        self.settings, self.say = settings, say
        self.templates = Templates(settings.warm)

    def run(self, pending: Pending, may_start: Callable[[], bool], label: Callable[[Case], str]) -> Finished:
        try:
            for case, timeout in pending:
                if not may_start():
                    yield case, None
                    continue
                self.say(f"{label(case)} ...")
                yield case, run_one(case, self.settings, timeout, self.templates.get())
        finally:
            self.templates.close()

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name}
