"""Implicit differentiation with the adjoint equation solved by conjugate gradient on the normal equations.

The paper's Jacobian-based baseline (Fung et al. 2022, section 5 and Table 2): with A = I - J^T, CG solves
A^T A w = A^T g, per sample, where A^T A p = (p - J^T p) - J (p - J^T p) costs one vector-Jacobian product
(J^T p, reverse mode) and one Jacobian-vector product (J q, forward mode) per iteration. It stops when every
sample's normal-equation residual ||A^T g - A^T A w|| / ||A^T g|| is at most the forward's tolerance, or at
its cap (the authors' ``tol_cg = eps``, ``max_iter_cg = max_depth``).
"""

import torch

from ctbench import Manifest
from reference_impls.implicit_jfb._adjoint import Product, implicit_output
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product, shaped to broadcast over a sample."""
    return (a * b).flatten(1).sum(1).view(-1, *[1] * (a.dim() - 1))


def conjugate_gradient_normal(g: torch.Tensor, vjp: Product, jvp: Product, tol: float, max_iter: int) -> torch.Tensor:
    """w with (I - J)(I - J^T) w = (I - J) g, by batched CG from w = 0."""

    def normal(p: torch.Tensor) -> torch.Tensor:
        q = p - vjp(p)
        return q - jvp(q)

    b = g - jvp(g)
    w, r = torch.zeros_like(b), b
    p, rr = r, _dot(r, r)
    b_norm = rr.sqrt().clamp_min(1e-30)
    for _ in range(max_iter):
        if float((rr.sqrt() / b_norm).max()) <= tol:
            break
        ap = normal(p)
        alpha = rr / _dot(p, ap).clamp_min(1e-30)
        w, r = w + alpha * p, r - alpha * ap
        rr_new = _dot(r, r)
        p, rr = r + (rr_new / rr.clamp_min(1e-30)) * p, rr_new
    return w


class IFTConjugateGradient(ImplicitBackward):
    manifest = Manifest(
        name="ift_cg",
        authors=("ctbench",),
        url="https://arxiv.org/abs/2103.12803",
        description="implicit differentiation, CG on the normal equations (the paper's Jacobian-based one)",
    )
    exact = True

    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        with torch.no_grad():
            u_star = solver(layer, u0).u

        def solve(g: torch.Tensor, vjp: Product, jvp: Product) -> torch.Tensor:
            return conjugate_gradient_normal(g, vjp, jvp, solver.tol, solver.max_iter)

        return implicit_output(layer, u_star, solve)
