"""The infinite-width IPM discriminator, written as the MMD witness (Franceschi et al. 2022, section 4.1).

Trained for a time tau on the IPM loss in the NTK regime, the discriminator is

    f(x) = tau [ mean_j k(x, real_j) - mean_i k(x, fake_i) ],

with k the ReLU network's NTK (``suites.gan_ntk.kernels.relu_ntk`` for the case's ``spec.arch``). The IPM's
generator loss is -f, so the particles move along v(x) = grad_x f(x), taken here by autograd.
"""

import torch

from ctbench import Manifest
from suites.gan_ntk.interface import DiscriminatorDynamics
from suites.gan_ntk.kernels import relu_ntk


class Witness(DiscriminatorDynamics):
    loss = "ipm"
    manifest = Manifest(name="witness", authors=("ctbench examples",), description="IPM witness, NTK closed form")

    def fit(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        self.fake, self.real = fake.detach(), real.detach()

    def field(self, points: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = points.detach().requires_grad_(True)
            f = self.spec.tau * (self.kernel(x, self.real).mean(1) - self.kernel(x, self.fake).mean(1))
            (grad,) = torch.autograd.grad(f.sum(), x)
        return grad

    def kernel(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return relu_ntk(x, y, self.spec.arch)
