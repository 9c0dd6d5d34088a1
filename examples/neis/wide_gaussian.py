"""Importance sampling from a wide Gaussian proposal q = N(0, s^2 I).

Each estimate is Z_hat = exp(-U1(x)) / q(x) with x ~ q, unbiased for Z1 = int exp(-U1) whenever q covers the
target's mass; one evaluation of ``problem.U1`` per sample, nothing to train. A proposal wider than the base
N(0, I) reaches modes far from the origin (eg1's at distance 5) at the price of a larger variance near it.
"""

import math

import torch

from ctbench import Manifest
from suites.neis.interface import Budget, Estimator
from suites.neis.problem import Problem


class WideGaussian(Estimator):
    manifest = Manifest(name="wide_gaussian", authors=("ctbench examples",), description="IS from N(0, s^2 I)")
    scale = 4.0

    def fit(self, problem: Problem, budget: Budget) -> list[float]:
        self.chunk = budget.chunk
        return []

    @torch.no_grad()
    def sample(self, problem: Problem, n: int) -> torch.Tensor:
        s, d = self.scale, problem.dim
        out = []
        for start in range(0, n, self.chunk):
            x = s * torch.randn(min(self.chunk, n - start), d, device=problem.device, dtype=problem.dtype)
            log_q = -(x * x).sum(-1) / (2 * s * s) - 0.5 * d * math.log(2 * math.pi * s * s)
            out.append(-problem.U1(x) - log_q)
        return torch.cat(out)
