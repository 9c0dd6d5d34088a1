"""Vanilla importance sampling from the base: Z_hat = exp(-U1(x)) / rho0(x) = exp(U0(x) - U1(x)), x ~ N(0, I).

One evaluation of U1 per sample; nothing to train.
"""

from __future__ import annotations

import torch

from ctbench import Manifest
from suites.neis.interface import Budget, Estimator
from suites.neis.problem import Problem, vanilla_log_weights


class VanillaIS(Estimator):
    manifest = Manifest(name="vanilla_is", description="importance sampling with the base N(0, I) as proposal")

    def __init__(self) -> None:
        self.chunk = 1 << 16

    def fit(self, problem: Problem, budget: Budget) -> list[float]:
        self.chunk = budget.chunk
        return []

    def sample(self, problem: Problem, n: int) -> torch.Tensor:
        return vanilla_log_weights(problem, n, self.chunk)
