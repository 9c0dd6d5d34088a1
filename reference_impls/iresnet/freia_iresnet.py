"""Peer: FrEIA's ``IResNetLayer`` (its residual network replaced by the task's g).

FrEIA truncates the power series after ``jacobian_iterations`` = ``terms`` terms with one Rademacher probe per
sample, recomputing g(x) for every term, and inverts by a fixed number of fixed-point iterations
(``fixed_point_iterations`` = the protocol's budget). Its log-det is computed with ``torch.autograd.grad`` without
``create_graph``: it carries no gradient, so it cannot train a density by maximum likelihood (FrEIA's i-ResNet
layer is not built for that). The protocol finds this on a few inputs, says so in the case's note (not as a
failing check) and measures it on forward + log-det evaluation, the estimator's error and inversion only.
Configured with FrEIA's defaults otherwise (one probe per sample: ``hutchinson_samples=1``).
"""

import torch
from torch import nn

from ctbench import Manifest
from suites.iresnet.interface import ResidualLogDet


class FrEIAIResNet(ResidualLogDet):
    manifest = Manifest(
        name="freia_iresnet", authors=("Visual Learning Lab Heidelberg",), url="https://github.com/vislearn/FrEIA"
    )
    series = "truncated"

    def __init__(self) -> None:
        self._layers: dict[nn.Module, nn.Module] = {}

    def _layer(self, g: nn.Module, shape: tuple[int, ...]) -> nn.Module:
        from FrEIA.modules import IResNetLayer

        layer = self._layers.get(g)
        if layer is None:
            layer = IResNetLayer([shape], internal_size=1, hutchinson_samples=1)
            layer.residual = g  # FrEIA's own residual net (and its layers) are never used
            self._layers[g] = layer
        return layer

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        layer = self._layer(g, tuple(x.shape[1:]))
        layer.jacobian_iterations = terms
        with torch.enable_grad():
            (y,), logdet = layer([x.detach().requires_grad_(True)])
        return y.detach(), logdet.detach()

    def inverse(self, g: nn.Module, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        layer = self._layer(g, tuple(y.shape[1:]))
        layer.fixed_point_iterations = max_iter
        with torch.no_grad():
            (x,), _ = layer([y], rev=True, jac=False)
        return x
