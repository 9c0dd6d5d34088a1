"""Implicit differentiation with a gradient hook (the DEQ pattern of Bai et al. 2019).

Forward: the fixed point u* = T(u*) by the case's ``solver`` without a graph, then one differentiable
application z = T(u*), which carries dT/dtheta. Backward: a hook on z replaces the incoming gradient g by the
solution of the adjoint equation w = g + J^T w (J = dT/du at u*), solved by plain iteration to the solver's
tolerance, one vector-Jacobian product of ``layer`` per iteration; the parameters then receive
w^T dT/dtheta, the implicit gradient.
"""

import torch

from ctbench import Manifest
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver, relative_residual


class HookIFT(ImplicitBackward):
    manifest = Manifest(name="hook_ift", authors=("ctbench examples",), description="implicit gradient by a hook")
    exact = True

    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        with torch.no_grad():
            u_star = solver(layer, u0).u
        z = layer(u_star)
        if not torch.is_grad_enabled():  # evaluation: no gradient wanted
            return z
        u = u_star.detach().requires_grad_(True)
        tu = layer(u)  # the graph the adjoint's products J^T w go through

        def adjoint(g: torch.Tensor) -> torch.Tensor:
            w = g
            for _ in range(solver.max_iter):
                (jtw,) = torch.autograd.grad(tu, u, w, retain_graph=True)
                w, previous = g + jtw, w
                if relative_residual(w, previous).max() <= solver.tol:
                    break
            return w

        z.register_hook(adjoint)
        return z
