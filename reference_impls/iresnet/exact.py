"""The exact log-determinant: log|det(I + J_g(x))| from the full Jacobian (d vector-Jacobian products per batch,
then a batched LU via ``slogdet``). The ground truth of the estimators; low dimensions only."""

import torch
from torch import nn

from ctbench import Manifest
from suites.iresnet.interface import ResidualLogDet
from suites.iresnet.series import exact_logdet


class Exact(ResidualLogDet):
    manifest = Manifest(
        name="exact", authors=("ctbench",), url="https://pytorch.org/docs/stable/generated/torch.linalg.slogdet.html"
    )
    series = "exact"

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        return exact_logdet(g, x, create_graph=torch.is_grad_enabled())
