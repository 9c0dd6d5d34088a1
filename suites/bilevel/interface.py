"""What a bilevel solver provides: benchopt-like ``init`` and ``step``, and its current outer variable.

The protocol calls ``init(problem, batch_size, seed)`` once, then ``step()`` repeatedly (one iteration of the
method; what an iteration is, the method decides), reading ``outer_variable()`` between steps to evaluate
h(x) - h* and ||grad h(x)||^2 at the exact inner solution. All data access goes through the problem's oracles
(``suites.bilevel.problem.BilevelProblem``), which count the samples they process.

Hyperparameters: a class's ``defaults`` maps a problem name ("quadratic", "hyperparam", "datacleaning", or a
variant such as "hyperparam-covtype") to its tuned values; a variant without an entry takes its kind's. Keyword
arguments of the constructor override them (``SOBA(step_size=0.5)``) and are never tuned.

Tuning (``suites.bilevel.tune``): before its case, every solver's values are searched on held-apart seeds over a
grid of at most the scale's budget of points (9 at small and full scale), the same budget for every solver, and
the case runs at the best. The grid is, unless the class declares its own in ``tuning_grid`` ({problem name, kind
or "default": {hyperparameter: [values]}}, e.g. ``{"hyperparam": {"step_size": [0.1, 1.0]}}``; ``{"default": {}}``
for no tuning), the scale's: multiples of the class's own defaults for ``step_size`` and ``outer_ratio``, or the
grid a problem names. The searched values reach the solver through ``overrides``, which ``hyperparameters``
merges: a solver that reads its values with ``hyperparameters(problem)`` in ``init`` is tuned.

``directions`` is optional: a stochastic method that exposes the estimates it would use at its current state
for given samples is checked for unbiasedness on every case (``directions_unbiased``: their mean over uniformly
drawn minibatches equals their full-batch value, ``suites.bilevel.checks.directions_check``), and what it returns
for its shapes and dtype: D_z and D_v shaped like ``problem.z0``, D_x like ``problem.x0``.
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
    """A method for min_x F(z*(x), x) with z*(x) = argmin_z G(z, x), driven by the problem's oracles.

    What ``init`` receives: ``problem``, a ``suites.bilevel.problem.BilevelProblem``, and ``batch_size`` and
    ``seed``, the case's minibatch size and seed. The problem holds ``name`` and ``kind`` (what ``defaults`` and
    ``hyperparameters`` are keyed by), the starting point ``z0`` (inner) and ``x0`` (outer), ``n_inner`` and
    ``n_outer`` samples, ``device`` and ``dtype`` (work in them), and its oracles, each a mean over a batch of
    sample indices (``idx``; None for all samples), each counting the samples it processes:

    - ``inner_grad(z, x, idx)``: d_z G; ``inner_hvp(z, x, v, idx)``: d2_zz G v; ``inner_cross(z, x, v, idx)``:
      d2_xz G v, in x's space; ``inner_oracles(z, x, v, idx)``: the three at once, cheaper than apart;
    - ``outer_grad(z, x, idx)``: (d_z F, d_x F); ``inner_value`` and ``outer_value``: G and F;
    - ``inner_per_sample`` and ``outer_per_sample``: the same quantities per sample, as rows (what
      variance-reduced methods store), with ``rows_to_x`` to sum cross-term rows into x's space;
    - ``sampler(which, batch_size, generator)``: the source of "inner" or "outer" minibatch indices under the
      problem's sampling scheme (draw from it, with a ``torch.Generator`` seeded from ``seed``, for the task's
      sampling to apply);
    - ``linear_model()``: where the problem is a generalised linear model (hyperparameter selection), its data laid
      out for one gather and its per-sample scalars (``suites.bilevel.closed.LinearModel``), else None: what lets a
      variance-reduced method keep two numbers per sample instead of rows (the reference SABA does; it then counts
      the oracles it forms itself with ``problem.count(batch, *kinds)``, as the oracles count themselves).

    Every oracle counts its calls and samples per kind (``problem.oracles``); the protocol records them per
    iteration, and the task checks that SABA's equal SOBA's.

    ``init`` may be called more than once on the same instance (tuning races, the engine's measured steps, the
    case's race): each call starts afresh. Between ``step`` calls the task reads ``outer_variable()`` (and
    ``inner_variable()``) and evaluates them off the clock; it stops when the budget of samples (or time) is spent.
    An example: ``examples/bilevel/``.
    """

    manifest: ClassVar[Manifest]
    defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    tuning_grid: ClassVar[Mapping[str, Mapping[str, Any]]] = {}  # {} : the task's grid

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
