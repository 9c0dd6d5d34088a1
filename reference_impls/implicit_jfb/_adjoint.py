"""Implicit differentiation at the fixed point, shared by ``ift`` and ``ift_cg``.

At u* = T(u*, Q(d); theta) the implicit function theorem gives du*/dtheta = (I - J)^-1 dT/dtheta, J = dT/du at
u*, so for a loss l(u*) the gradient is d l / d theta = w^T dT/dtheta, where w solves the adjoint equation

    (I - J^T) w = g,   g = d l / d u*          (Fung et al. 2022, section 3; Bai et al. 2019, Theorem 1).

``implicit_output`` returns z = T(u*) whose backward replaces the incoming g by that w before it flows through
dT/dtheta; ``solve_adjoint(g, vjp, jvp)`` is the method's linear solver, with v -> J^T v and v -> J v at u*.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD

from suites.implicit_jfb.layer import Layer

Product = Callable[[torch.Tensor], torch.Tensor]
AdjointSolver = Callable[[torch.Tensor, Product, Product], torch.Tensor]


class _Adjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, u: torch.Tensor, layer: Layer, solve: AdjointSolver) -> torch.Tensor:
        ctx.save_for_backward(z, u)
        ctx.layer, ctx.solve = layer, solve
        return z

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        z, u = ctx.saved_tensors

        def vjp(v: torch.Tensor) -> torch.Tensor:
            return torch.autograd.grad(z, u, v, retain_graph=True)[0]

        def jvp(v: torch.Tensor) -> torch.Tensor:
            with fwAD.dual_level():
                return fwAD.unpack_dual(ctx.layer(fwAD.make_dual(u.detach(), v))).tangent

        return ctx.solve(g, vjp, jvp), None, None, None


def implicit_output(layer: Layer, u_star: torch.Tensor, solve: AdjointSolver) -> torch.Tensor:
    """z = T(u*) carrying the implicit gradient; u* must be a (detached) fixed point of ``layer``."""
    if not torch.is_grad_enabled():
        return layer(u_star)
    u = u_star.detach().requires_grad_()
    return _Adjoint.apply(layer(u), u, layer, solve)
