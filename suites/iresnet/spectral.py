"""Spectral normalisation with a coefficient: the Lipschitz constraint of i-ResNets.

Behrmann et al. (2019), eq. (4): each weight W of the residual branch g is replaced by

    W~ = c W / sigma~   if c / sigma~ < 1,   else W,

where sigma~ estimates ||W||_2, the operator norm of the layer's linear map (for a convolution: of the convolution
on the layer's input shape, not of the reshaped kernel), by power iteration u <- W^T W u / ||W^T W u||,
sigma~ = ||W u|| (Gouk et al. 2018). With ELU activations (Lipschitz 1) and every layer normalised, Lip(g) <= c^L
for L layers; c < 1 makes x + g(x) invertible. The iteration vector persists between steps: one iteration per
training forward, ``converge`` before evaluation. sigma~ approaches ||W||_2 from below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize


class SpectralNorm(nn.Module):
    """Parametrisation W -> W * min(1, c / sigma~(W)) of a ``Linear`` or ``Conv2d`` weight."""

    def __init__(self, layer: nn.Linear | nn.Conv2d, in_shape: tuple[int, ...], c: float, iterations: int = 1):
        super().__init__()
        if c <= 0:
            raise ValueError(f"spectral normalisation coefficient must be positive, got c={c}")
        self.c, self.iterations = float(c), iterations
        self.padding = layer.padding if isinstance(layer, nn.Conv2d) else None
        u = torch.randn(1, *in_shape)
        self.register_buffer("u", u / u.norm())

    def _op(self, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.linear(u, w) if self.padding is None else F.conv2d(u, w, padding=self.padding)

    def _op_t(self, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return v @ w if self.padding is None else F.conv_transpose2d(v, w, padding=self.padding)

    @torch.no_grad()
    def power_iterate(self, w: torch.Tensor, iterations: int) -> None:
        u = self.u
        for _ in range(iterations):
            u = self._op_t(self._op(u, w), w)
            u = u / u.norm()
        self.u.copy_(u)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.training and self.iterations:
            self.power_iterate(w, self.iterations)
        sigma = self._op(self.u, w).norm()
        return w * (self.c / sigma).clamp(max=1.0)


def normalise(layer: nn.Linear | nn.Conv2d, in_shape: tuple[int, ...], c: float | None, iterations: int):
    """``layer`` with its weight spectrally normalised to coefficient ``c`` (unchanged when ``c`` is None)."""
    if c is not None:
        parametrize.register_parametrization(layer, "weight", SpectralNorm(layer, in_shape, c, iterations))
    return layer


def _normalised(model: nn.Module):
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations.weight:
                if isinstance(p, SpectralNorm):
                    yield p, module.parametrizations.weight.original


def converge(model: nn.Module, iterations: int) -> None:
    """Run ``iterations`` more power iterations on every normalised weight of ``model``."""
    for sn, weight in _normalised(model):
        sn.power_iterate(weight, iterations)
