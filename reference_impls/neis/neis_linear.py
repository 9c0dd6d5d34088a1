"""NEIS with a linear velocity field b(x) = A x + c (the paper's model 0), div b = tr A exactly.

The estimator and its training are in ``suites.neis.neis``.
"""

from __future__ import annotations

import torch

from ctbench import Manifest
from suites.neis.interface import Budget
from suites.neis.neis import NEIS, VelocityField, glorot


class LinearField(VelocityField):
    def __init__(self, dim: int):
        super().__init__(dim)
        self.a, self.c = glorot(dim, dim), glorot(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.a.T + self.c

    def divergence(self, x: torch.Tensor, probe: torch.Tensor | None) -> torch.Tensor:
        return torch.diagonal(self.a).sum().expand(x.shape[0])


class NEISLinear(NEIS):
    manifest = Manifest(
        name="neis_linear",
        authors=("Yu Cao", "Eric Vanden-Eijnden"),
        url="https://arxiv.org/abs/2206.09908",
        description="NEIS, linear velocity field, trained on the second moment",
    )

    def make_field(self, dim: int, budget: Budget) -> VelocityField:
        return LinearField(dim)
