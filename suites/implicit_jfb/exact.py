"""The exact implicit gradient of a batch's loss, the reference ``grad_cosine`` is measured against.

On a float64 copy of the network (same weights, buffers and batch-norm mode), with T's normalised weights
fixed: u* by plain fixed-point iteration to a tight relative tolerance; g = dl/dz at z = T(u*); the adjoint
w = g + J^T w by fixed-point iteration to the same tolerance (it converges like the forward, ||J|| <= gamma);
the gradient of Q's and T's parameters is w^T dT/dtheta (Fung et al. 2022, section 3). The solves are
independent of any method under test; tests check this gradient against finite differences of the loss.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from suites.implicit_jfb.model import ImplicitNet
from suites.implicit_jfb.solvers import FixedPointSolver

TOL = 1e-11
MAX_ITER = 5000


class NotConverged(RuntimeError):
    """The tight solve missed its tolerance: the layer is not contractive enough to define the gradient."""


def implicit_gradient(model: ImplicitNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d loss / d (Q, T parameters), flattened, in float64."""
    net = copy.deepcopy(model).double()
    solver = FixedPointSolver("fixed_point", TOL, MAX_ITER)
    v = net.inject(x.double())
    T = net.latent_map(v)
    with torch.no_grad():
        forward = solver(T, torch.zeros_like(v))
    if not forward.converged(TOL):
        raise NotConverged(f"exact forward solve: residual {forward.residual:.2e} after {MAX_ITER} iterations")
    u = forward.u.requires_grad_()
    z = T(u)
    (g,) = torch.autograd.grad(F.cross_entropy(net.readout(z), y), z, retain_graph=True)
    with torch.no_grad():
        adjoint = solver(lambda w: g + torch.autograd.grad(z, u, w, retain_graph=True)[0], g)
    if not adjoint.converged(TOL):
        raise NotConverged(f"exact adjoint solve: residual {adjoint.residual:.2e} after {MAX_ITER} iterations")
    grads = torch.autograd.grad(z, net.implicit_parameters(), adjoint.u, allow_unused=True)
    return flat(grads, net.implicit_parameters())


def flat(grads: tuple[torch.Tensor | None, ...] | list[torch.Tensor | None], params: list) -> torch.Tensor:
    """Concatenated gradients; a missing one (parameter not reached) counts as zero."""
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).flatten().double() for g, p in zip(grads, params, strict=True)]
    )


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-300))
