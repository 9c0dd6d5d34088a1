"""What a backward method for an implicit layer provides."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver


class ImplicitBackward(ABC):
    """Produces the implicit layer's output so that backpropagating through it gives the method's gradient.

    ``forward(layer, u0, solver)`` returns z, a tensor shaped like ``u0``, with z ~= u* = T(u*, Q(d)); the
    task computes the loss from S(z) and calls ``torch.autograd.backward(loss, inputs=parameters)``: whatever
    graph (or custom autograd function) the method attached to z decides the gradient of Q's and T's
    parameters. Evaluate T only through ``layer`` (it counts evaluations and Jacobian products); ``solver`` is
    the case's forward solver (method, tolerance, cap), which a method may also use for its own linear solves.
    When the task calls ``forward`` under ``torch.no_grad()`` (test accuracy), no graph is needed.

    Claims the task checks on every case:
    - ``finds_fixed_point``: z is a fixed point up to the solver's tolerance (False: the explicit network,
      which has no fixed point; no residual, convergence or gradient-cosine metric then);
    - ``exact``: the gradient is the implicit gradient up to the solver's tolerance (``grad_cosine`` >= 0.99);
    - ``jacobian_free``: the backward spends no Jacobian product of T (``backward_jacobian_products`` == 0).
    """

    finds_fixed_point: ClassVar[bool] = True
    exact: ClassVar[bool] = False
    jacobian_free: ClassVar[bool] = False

    @abstractmethod
    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        """z ~= u* = layer(u*), differentiable with this method's gradient."""
