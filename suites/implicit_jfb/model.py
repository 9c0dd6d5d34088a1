"""The implicit network of the task: N(d) = S(u*), u* = T(u*, Q(d)) (Fung et al. 2022, section 2).

- Q (data space): a 3x3 stem convolution (stride ``stem_stride``) with batch norm, ``data_blocks`` residual
  blocks, average pooling by ``pool``, a 1x1 convolution to the latent width with batch norm. Q need not be
  Lipschitz.
- T (latent space): T(u, v) = gamma * g(u + v), g = phi o K_L o ... o phi o K_1, phi the leaky ReLU
  (1-Lipschitz) and K_i 3x3 convolutions divided by their operator norm sigma_i (estimated by power iteration
  on the latent shape, sigma taken with its gradient as in spectral normalisation). So ||T(u, v) - T(w, v)||
  <= gamma ||u - w||: T is a gamma-contraction in u (up to the power iteration's estimate) and the fixed point
  exists and is unique. The normalised weights are computed once per step (``latent_map``), so T is the same
  map throughout a solve.
- S (inference): 3x3 convolution to 16 channels, leaky ReLU, a linear map to the class scores.

The paper keeps T contractive by rescaling its convolutions from an empirical Lipschitz estimate and puts
batch norm inside T; here the bound comes from the normalised operator norms and T has no batch norm, so that
T is the same function of u for every sample and its fixed point (and exact implicit gradient) is well
defined.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

SLOPE = 0.1  # leaky ReLU slope


class LipschitzConv(nn.Module):
    """A 3x3 convolution (padding 1) scaled to operator norm 1 on inputs of shape (C, H, W)."""

    def __init__(self, channels: int, hw: tuple[int, int], warmup_iters: int = 30):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        v = torch.randn(1, channels, *hw)
        self.register_buffer("v", v / v.norm())
        self.power_iteration(warmup_iters)

    @torch.no_grad()
    def power_iteration(self, iters: int = 1) -> None:
        """v <- K^T K v / ||K^T K v||: v tends to the convolution operator's top right-singular vector."""
        w = self.conv.weight
        v = self.v
        for _ in range(iters):
            v = F.conv_transpose2d(F.conv2d(v, w, padding=1), w, padding=1)
            v = v / v.norm()
        self.v.copy_(v)

    def normalized(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W / sigma, b), sigma = ||K v|| with its gradient with respect to W (v held fixed)."""
        sigma = F.conv2d(self.v, self.conv.weight, padding=1).norm()
        return self.conv.weight / sigma, self.conv.bias


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.LeakyReLU(SLOPE),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), SLOPE)


class ImplicitNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        image_size: int,
        classes: int,
        channels: int,
        latent_layers: int,
        data_width: int,
        data_blocks: int,
        pool: int,
        contraction: float,
        stem_stride: int = 1,
    ):
        super().__init__()
        self.contraction = contraction
        hw = ((image_size - 1) // stem_stride + 1) // pool
        self.latent_hw = (hw, hw)
        self.q = nn.Sequential(
            nn.Conv2d(in_channels, data_width, 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(data_width),
            nn.LeakyReLU(SLOPE),
            *[ResidualBlock(data_width) for _ in range(data_blocks)],
            nn.AvgPool2d(pool),
            nn.Conv2d(data_width, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.latent = nn.ModuleList(LipschitzConv(channels, self.latent_hw) for _ in range(latent_layers))
        self.s = nn.Sequential(
            nn.Conv2d(channels, 16, 3),
            nn.LeakyReLU(SLOPE),
            nn.Flatten(),
            nn.Linear(16 * (hw - 2) ** 2, classes),
        )

    def inject(self, d: torch.Tensor) -> torch.Tensor:
        """Q(d)."""
        return self.q(d)

    def latent_map(self, v: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """u -> T(u, v), with the convolutions' normalised weights computed once for the whole solve."""
        weights = [k.normalized() for k in self.latent]
        gamma = self.contraction

        def T(u: torch.Tensor) -> torch.Tensor:
            x = u + v
            for w, b in weights:
                x = F.leaky_relu(F.conv2d(x, w, b, padding=1), SLOPE)
            return gamma * x

        return T

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        """S(z): class scores."""
        return self.s(z)

    def update_lipschitz(self) -> None:
        """One power iteration per latent convolution: once per training step, before the forward."""
        for k in self.latent:
            k.power_iteration(1)

    def implicit_parameters(self) -> list[nn.Parameter]:
        """Parameters whose gradient passes through the fixed point (those of Q and T)."""
        return [*self.q.parameters(), *self.latent.parameters()]
