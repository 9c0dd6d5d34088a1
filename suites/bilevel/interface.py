"""What a bilevel solver provides: benchopt-like ``init`` and ``step``, and its current outer variable.

The protocol calls ``init(problem, batch_size, seed)`` once, then ``step()`` repeatedly (one iteration of the
method; what an iteration is, the method decides), reading ``outer_variable()`` between steps to evaluate
h(x) - h* and ||grad h(x)||^2 at the exact inner solution. All data access goes through the problem's oracles
(``suites.bilevel.problem.BilevelProblem``), which count the samples they process.

Hyperparameters: a class's ``defaults`` maps a problem name ("quadratic", "hyperparam", "datacleaning", or a
variant such as "hyperparam-covtype") to its tuned values; a variant without an entry takes its kind's. Keyword
arguments of the constructor override them (``SOBA(step_size=0.5)``).

``directions`` is optional: a stochastic method that exposes the estimates it would use at its current state
for given samples can be checked for unbiasedness (their mean over all samples equals their full-batch value).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ctbench import Manifest
from suites.bilevel.problem import BilevelProblem


@dataclass(frozen=True)
class Directions:
    """Estimates of D_z (inner), D_v (linear system) and D_x (outer, the hypergradient direction)."""

    z: Tensor
    v: Tensor
    x: Tensor


class BilevelSolver(ABC):
    """A method for min_x F(z*(x), x) with z*(x) = argmin_z G(z, x), driven by the problem's oracles."""

    manifest: ClassVar[Manifest]
    defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __init__(self, **overrides: Any):
        self.overrides = overrides

    def hyperparameters(self, problem: BilevelProblem) -> dict[str, Any]:
        """The tuned defaults for this problem (else for its kind), updated with the constructor's overrides."""
        return {**self.defaults.get(problem.name, self.defaults.get(problem.kind, {})), **self.overrides}

    @abstractmethod
    def init(self, problem: BilevelProblem, batch_size: int, seed: int) -> None:
        """Set up the iterates (from ``problem.z0``, ``problem.x0``) and any memory."""

    @abstractmethod
    def step(self) -> None:
        """One iteration."""

    @abstractmethod
    def outer_variable(self) -> Tensor:
        """The current x."""

    def inner_variable(self) -> Tensor | None:
        """The current z, where the method keeps one (checked for divergence)."""
        return None

    def directions(self, inner_idx: Tensor, outer_idx: Tensor) -> Directions:
        """The estimates this method would form at its current state from these samples, without moving."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its stochastic directions")
