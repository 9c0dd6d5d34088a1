"""The peer: torchdeq's DEQ module (Geng & Kolter, 2023) on the task's latent layer, configured like the case.

torchdeq runs its own forward solver (``fixed_point_iter`` or ``anderson``, relative stopping rule, the case's
tolerance and cap) and attaches its own gradient; its IFT backward solves the adjoint equation with the same
solver, tolerance and cap. It is imported only when a case uses it.
"""

from __future__ import annotations

from typing import Any

import torch

from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver

SOLVER_NAMES = {"fixed_point": "fixed_point_iter", "anderson": "anderson"}


class TorchDEQ:
    """Builds (once per solver setting) and calls ``torchdeq.get_deq(**gradient)``."""

    def __init__(self, **gradient: Any):
        self.gradient = gradient
        self._deqs: dict[FixedPointSolver, torch.nn.Module] = {}

    def _deq(self, solver: FixedPointSolver) -> torch.nn.Module:
        if solver not in self._deqs:
            from torchdeq import get_deq

            name = SOLVER_NAMES[solver.method]
            self._deqs[solver] = get_deq(
                f_solver=name,
                f_max_iter=solver.max_iter,
                f_tol=solver.tol,
                f_stop_mode="rel",
                b_solver=name,
                b_max_iter=solver.max_iter,
                b_tol=solver.tol,
                b_stop_mode="rel",
                **self.gradient,
            )
        return self._deqs[solver]

    def __call__(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        deq = self._deq(solver)
        deq.train(torch.is_grad_enabled())  # torchdeq attaches gradients in training mode only
        kwargs = {"m": solver.anderson_memory, "lam": solver.anderson_lam} if solver.method == "anderson" else {}
        z, _ = deq(layer, u0, solver_kwargs=kwargs)
        return z[-1]
