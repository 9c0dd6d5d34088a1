"""Implicit differentiation (IFT), the adjoint equation solved by the forward's own solver.

Forward: u* by the case's solver without a graph. Backward: w = g + J^T w, a fixed-point problem with the same
contraction as the forward (||J|| <= gamma), solved by the same method (plain iteration or Anderson) with
the same relative tolerance and cap, one vector-Jacobian product J^T w per iteration (Fung et al. 2022, section
3; Bai et al. 2019). Tying the backward's tolerance to the forward's is the authors' protocol (their
Jacobian-based training solves the adjoint with ``tol_cg = eps``, ``max_iter_cg = max_depth``): a forward that
needs more iterations makes an adjoint that needs about as many, which is why JFB's backward speed-up over IFT
grows with them.
"""

import torch

from ctbench import Manifest
from reference_impls.implicit_jfb._adjoint import Product, implicit_output
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver


class IFT(ImplicitBackward):
    manifest = Manifest(
        name="ift",
        authors=("ctbench",),
        url="https://arxiv.org/abs/2103.12803",
        description="implicit differentiation, adjoint fixed-point iteration",
    )
    exact = True

    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        with torch.no_grad():
            u_star = solver(layer, u0).u

        def solve(g: torch.Tensor, vjp: Product, jvp: Product) -> torch.Tensor:
            return solver(lambda w: g + vjp(w), g).u

        return implicit_output(layer, u_star, solve)
