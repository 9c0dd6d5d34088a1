"""i-ResNet's truncated power series (Behrmann et al. 2019, eq. 6), written with plain autograd.

    log|det(I + J_g(x))| ~= sum_{k=1}^n (-1)^(k+1) v^T J_g^k v / k,   v ~ N(0, I), one probe per sample,

each v^T J^k the vector-Jacobian product of the previous one (``terms`` = n). The products keep their graph
(``create_graph``) so that the estimate is differentiable in g's parameters and in x when training.
"""

import torch
from torch import nn

from ctbench import Manifest
from suites.iresnet.interface import ResidualLogDet


class PowerSeries(ResidualLogDet):
    manifest = Manifest(name="power_series", authors=("ctbench examples",), description="truncated power series")
    series = "truncated"

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        training = torch.is_grad_enabled()
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            gx = g(x)
            v = torch.randn_like(x)
            w, logdet = v, x.new_zeros(x.shape[0])
            for k in range(1, terms + 1):
                (w,) = torch.autograd.grad(gx, x, w, create_graph=True)  # w <- w^T J_g
                logdet = logdet + (-1) ** (k + 1) * (w * v).flatten(1).sum(1) / k
        y = x + gx
        return (y, logdet) if training else (y.detach(), logdet.detach())
