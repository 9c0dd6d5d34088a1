"""The infinite-width discriminator: kernel gradient flow of the GAN loss with the ReLU network's NTK.

On the training points z = (x_1..x_n fake, y_1..y_m real) with weights w_z = 1/n (fake) or 1/m (real),
gradient descent in the NTK regime moves the discriminator function by (Franceschi et al. 2022, eq. 5)

    d f_t(.) / dt = - sum_z k(., z) w_z l_z'(f_t(z)),        f_0 = 0,

so f_t = k(., z) a_t stays a kernel expansion on z, with da/dt = -W l'(K a), a_0 = 0 (K = k(z, z), W = diag
w). Subclasses give a_tau (closed form, or an ODE solve); ``field`` differentiates l_gen(k(x, z) a_tau) in x
by autograd (the centres z are constants: the paper's stop-gradient on the training samples).
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from suites.gan_ntk.interface import DiscriminatorDynamics
from suites.gan_ntk.kernels import relu_ntk
from suites.gan_ntk.losses import generator_loss, point_slopes


def training_set(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, w, is_real): the stacked points, their loss weights 1/n or 1/m, and which are real."""
    z = torch.cat([fake, real]).detach()
    w = torch.cat([fake.new_full((len(fake),), 1 / len(fake)), real.new_full((len(real),), 1 / len(real))])
    is_real = torch.cat([torch.zeros(len(fake), dtype=torch.bool), torch.ones(len(real), dtype=torch.bool)])
    return z, w, is_real.to(z.device)


def ode_coefficients(
    loss: str, k: torch.Tensor, w: torch.Tensor, is_real: torch.Tensor, tau: float, rtol: float | None = None
) -> torch.Tensor:
    """a_tau of da/dt = -W l'(K a), a_0 = 0, by torchdiffeq's adaptive dopri5 (any loss); relative tolerance
    ``rtol`` (default max(1e-7, 100 x the dtype's epsilon)), absolute rtol / 100."""
    from torchdiffeq import odeint

    if rtol is None:
        rtol = max(1e-7, 100 * torch.finfo(k.dtype).eps)

    def rhs(t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return -w * point_slopes(loss, k @ a, is_real)

    t = torch.tensor([0.0, tau], dtype=k.dtype, device=k.device)
    return odeint(rhs, torch.zeros_like(w), t, method="dopri5", rtol=rtol, atol=rtol * 1e-2)[-1]


class KernelFlow(DiscriminatorDynamics):
    """Infinite-width discriminator f = k(., z) a_tau with the analytic ReLU NTK of ``spec.arch``."""

    def kernel(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return relu_ntk(x, y, self.spec.arch)

    @abstractmethod
    def coefficients(self, z: torch.Tensor, w: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
        """a_tau for the training points z (closed form or ODE)."""

    def fit(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        z, w, is_real = training_set(fake, real)
        with torch.no_grad():
            self.coef = self.coefficients(z, w, is_real)
        self.centers = z

    def field(self, points: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = points.detach().requires_grad_(True)
            f = self.kernel(x, self.centers) @ self.coef
            (grad,) = torch.autograd.grad(generator_loss(self.loss, f).sum(), x)
        return -grad
