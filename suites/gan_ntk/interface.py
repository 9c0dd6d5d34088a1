"""What a discriminator-dynamics implementation provides.

At every generator iteration the protocol hands the current particles (fake samples) and the target samples
(real) to ``fit``, which trains the discriminator f for a time ``tau`` from its initialisation (the paper's
infinite-width analysis: kernel gradient descent with the network's NTK; finite nets: gradient descent on
their parameters with the discriminator reset each iteration). ``field`` then gives the particles' velocity
v(x) = -grad_x l_gen(f(x)) anywhere (for the update x <- x + eta v(x) and for the page's vector-field plot),
and ``kernel`` the tangent kernel the discriminator is trained with.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from suites.gan_ntk.kernels import Architecture


@dataclass(frozen=True)
class DiscriminatorSpec:
    """The discriminator of a case: architecture, training time ``tau``, GD step ``lr`` (finite nets: tau / lr
    steps), input dimension, and the seed of its random initialisations."""

    arch: Architecture
    tau: float
    lr: float
    in_dim: int
    seed: int = 0


class DiscriminatorDynamics(ABC):
    """A discriminator trained on (fake, real) samples for each generator step. ``loss`` names the GAN loss
    (``suites.gan_ntk.losses.LOSSES``)."""

    loss: ClassVar[str]

    def setup(self, spec: DiscriminatorSpec) -> None:
        """Called once per case (and per random network for kernel cases) before anything else."""
        self.spec = spec

    @abstractmethod
    def fit(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        """Train the discriminator from its initialisation on ``fake`` (n, d) against ``real`` (m, d)."""

    @abstractmethod
    def field(self, points: torch.Tensor) -> torch.Tensor:
        """The particles' velocity -grad_x l_gen(f(x)) of the trained discriminator at ``points`` (k, d)."""

    @abstractmethod
    def kernel(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The discriminator's tangent kernel on all pairs of rows of ``x`` and ``y``: (n, m)."""

    def witness_gradient(self, particles: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Fit on the particles, then the velocity at the particles: one generator step's direction."""
        self.fit(particles, target)
        return self.field(particles)
