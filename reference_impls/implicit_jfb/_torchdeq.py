"""The peer: torchdeq's DEQ module (Geng & Kolter, 2023) on the task's latent layer, at torchdeq's own settings.

What the case fixes, torchdeq is given: its forward solver is the case's method (``fixed_point_iter`` or
``anderson``), stopped at the case's tolerance on the case's rule (torchdeq's ``stop_mode="rel"``, the relative
residual every method of the task must reach) within the case's cap. Everything else is torchdeq's documented
default (``torchdeq.core.DEQBase``, ``torchdeq.utils.add_deq_args``, torchdeq 0.1): Anderson's memory and
regularisation (m = 6, lam = 1e-4), and for implicit differentiation the backward solver ``fixed_point_iter``
stopped at an absolute residual ||J^T w + g - w|| <= 1e-6 per sample within 40 iterations (torchdeq's defaults
solve the backward three orders of magnitude tighter than the forward, 1e-6 against 1e-3). ``BACKWARD`` spells
these out, so that a change of torchdeq's defaults shows in the tests
(``tests/tasks/implicit_jfb/test_implicit_jfb.py`` compares them with torchdeq's signature) rather than silently
here. Imported only when a case uses it.
"""

from __future__ import annotations

from typing import Any

import torch

from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver

SOLVER_NAMES = {"fixed_point": "fixed_point_iter", "anderson": "anderson"}
BACKWARD = {"b_solver": "fixed_point_iter", "b_tol": 1e-6, "b_stop_mode": "abs", "b_max_iter": 40}


def deq_settings(solver: FixedPointSolver) -> dict[str, Any]:
    """The keyword arguments of ``torchdeq.get_deq`` for a case's forward solver (gradient settings aside)."""
    forward = {"f_solver": SOLVER_NAMES[solver.method], "f_tol": solver.tol, "f_stop_mode": "rel"}
    return {**forward, "f_max_iter": solver.max_iter, **BACKWARD}


class TorchDEQ:
    """Builds (once per solver setting) and calls ``torchdeq.get_deq(**deq_settings(solver), **gradient)``."""

    def __init__(self, **gradient: Any):
        self.gradient = gradient
        self._deqs: dict[FixedPointSolver, torch.nn.Module] = {}

    def deq(self, solver: FixedPointSolver) -> torch.nn.Module:
        if solver not in self._deqs:
            from torchdeq import get_deq

            self._deqs[solver] = get_deq(**deq_settings(solver), **self.gradient)
        return self._deqs[solver]

    def __call__(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        deq = self.deq(solver)
        deq.train(torch.is_grad_enabled())  # torchdeq attaches gradients in training mode only
        z, _ = deq(layer, u0)
        return z[-1]
