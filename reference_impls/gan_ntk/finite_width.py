"""A finite ReLU discriminator trained by gradient descent (the paper's ``relu``: 3 x 128, bias std 1, NTK
parametrisation; GAN(TK)^2's ``ipm_reset`` configuration).

At every generator step the network is re-drawn and made antisymmetric,

    f(x) = (g(theta_1, x) - g(theta_2, x)) / sqrt(2),     theta_1 = theta_2 at initialisation,

so f_0 = 0 while its NTK is g's (Franceschi et al. 2022, app. B). It is then trained by tau / lr steps of
plain gradient descent with step lr on the IPM loss L_D = mean f(x) - mean f(y): the finite-width
counterpart of ``ipm``'s kernel flow for time tau. The two copies run as one batched network. ``kernel`` is
the empirical NTK of g at its initialisation, by ``torch.func``.
"""

import math

import torch

from ctbench import Manifest
from suites.gan_ntk.interface import DiscriminatorDynamics, DiscriminatorSpec
from suites.gan_ntk.kernels import ReLUMLP, empirical_ntk, mlp_forward
from suites.gan_ntk.losses import discriminator_loss, generator_loss


class FiniteWidth(DiscriminatorDynamics):
    loss = "ipm"
    manifest = Manifest(
        name="finite_width",
        authors=("ctbench", "after Franceschi et al. 2022"),
        url="https://arxiv.org/abs/2106.05566",
        description="finite ReLU MLP discriminator trained by gradient descent (IPM loss, reset each step)",
    )

    def setup(self, spec: DiscriminatorSpec) -> None:
        super().setup(spec)
        self.generator = torch.Generator().manual_seed(spec.seed)
        self.steps = max(1, round(spec.tau / spec.lr))
        self.net: ReLUMLP | None = None

    def _draw(self, like: torch.Tensor) -> ReLUMLP:
        return ReLUMLP(self.spec.in_dim, self.spec.arch, self.generator, dtype=like.dtype).to(like.device)

    def _f(self, x: torch.Tensor) -> torch.Tensor:
        pair = mlp_forward(self.weights, self.biases, x, self.spec.arch)  # (2, n)
        return (pair[0] - pair[1]) / math.sqrt(2)

    def fit(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        self.net = self._draw(fake)
        self.weights = [torch.stack([w.detach()] * 2).requires_grad_(True) for w in self.net.weights]
        self.biases = [torch.stack([b.detach()] * 2).requires_grad_(True) for b in self.net.biases]
        params = self.weights + self.biases
        fake, real = fake.detach(), real.detach()
        for _ in range(self.steps):
            with torch.enable_grad():
                grads = torch.autograd.grad(discriminator_loss(self.loss, self._f(fake), self._f(real)), params)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p.sub_(self.spec.lr * g)

    def field(self, points: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = points.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(generator_loss(self.loss, self._f(x)).sum(), x)
        return -grad

    def kernel(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.net is None or self.net.weights[0].dtype != x.dtype:
            self.net = self._draw(x)
        return empirical_ntk(self.net, x, y)
