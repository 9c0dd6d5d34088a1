"""Invertible residual networks: a flow of residual blocks x + g(x) (and volume-preserving squeezes).

A residual branch g is a small network whose every weight is spectrally normalised (``spectral.py``):
- ``mlp_branch`` (2-D densities): Linear - ELU - ... - Linear, widths d -> w -> ... -> w -> d;
- ``conv_branch`` (images, i-ResNet's block): conv3x3 - ELU - conv1x1 - ELU - conv3x3, C -> w -> w -> C.
The flow maps data x to z = F(x) through its steps; log p(x) = log N(z; 0, I) + sum_blocks log|det(I + J_g)|
(Behrmann et al. 2019, eq. 2). Each block is inverted by the fixed-point iteration of the method (``interface.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from suites.iresnet.spectral import normalise

LogDet = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # g, x -> (x + g(x), logdet)
Inverse = Callable[[nn.Module, torch.Tensor], torch.Tensor]  # g, y -> x with x + g(x) = y


class Block(nn.Module):
    """x + g(x): the residual step of a flow."""

    def __init__(self, g: nn.Module):
        super().__init__()
        self.g = g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.g(x)


class Squeeze(nn.Module):
    """(C, H, W) -> (4C, H/2, W/2) by 2x2 space-to-depth: a permutation, log-det 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, 2)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(y, 2)


class Pad(nn.Module):
    """Injective padding (Behrmann et al. 2019, section 4.1): append zero channels; the inverse drops them."""

    def __init__(self, channels: int, to: int):
        super().__init__()
        self.channels, self.to = channels, to

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, 0, 0, 0, self.to - self.channels))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, : self.channels]


class Flow(nn.Module):
    """A sequence of ``Block``, ``Squeeze`` and ``Pad`` steps."""

    def __init__(self, steps: list[nn.Module]):
        super().__init__()
        self.steps = nn.ModuleList(steps)

    @property
    def branches(self) -> list[nn.Module]:
        return [s.g for s in self.steps if isinstance(s, Block)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x

    def forward_logdet(self, x: torch.Tensor, logdet: LogDet) -> tuple[torch.Tensor, torch.Tensor]:
        """(F(x), sum over blocks of log|det(I + J_g)|) with ``logdet`` estimating each block's term."""
        total = x.new_zeros(x.shape[0])
        for step in self.steps:
            if isinstance(step, Block):
                x, ld = logdet(step.g, x)
                total = total + ld
            elif isinstance(step, Pad):
                raise ValueError("a flow with injective padding has no density (its log-det is undefined)")
            else:
                x = step(x)
        return x, total

    def block_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input of every block on the way from x to F(x)."""
        inputs = []
        with torch.no_grad():
            for step in self.steps:
                if isinstance(step, Block):
                    inputs.append(x)
                x = step(x)
        return inputs

    def inverse(self, z: torch.Tensor, invert: Inverse) -> torch.Tensor:
        for step in reversed(self.steps):
            z = invert(step.g, z) if isinstance(step, Block) else step.inverse(z)
        return z


def mlp_branch(dim: int, width: int, layers: int, c: float | None, iterations: int) -> nn.Module:
    """``layers`` spectrally normalised linear maps d -> w -> ... -> w -> d with ELU between them."""
    sizes = [dim] + [width] * (layers - 1) + [dim]
    modules: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            modules.append(nn.ELU())
        modules.append(normalise(nn.Linear(a, b), (a,), c, iterations))
    return nn.Sequential(*modules)


def conv_branch(channels: int, width: int, hw: tuple[int, int], c: float | None, iterations: int) -> nn.Module:
    """conv3x3 (C -> w) - ELU - conv1x1 (w -> w) - ELU - conv3x3 (w -> C), each spectrally normalised."""
    convs = [
        nn.Conv2d(channels, width, 3, padding=1),
        nn.Conv2d(width, width, 1),
        nn.Conv2d(width, channels, 3, padding=1),
    ]
    modules: list[nn.Module] = []
    for i, conv in enumerate(convs):
        if i:
            modules.append(nn.ELU())
        modules.append(normalise(conv, (conv.in_channels, *hw), c, iterations))
    return nn.Sequential(*modules)


def mlp_flow(dim: int, blocks: int, width: int, layers: int, c: float | None, iterations: int) -> Flow:
    return Flow([Block(mlp_branch(dim, width, layers, c, iterations)) for _ in range(blocks)])


def image_flow(
    shape: tuple[int, int, int],
    stages: list[tuple[int, int]],
    c: float | None,
    iterations: int,
    pad_to: int | None = None,
) -> tuple[Flow, tuple[int, int, int]]:
    """A multiscale flow: each stage (blocks, width) is a squeeze then ``blocks`` conv blocks; optional
    injective padding to ``pad_to`` channels after the first squeeze. Returns the flow and its output shape."""
    ch, h, w = shape
    steps: list[nn.Module] = []
    for i, (blocks, width) in enumerate(stages):
        if h % 2 or w % 2:
            raise ValueError(f"stage {i}: cannot squeeze a {h}x{w} map (odd size); use fewer stages")
        ch, h, w = 4 * ch, h // 2, w // 2
        steps.append(Squeeze())
        if i == 0 and pad_to is not None and pad_to > ch:
            steps.append(Pad(ch, pad_to))
            ch = pad_to
        steps += [Block(conv_branch(ch, width, (h, w), c, iterations)) for _ in range(blocks)]
    return Flow(steps), (ch, h, w)
