"""The log-determinant of a residual block's Jacobian and the pieces its estimators share.

For f(x) = x + g(x) with Lip(g) < 1 (Behrmann et al. 2019, Theorem 1 and eq. 6):

    log|det(I + J_g(x))| = tr(log(I + J_g)) = sum_{k>=1} (-1)^{k+1} tr(J_g^k) / k,

which converges absolutely since |tr(J^k)| <= d ||J||^k. Hutchinson's estimator tr(A) = E_v[v^T A v] (E[v v^T] = I)
turns each trace into a chain of vector-Jacobian products u_k = v^T J^k. Truncating after n terms has the bias bound
(Behrmann et al. 2019, Theorem 3, pointwise in x with s = ||J_g(x)||_2 <= Lip(g)):

    |log|det(I + J_g(x))| - sum_{k=1}^n (-1)^{k+1} tr(J_g^k) / k|  <=  -d (log(1 - s) + sum_{k=1}^n s^k / k).

Residual Flows (Chen et al. 2019, eq. 6) remove the bias with a Russian-roulette number of terms N:
sum_k a_k = E_N[sum_{k=1}^N a_k / P(N >= k)]; here N = n_exact + M, M ~ Geometric(p) on {1, 2, ...}, so the first
n_exact + 1 terms always count with weight 1 and term k > n_exact + 1 with weight (1 - p)^-(k - n_exact - 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from suites.iresnet.linearise import VJP, Linearised, as_input


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product over every dimension but the first."""
    return (a * b).flatten(1).sum(1)


def vjp_powers(vjp: VJP, v: torch.Tensor, n: int, create_graph: bool) -> Iterator[torch.Tensor]:
    """u_k = v^T J_g(x)^k for k = 1..n, one vector-Jacobian product each (per sample: g acts sample-wise)."""
    u = v
    for _ in range(n):
        u = vjp(u, create_graph)
        yield u


def power_series(lin: Linearised, weights: list[float], create_graph: bool) -> torch.Tensor:
    """sum_{k=1}^n (-1)^{k+1} w_k v^T J^k v / k with one Gaussian probe v ~ N(0, I) per sample (n = len(weights)),
    as (sum_k (-1)^{k+1} w_k / k v^T J^k) v: one inner product, not n."""
    v = torch.randn_like(lin.x)
    coefficients = [(-1) ** (k + 1) * w / k for k, w in enumerate(weights, start=1)]
    return dot(lin.weighted_powers(v, coefficients, create_graph), v)


@dataclass(frozen=True)
class Roulette:
    """N = exact_terms + M, M ~ Geometric(p) on {1, 2, ...}; ``weights(N)[k-1]`` = 1 / P(N >= k)."""

    exact_terms: int
    p: float = 0.5

    def draw(self) -> int:
        return self.exact_terms + int(torch.empty(()).geometric_(self.p))

    def weights(self, n: int) -> list[float]:
        return [(1 - self.p) ** -max(k - self.exact_terms - 1, 0) for k in range(1, n + 1)]


def jacobian(g: nn.Module, x: torch.Tensor, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(g(x), J_g(x)) for flat inputs (N, d): d vector-Jacobian products, for low dimensions only."""
    if x.dim() != 2:
        raise ValueError(f"the full Jacobian needs flat inputs (N, d); got shape {tuple(x.shape)}")
    with torch.enable_grad():
        x = as_input(x)
        gx = g(x)
        rows = [
            torch.autograd.grad(gx[:, i].sum(), x, create_graph=create_graph, retain_graph=True)[0]
            for i in range(gx.shape[1])
        ]
    return gx, torch.stack(rows, 1)


def exact_logdet(g: nn.Module, x: torch.Tensor, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(x + g(x), log|det(I + J_g(x))|) from the full Jacobian."""
    gx, jac = jacobian(g, x, create_graph)
    eye = torch.eye(jac.shape[1], dtype=jac.dtype, device=jac.device)
    return x + gx, torch.linalg.slogdet(eye + jac).logabsdet


def truncation_bound(s: torch.Tensor, dim: int, terms: int) -> torch.Tensor:
    """-d (log(1 - s) + sum_{k<=n} s^k / k): the bias bound of the n-term series at ||J||_2 = s (inf if s >= 1)."""
    head = sum(s**k / k for k in range(1, terms + 1))
    bound = -dim * (torch.log1p(-s.clamp(max=1.0)) + head)
    return torch.where(s < 1, bound.clamp(min=0.0), torch.full_like(s, math.inf))


def jacobian_norm(g: nn.Module, x: torch.Tensor, iterations: int) -> torch.Tensor:
    """||J_g(x)||_2 per sample by power iteration u <- J^T J u / ||J^T J u||.

    J^T w is a vector-Jacobian product; J u is the derivative of the (linear in w) J^T w with respect to w."""

    def unit(u: torch.Tensor) -> torch.Tensor:
        return u / u.flatten(1).norm(dim=1).view(-1, *[1] * (u.dim() - 1))

    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        gx = g(x)
        w = torch.zeros_like(gx, requires_grad=True)
        (jt_w,) = torch.autograd.grad(gx, x, w, create_graph=True)
        u = unit(torch.randn_like(x))
        for _ in range(iterations):
            (ju,) = torch.autograd.grad(jt_w, w, u, retain_graph=True)
            (u,) = torch.autograd.grad(gx, x, ju, retain_graph=True)
            u = unit(u)
        (ju,) = torch.autograd.grad(jt_w, w, u, retain_graph=True)
    return ju.flatten(1).norm(dim=1).detach()
