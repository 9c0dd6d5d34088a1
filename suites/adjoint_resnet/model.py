"""The ResNet of the task: a frozen stem, a deep residual stage of N blocks, a frozen head.

The deep stage discretises dx/dt = f(x, theta(t)) on [0, 1] with step h = 1/N (Sander et al. 2022, eq. 1):

    euler:  x_{n+1} = x_n + h f_n(x_n)
    heun:   x_{n+1} = x_n + h/2 [f_n(x_n) + f_n(x_n + h f_n(x_n))]

where f_n(x) = W2_n * sigma(W1_n * x + b1_n) + b2_n (3x3 convolutions) and sigma is the activation: relu, or
softplus(z) = log(1 + e^z), a smooth relu. *Tied* weights (theta_n = theta for all n) are smooth in depth by
construction; the protocol pretrains tied, then unties every block and fine-tunes.

The activation decides the order of Euler's adjoint. The adjoint's vector-Jacobian products are taken at the
reconstructed x~_n, O(h) away from x_n; with softplus the Jacobian is Lipschitz in x, so each product is off by
O(h) and the gradient error is O(h) = O(N^-1). ReLU's Jacobian jumps where a pre-activation crosses 0: the units
within O(h) of their kink flip, each by O(1), so the error is no longer O(h) in general (measured on a CPU
at smoke's width 8, N = 8..256: Euler's local slopes about -1 with ReLU, but Heun's from -2.7 to +0.3, its
error rising from 128 to 256; with softplus Euler's steepen from -0.5 towards -1 and Heun's are -3.0).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

SCHEMES = ("euler", "heun")
ACTIVATIONS = {"relu": torch.relu, "softplus": nn.functional.softplus}


class Residual(nn.Module):
    """f(x) = conv(sigma(conv(x))), the residual function of one block; sigma one of ``ACTIVATIONS``."""

    def __init__(self, width: int, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(ACTIVATIONS[self.activation](self.conv1(x)))


class ResidualStage(nn.Module):
    """N residual blocks x_{n+1} = x_n + h * Phi(f_n, x_n), h = 1/N, Phi the scheme's increment."""

    def __init__(self, blocks: list[Residual], scheme: str = "euler"):
        super().__init__()
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
        self.blocks = nn.ModuleList(blocks)
        self.scheme = scheme

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def h(self) -> float:
        return 1.0 / self.depth

    def increment(self, n: int, x: torch.Tensor, h: float) -> torch.Tensor:
        """The scheme's update of block n with step h (h < 0 runs the scheme backwards in time)."""
        f = self.blocks[n]
        k1 = f(x)
        if self.scheme == "euler":
            return h * k1
        return 0.5 * h * (k1 + f(x + h * k1))

    def step(self, n: int, x: torch.Tensor) -> torch.Tensor:
        return x + self.increment(n, x, self.h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for n in range(self.depth):
            x = self.step(n, x)
        return x

    def untied(self) -> ResidualStage:
        """A copy in which every block owns its parameters (tied blocks share one module)."""
        return ResidualStage([copy.deepcopy(b) for b in self.blocks], self.scheme)


class Net(nn.Module):
    """stem (stride-2 convs) -> deep stage -> global average pool -> linear."""

    def __init__(self, in_channels: int, width: int, downsample: int, classes: int, stage: ResidualStage):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(downsample):
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU()]
            channels = width
        self.stem = nn.Sequential(*layers)
        self.stage = stage
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage(self.stem(x)))

    @classmethod
    def tied(
        cls, in_channels: int, width: int, downsample: int, classes: int, depth: int, activation: str = "relu"
    ) -> Net:
        block = Residual(width, activation)
        return cls(in_channels, width, downsample, classes, ResidualStage([block] * depth))

    def with_stage(self, depth: int, scheme: str) -> Net:
        """A copy whose stage has ``depth`` untied copies of the (tied) block, run by ``scheme``."""
        block = self.stage.blocks[0]
        net = copy.deepcopy(self)
        net.stage = ResidualStage([block] * depth, scheme).untied()
        return net
