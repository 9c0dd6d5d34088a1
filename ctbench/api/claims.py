"""Claims: what each of a task's checks tests, where its paper says so, and the control that must fail it.

A check that cannot fail is a defect. Every check a task records (per case in ``CaseResult.checks``, or across a
run's cases in ``Task.run_checks``) is declared once as a ``Claim`` in ``Task.claims``, with a *failing control*: a
function of the task that declares it, which runs the task's own check code on a deliberately broken input (a broken
implementation, or a recorded set of cases with the defect the check exists to catch) and returns the checks it
produced. The test suite runs every control and asserts that each of its checks fails; the engine records a check no
claim declares as failed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ctbench.api.check import Check, RunCheck

Over = Literal["case", "run"]
UNDECLARED = "undeclared check: its task declares no claim (and no failing control) by this name"


@dataclass(frozen=True)
class Claim:
    """One check of a task, by the ``name`` its records carry: the paper's ``statement`` it tests, ``source``
    (paper and section), whether it is decided per case or across a run's cases (``over``), and its failing
    ``control``, whose docstring says what it breaks."""

    name: str
    statement: str
    source: str
    control: Callable[[Any], Sequence[Check]]  # called with the task that declares the claim
    over: Over = "run"

    def control_text(self) -> str:
        """``module.function: what it breaks`` (the control's docstring, first paragraph, on one line)."""
        doc = inspect.getdoc(self.control) or ""
        first = " ".join(doc.split("\n\n")[0].split())
        where = f"{self.control.__module__}.{self.control.__qualname__}"
        return f"{where}: {first}" if first else where

    def describe(self, task: str) -> dict[str, str]:
        """The claim as JSON: ``task``, ``name``, ``over``, ``claim``, ``source``, ``control``."""
        return {
            "task": task,
            "name": self.name,
            "over": self.over,
            "claim": self.statement,
            "source": self.source,
            "control": self.control_text(),
        }


def named(run_checks: Iterable[RunCheck], name: str) -> list[Check]:
    """The checks called ``name`` among a task's run checks (what a run-check control returns)."""
    return [rc.check for rc in run_checks if rc.name == name]


def control_outcomes(claim: Claim, task: Any) -> list[str]:
    """The outcomes of the checks ``claim``'s control produced when given ``task``, the task that declares it
    (``fail`` each, for a control that works)."""
    return [check.outcome for check in claim.control(task)]


def undeclared(check: Check) -> Check:
    """``check`` recorded as failed because no claim declares it (its value and description kept)."""
    return Check(check.value, check.threshold, False, f"{UNDECLARED}; {check.description}", check.interval)


def declared_only(names: Iterable[str], checks: dict[str, Check]) -> dict[str, Check]:
    """``checks`` by name, each one no claim in ``names`` declares recorded as failed (``undeclared``)."""
    known = set(names)
    return {name: check if name in known else undeclared(check) for name, check in checks.items()}
