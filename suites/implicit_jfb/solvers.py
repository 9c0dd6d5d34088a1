"""Fixed-point solvers for u = f(u): plain iteration and Anderson acceleration, batched per sample.

Both stop when the relative residual r(u) = ||f(u) - u|| / ||f(u)||, per sample, is at most ``tol`` for every
sample of the batch (the rule torchdeq calls ``stop_mode="rel"``), or after ``max_iter`` evaluations of f, and
return the last image f(u). Both are written without in-place updates, so autograd can differentiate through
them (the ``unrolled`` method does).

Anderson (Walker & Ni 2011, the form used by DEQ codes): with the last m iterates x_i and images f_i,
G = [f_i - x_i], alpha = argmin ||G^T alpha|| s.t. sum(alpha) = 1, i.e. alpha = H^-1 1 / (1^T H^-1 1) with
H = G G^T + lam I; the next iterate is x = sum_i alpha_i f_i.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

METHODS = ("fixed_point", "anderson")


def relative_residual(fu: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """||f(u) - u|| / ||f(u)|| per sample (first dimension), in float64 so diverging iterates stay finite."""
    fu, u = fu.detach().flatten(1).double(), u.detach().flatten(1).double()
    return (fu - u).norm(dim=1) / (fu.norm(dim=1) + 1e-12)


@dataclass(frozen=True)
class Solution:
    """The solver's answer: the last image ``u``, the evaluations of f spent, the worst sample's residual."""

    u: torch.Tensor
    iterations: int
    residual: float

    def converged(self, tol: float) -> bool:
        return self.residual <= tol


@dataclass(frozen=True)
class FixedPointSolver:
    """A case's forward solver: ``method`` in ``METHODS``, relative-residual tolerance, cap on f-evals."""

    method: str
    tol: float
    max_iter: int
    anderson_memory: int = 5
    anderson_lam: float = 1e-4

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown fixed-point solver {self.method!r}; valid: {', '.join(METHODS)}")
        if self.max_iter < 1 or not self.tol > 0:
            raise ValueError(f"solver needs max_iter >= 1 and tol > 0, got {self.max_iter}, {self.tol}")

    def __call__(self, f: Callable[[torch.Tensor], torch.Tensor], u0: torch.Tensor) -> Solution:
        if self.method == "fixed_point":
            return _iterate(f, u0, self.tol, self.max_iter)
        return _anderson(f, u0, self.tol, self.max_iter, self.anderson_memory, self.anderson_lam)


def _iterate(f: Callable, u: torch.Tensor, tol: float, max_iter: int) -> Solution:
    fu, k = f(u), 1
    residual = float(relative_residual(fu, u).max())
    while residual > tol and k < max_iter and math.isfinite(residual):
        u, fu, k = fu, f(fu), k + 1
        residual = float(relative_residual(fu, u).max())
    return Solution(fu, k, residual)


def _anderson(f: Callable, u0: torch.Tensor, tol: float, max_iter: int, memory: int, lam: float) -> Solution:
    shape = u0.shape
    x = u0.flatten(1)
    fx = f(u0).flatten(1)
    xs, fs = [x], [fx]
    residual = float(relative_residual(fx, x).max())
    k = 1
    while residual > tol and k < max_iter and math.isfinite(residual):
        g = torch.stack(fs, 1) - torch.stack(xs, 1)  # (B, n, D)
        n = g.shape[1]
        eye = torch.eye(n, dtype=g.dtype, device=g.device)
        h = g @ g.transpose(1, 2) + lam * eye
        a = torch.linalg.solve(h, torch.ones(g.shape[0], n, 1, dtype=g.dtype, device=g.device))
        alpha = a / a.sum(1, keepdim=True)
        x = (alpha.transpose(1, 2) @ torch.stack(fs, 1)).squeeze(1)
        fx = f(x.view(shape)).flatten(1)
        k += 1
        residual = float(relative_residual(fx, x).max())
        xs, fs = [*xs, x][-memory:], [*fs, fx][-memory:]
    return Solution(fx.view(shape), k, residual)
