"""i-ResNet's log-determinant (Behrmann et al. 2019, eq. 6 and Algorithm 2): the power series truncated after n
terms with one Hutchinson probe v ~ N(0, I) per sample,

    log|det(I + J_g(x))|  ~=  sum_{k=1}^n (-1)^{k+1} v^T J_g^k v / k,

each v^T J^k a vector-Jacobian product of the previous one. Gradients flow through all n products
(``create_graph``), so training memory grows linearly in n; the bias is bounded by Theorem 3 (``series.py``).
The products use g linearised once per block (``linearise``: the activations' derivatives computed once and
shared by the n products, which are differentiated as one function with in-place gradient accumulation).
"""

import torch
from torch import nn

from ctbench import Manifest
from suites.iresnet.interface import ResidualLogDet
from suites.iresnet.linearise import linearise
from suites.iresnet.series import power_series


class IResNet(ResidualLogDet):
    manifest = Manifest(
        name="iresnet",
        authors=("Jens Behrmann", "Will Grathwohl", "Ricky T. Q. Chen", "David Duvenaud", "Joern-Henrik Jacobsen"),
        url="https://arxiv.org/abs/1811.00995",
    )
    series = "truncated"

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        train = torch.is_grad_enabled()
        lin = linearise(g, x)
        logdet = power_series(lin, [1.0] * terms, create_graph=train)
        y = lin.x + lin.gx
        return (y, logdet) if train else (y.detach(), logdet.detach())
