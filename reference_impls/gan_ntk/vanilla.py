"""Infinite-width vanilla-GAN discriminator (Franceschi et al. 2022, section 4.2): no closed form, ODE solve.

With l_fake(f) = softplus(f), l_real(f) = softplus(-f) the flow da/dt = -W l'(K a) is nonlinear (l' a
sigmoid); it is integrated on [0, tau] by torchdiffeq's adaptive Dormand-Prince (dopri5), each evaluation one
(n + m)^2 matrix-vector product. Particles descend the non-saturating generator loss -log sigmoid(f(x)).
"""

import torch

from ctbench import Manifest
from reference_impls.gan_ntk._kernel_flow import KernelFlow, ode_coefficients


class Vanilla(KernelFlow):
    loss = "vanilla"
    manifest = Manifest(
        name="vanilla",
        authors=("ctbench", "after Franceschi et al. 2022"),
        url="https://arxiv.org/abs/2106.05566",
        description="infinite-width ReLU NTK discriminator, vanilla GAN loss, flow by torchdiffeq dopri5",
    )

    def coefficients(self, z: torch.Tensor, w: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
        return ode_coefficients(self.loss, self.kernel(z, z), w, is_real, self.spec.tau)
