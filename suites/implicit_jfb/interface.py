"""What a backward method for an implicit layer provides, and what the task hands it.

The network is N(d) = S(u*), u* = T(u*, Q(d)) (``model.ImplicitNet``). For each batch the protocol computes the
injection v = Q(d), wraps u -> T(u, v) in a ``Layer``, calls ``forward(layer, u0, solver)`` with u0 = zeros like v,
and takes the loss of S(z): the gradients of Q's and T's parameters come from backpropagating through z, whatever
graph the method gave it. An example: ``examples/implicit_jfb/``.
"""

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
    When the task calls ``forward`` under ``torch.no_grad()`` (test accuracy), no graph is needed; with gradients
    enabled, the returned z must carry a graph (the task checks its shape, finiteness and graph).

    What ``forward`` receives:

    - ``layer`` (``suites.implicit_jfb.layer.Layer``): call it, ``layer(u)``, for T(u, Q(d)); u must have
      ``layer.shape``, the latent's (batch, channels, H, W). T is a gamma-contraction in u (gamma the scale's
      ``contraction``), so the fixed point is unique. ``layer.evaluations`` and ``layer.jacobian_products`` count
      what the method spends, which the task reports (forward iterations, ``backward_jacobian_products``): a
      vector-Jacobian product through ``layer``'s graph, a forward-mode product or a double backward each counts
      one; ``uncounted`` is the task's own, for its measurements, not for methods;
    - ``u0``: the starting latent, zeros of ``layer.shape``;
    - ``solver`` (``suites.implicit_jfb.solvers.FixedPointSolver``): the case's forward solver, with ``method``
      (``fixed_point`` or ``anderson``), ``tol`` (relative residual ||T(u) - u|| / ||T(u)|| per sample) and
      ``max_iter`` (a cap on evaluations); ``solver(f, u)`` returns a ``Solution`` with ``u`` (the last image),
      ``iterations`` and ``residual`` (the worst sample's). It can solve any fixed-point problem, e.g. an adjoint
      equation w = g + J^T w. ``solvers.relative_residual`` is the stopping rule's residual.

    Claims the task checks on every case:
    - ``finds_fixed_point``: z is a fixed point up to the solver's tolerance (False: the explicit network,
      which has no fixed point; no residual, convergence or gradient-cosine metric then);
    - ``exact``: the gradient is the implicit gradient up to the solver's tolerance (``grad_cosine`` >= 0.999);
    - ``jacobian_free``: the backward spends no Jacobian product of T (``backward_jacobian_products`` == 0).
    """

    finds_fixed_point: ClassVar[bool] = True
    exact: ClassVar[bool] = False
    jacobian_free: ClassVar[bool] = False

    @abstractmethod
    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        """z ~= u* = layer(u*), differentiable with this method's gradient."""
