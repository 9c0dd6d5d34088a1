"""NEIS with a gradient velocity field (the paper's model 2): b = grad V, V a two-layer softplus network,

    V(x) = sum_j a_j softplus(w_j . x + c_j),   b(x) = sum_j a_j sigmoid(w_j . x + c_j) w_j,
    div b(x) = sum_j a_j sigmoid'(w_j . x + c_j) |w_j|^2       (exact, in every dimension).

Initialisation as the paper's: Glorot-uniform W, c, and a scaled by 5. The estimator and its training are in
``suites.neis.neis``.
"""

from __future__ import annotations

import torch

from ctbench import Manifest
from suites.neis.interface import Budget
from suites.neis.neis import NEIS, VelocityField, glorot

OUTPUT_SCALE = 5.0  # the paper's ``scale`` for the outer weights a


class GradientField(VelocityField):
    def __init__(self, dim: int, width: int):
        super().__init__(dim)
        self.w, self.c = glorot(width, dim), glorot(width)
        self.a = torch.nn.Parameter(OUTPUT_SCALE * glorot(1, width).data[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(x @ self.w.T + self.c) * self.a) @ self.w

    def divergence(self, x: torch.Tensor, probe: torch.Tensor | None) -> torch.Tensor:
        s = torch.sigmoid(x @ self.w.T + self.c)
        return (s * (1 - s)) @ (self.a * (self.w * self.w).sum(-1))


class NEISGradient(NEIS):
    manifest = Manifest(
        name="neis_gradient",
        authors=("Yu Cao", "Eric Vanden-Eijnden"),
        url="https://arxiv.org/abs/2206.09908",
        description="NEIS, b = grad of a two-layer softplus potential (paper's model 2), trained on the second moment",
    )

    def make_field(self, dim: int, budget: Budget) -> VelocityField:
        return GradientField(dim, budget.width)
