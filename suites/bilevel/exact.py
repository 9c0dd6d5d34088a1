"""Full-batch exact quantities: inner solution, linear system, value function, hypergradient and h*.

- z*(x): Newton's method on G(., x) (strongly convex) with backtracking on G; stops when ||d_z G|| <= tol.
- v*(x): the solution of d2_zz G(z*, x) v = -d_z F(z*, x).
  Hessian systems are solved densely for small dim z, else by conjugate gradient with Hessian-vector products.
- grad h(x) = d_x F(z*, x) + d2_xz G(z*, x) v*  (Dagreou et al. 2022, Section 2).
- h* = min_x h(x): L-BFGS-B on h with these exact hypergradients (a problem with a closed form uses it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from suites.bilevel.problem import BilevelProblem

DENSE_MAX = 512  # up to this dim z, Hessian systems are solved densely
BOUND = 30.0  # h* is searched for in [-BOUND, BOUND]^dim x


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor, rtol: float = 1e-10, max_iter: int = 1000
) -> Tensor:
    """Solve A x = b for symmetric positive definite A given as ``matvec``; stops at ||r|| <= rtol ||b||."""
    x = x0.clone()
    r = b - matvec(x)
    p = r.clone()
    rr = r @ r
    stop = (rtol * b.norm()) ** 2
    for _ in range(max_iter):
        if rr <= stop:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def solve_hessian(problem: BilevelProblem, z: Tensor, x: Tensor, rhs: Tensor, start: Tensor, rtol: float) -> Tensor:
    """Solve d2_zz G(z, x) u = rhs: a dense solve for small dim z, else conjugate gradient from ``start``."""
    if z.numel() <= DENSE_MAX:
        return torch.linalg.solve(problem.inner_hessian(z, x), rhs)
    return conjugate_gradient(lambda u: problem.inner_hvp(z, x, u, None), rhs, start, rtol=rtol)


def inner_solution(problem: BilevelProblem, x: Tensor, z: Tensor, tol: float = 1e-9, max_iter: int = 50) -> Tensor:
    """z*(x) by Newton's method from ``z`` (warm start), with backtracking on G; stops at ||d_z G|| <= tol or
    when the Newton decrement reaches the dtype's precision."""
    z = z.clone()
    for _ in range(max_iter):
        g = problem.inner_grad(z, x, None)
        if g.norm() <= tol:
            break
        step = solve_hessian(problem, z, x, -g, torch.zeros_like(z), rtol=1e-3)
        value, slope, t = problem.inner_value(z, x), g @ step, 1.0
        slack = 4 * torch.finfo(z.dtype).eps * (1 + value.abs())  # rounding: G cannot measurably decrease
        if -slope <= slack:  # Newton decrement at the precision of the dtype: converged
            break
        while problem.inner_value(z + t * step, x) > value + 1e-4 * t * slope + slack and t > 1e-6:
            t *= 0.5
        z += t * step
    return z


@dataclass(frozen=True)
class Hypergradient:
    """h(x), grad h(x) and the exact z*(x), v*(x) they were computed at."""

    value: float
    grad: Tensor
    z: Tensor
    v: Tensor


def hypergradient(problem: BilevelProblem, x: Tensor, z: Tensor, v: Tensor) -> Hypergradient:
    """Exact h(x) and grad h(x), warm-started at (``z``, ``v``)."""
    z = inner_solution(problem, x, z)
    fz, fx = problem.outer_grad(z, x, None)
    v = solve_hessian(problem, z, x, -fz, v, rtol=1e-10)
    return Hypergradient(float(problem.outer_value(z, x)), problem.inner_cross(z, x, v, None) + fx, z, v)


def minimum(problem: BilevelProblem, max_iter: int = 500, bound: float = BOUND) -> tuple[float, Tensor]:
    """(h*, x*): the closed form where the problem has one, else L-BFGS-B (scipy) on h from x0 with exact
    hypergradients over the box [-bound, bound]^dim x.

    The box keeps the inner problems solvable where h keeps decreasing towards infinite x (a penalty e^{x_k}
    driven to 0 or infinity): there h* is the infimum up to terms of order e^{-bound}. On a non-convex h
    (hyper-cleaning) this is the local minimum L-BFGS-B reaches from x0."""
    if problem.closed_form is not None:
        return problem.closed_form.minimum, problem.closed_form.minimiser
    from scipy.optimize import minimize

    warm = {"z": problem.z0.clone(), "v": torch.zeros_like(problem.z0)}

    def fun(x_np):
        x = torch.as_tensor(x_np, dtype=problem.dtype, device=problem.device)
        hg = hypergradient(problem, x, warm["z"], warm["v"])
        if not (math.isfinite(hg.value) and torch.isfinite(hg.grad).all()):
            return math.inf, 0.0 * x_np
        warm.update(z=hg.z, v=hg.v)
        return hg.value, hg.grad.double().cpu().numpy()

    x0 = problem.x0.double().cpu().numpy()
    options = {"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-12}
    result = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=[(-bound, bound)] * x0.size, options=options)
    x = torch.as_tensor(result.x, dtype=problem.dtype, device=problem.device)
    return float(result.fun), x
