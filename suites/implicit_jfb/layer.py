"""The latent layer handed to a backward method: u -> T(u, Q(d)) at a fixed injection Q(d), with counters.

Every evaluation of T is counted, and so is every Jacobian product of T with respect to u, whichever way a
method computes it: a vector-Jacobian product (reverse mode, ``autograd.grad`` or ``backward``), a
Jacobian-vector product (forward mode, ``torch.autograd.forward_ad``), or a product through a VJP's own graph
(double backward). The count is taken by an identity on u, inserted before T, whose backward and forward-mode
rules increment it; so a method cannot spend a Jacobian product of T that the task does not see, unless it
bypasses ``Layer``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class _CountJacobianProducts(torch.autograd.Function):
    """y = u; every product with dT/du passes through here once (d y / d u = I) and is counted."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, layer: Layer) -> torch.Tensor:
        ctx.layer = layer
        return u.view_as(u)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        ctx.layer.jacobian_products += 1
        if torch.is_grad_enabled():  # create_graph: count products taken through this VJP's graph as well
            return _CountJacobianProducts.apply(grad, ctx.layer), None
        return grad, None

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor, _: Any) -> torch.Tensor:
        ctx.layer.jacobian_products += 1
        return tangent.view_as(tangent)


class Layer:
    """u -> T(u, Q(d)); ``evaluations`` and ``jacobian_products`` count what was spent since ``reset``."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], shape: torch.Size):
        self._fn = fn
        self.shape = shape
        self.evaluations = 0
        self.jacobian_products = 0

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        if u.shape != self.shape:
            raise ValueError(f"the latent layer takes u of shape {tuple(self.shape)}, got {tuple(u.shape)}")
        self.evaluations += 1
        return self._fn(_CountJacobianProducts.apply(u, self))

    def reset(self) -> None:
        self.evaluations = 0
        self.jacobian_products = 0

    def uncounted(self, u: torch.Tensor) -> torch.Tensor:
        """T(u) for the task's own measurements (residuals), left out of the counts."""
        return self._fn(u)
