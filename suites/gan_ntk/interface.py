"""What a discriminator-dynamics implementation provides.

At every generator iteration the protocol hands the current particles (fake samples) and the target samples
(real) to ``fit``, which trains the discriminator f for a time ``tau`` from its initialisation (the paper's
infinite-width analysis: kernel gradient descent with the network's NTK; finite nets: gradient descent on
their parameters with the discriminator reset each iteration). ``field`` then gives the particles' velocity
v(x) = -grad_x l_gen(f(x)) anywhere (for the update x <- x + eta v(x) and for the page's vector-field plot),
and ``kernel`` the tangent kernel the discriminator is trained with.

What the task hands a method: ``setup(spec)`` first (a ``DiscriminatorSpec``, below); then, per generator
iteration, ``fit(fake, real)`` with the current particles and the target samples and ``field(points)`` at the
particles (``witness_gradient`` does both), and ``field`` on a grid for the page's plot. Tensors are rows of
points, (n, d), in the case's dtype (float32 at the shipped scales; float64 in ``ntk_accuracy``) and on its
device; d is 2 for the 2-D sets, 784 for Fashion-MNIST. ``kernel`` is called on the first training set (checked
positive semi-definite and timed as the phase ``kernel``), and, in ``ntk_accuracy`` cases, on a fixed set of points
after each ``setup`` of a new random network (its ``seed`` differs). Helpers: ``suites.gan_ntk.kernels`` (the
analytic ``relu_ntk``, a finite ``ReLUMLP``, ``empirical_ntk``) and ``suites.gan_ntk.losses`` (each loss's
``generator_loss``, ``discriminator_loss``, ``point_slopes``). An example: ``examples/gan_ntk/``.
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
    steps), input dimension, and the seed of its random initialisations.

    ``arch`` (``suites.gan_ntk.kernels.Architecture``): ``depth`` hidden ReLU layers of ``width`` units (the width
    matters to finite nets only), weight and bias scales ``sigma_w``, ``sigma_b`` and the readout's bias scale
    ``sigma_b_out``, in the NTK parametrisation; ``in_dim``: d, the points' dimension; ``seed``: for a method's own
    random draws (a finite net's initialisation), so that a case is reproducible."""

    arch: Architecture
    tau: float
    lr: float
    in_dim: int
    seed: int = 0


class DiscriminatorDynamics(ABC):
    """A discriminator trained on (fake, real) samples for each generator step. ``loss`` names the GAN loss
    (``suites.gan_ntk.losses.LOSSES``: ``ipm``, ``lsgan`` or ``vanilla``), which decides the checks the case
    gets; ``setup`` keeps the case's spec as ``self.spec``."""

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
