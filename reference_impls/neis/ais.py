"""Neal's annealed importance sampling (Neal 2001) with MALA transitions.

Potentials U_beta = (1 - beta) U0 + beta U1 on the linear schedule beta_k = k / K, k = 0..K. With x_0 ~ rho0 and
x_k ~ T_k(x_{k-1}, .), T_k a MALA step that leaves exp(-U_{beta_k}) invariant,

    log Z_hat = sum_{k=1}^{K} (beta_k - beta_{k-1}) (U0(x_{k-1}) - U1(x_{k-1})),

and exp(log Z_hat) is unbiased for Z1 / Z0 (Z0 = 1) whatever the step size tau. MALA proposes
y = x - tau grad U_beta(x) + sqrt(2 tau) xi and accepts with probability
min(1, exp(U_beta(x) - U_beta(y)) q(x | y) / q(y | x)). The last transition does not enter the weight and is
skipped: K - 1 MALA steps, each one U1 value and one U1 gradient per sample, plus both at x_0.
"""

from __future__ import annotations

import math

import torch

from ctbench import Manifest
from suites.neis.interface import Budget, Estimator
from suites.neis.problem import Problem

Tensor = torch.Tensor


def _u1_and_grad(problem: Problem, x: Tensor) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        xr = x.detach().requires_grad_()
        u = problem.U1(xr, where="AIS/MALA states")
        (g,) = torch.autograd.grad(u.sum(), xr)
    return u.detach(), g


def ais_log_weights(problem: Problem, n: int, temperatures: int, tau: float) -> Tensor:
    """``n`` independent AIS chains, batched; returns their log weights."""
    x = problem.sample_base(n)
    u1, g1 = _u1_and_grad(problem, x)
    log_w = torch.zeros_like(u1)
    betas = torch.linspace(0, 1, temperatures + 1).tolist()
    for k in range(1, temperatures + 1):
        log_w = log_w + (betas[k] - betas[k - 1]) * (problem.U0(x) - u1)
        if k == temperatures:
            break
        beta = betas[k]
        ub = (1 - beta) * problem.U0(x) + beta * u1
        gb = (1 - beta) * x + beta * g1  # grad U0(x) = x
        y = x - tau * gb + math.sqrt(2 * tau) * torch.randn_like(x)
        u1y, g1y = _u1_and_grad(problem, y)
        uby = (1 - beta) * problem.U0(y) + beta * u1y
        gby = (1 - beta) * y + beta * g1y
        log_fwd = -((y - x + tau * gb) ** 2).sum(-1) / (4 * tau)
        log_bwd = -((x - y + tau * gby) ** 2).sum(-1) / (4 * tau)
        log_alpha = ub - uby + log_bwd - log_fwd
        accept = torch.rand_like(log_alpha).log() < log_alpha  # False where U1(y) = +inf (NaN compares False)
        x = torch.where(accept[:, None], y, x)
        u1 = torch.where(accept, u1y, u1)
        g1 = torch.where(accept[:, None], g1y, g1)
    return log_w


class AIS(Estimator):
    manifest = Manifest(
        name="ais",
        authors=("Radford M. Neal",),
        url="https://arxiv.org/abs/physics/9803008",
        description="annealed importance sampling, linear interpolation of potentials, MALA transitions",
    )

    temperatures: int | None = None  # K; None: the budget's (the scale's ``temperatures``, the paper's AIS-10)

    def __init__(self) -> None:
        self.budget: Budget | None = None

    def fit(self, problem: Problem, budget: Budget) -> list[float]:
        self.budget = budget
        return []

    @torch.no_grad()
    def sample(self, problem: Problem, n: int) -> Tensor:
        if self.budget is None:
            raise RuntimeError("AIS.sample before fit")
        b = self.budget
        k = self.temperatures or b.temperatures
        return torch.cat([ais_log_weights(problem, min(b.chunk, n - i), k, b.mala_step) for i in range(0, n, b.chunk)])
