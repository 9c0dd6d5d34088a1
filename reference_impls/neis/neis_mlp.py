"""NEIS with a generic network for b (the paper's model 1): b(x) = W2 softplus(W1 x + c1) + c2, m hidden units.

The network is treated as a black box: div b comes from autograd, never from a closed form, so the same code
serves any network. It is the exact Jacobian trace (d vector-Jacobian products in one batched backward pass) up
to ``budget.exact_div_max_dim`` and Hutchinson's estimate above it (see ``suites.neis.neis``, which also holds
the estimator and its training).
"""

from __future__ import annotations

import torch
from torch import nn

from ctbench import Manifest
from suites.neis.interface import Budget
from suites.neis.neis import NEIS, VelocityField


class MLPField(VelocityField):
    def __init__(self, dim: int, width: int, hutchinson: bool):
        super().__init__(dim, hutchinson)
        self.net = nn.Sequential(nn.Linear(dim, width), nn.Softplus(), nn.Linear(width, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NEISMLP(NEIS):
    manifest = Manifest(
        name="neis_mlp",
        authors=("Yu Cao", "Eric Vanden-Eijnden"),
        url="https://arxiv.org/abs/2206.09908",
        description="NEIS, generic network for b (autograd divergence: exact, or Hutchinson in high dimension)",
    )

    def make_field(self, dim: int, budget: Budget) -> VelocityField:
        return MLPField(dim, budget.width, hutchinson=dim > budget.exact_div_max_dim)
