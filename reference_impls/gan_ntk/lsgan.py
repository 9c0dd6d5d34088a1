"""Infinite-width LSGAN discriminator (Franceschi et al. 2022, section 4.2): closed form, eigendecomposition.

With l_z(f) = (f - c_z)^2 (c = -1 fake, +1 real) the flow is linear, da/dt = -2 W (K a - c). With the
eigendecomposition of the symmetric PSD matrix M = W^{1/2} K W^{1/2} = U diag(lambda) U^T,

    a_tau = W^{1/2} U diag(phi(lambda)) U^T W^{1/2} c,      phi(lambda) = (1 - exp(-2 lambda tau)) / lambda

(phi(0) = 2 tau), i.e. f_tau(z) = (I - exp(-2 K W tau)) c on the training points: the matrix exponential of
the kernel regression's gradient flow.
"""

import torch

from ctbench import Manifest
from reference_impls.gan_ntk._kernel_flow import KernelFlow


class LSGAN(KernelFlow):
    loss = "lsgan"
    manifest = Manifest(
        name="lsgan",
        authors=("ctbench", "after Franceschi et al. 2022"),
        url="https://arxiv.org/abs/2106.05566",
        description="infinite-width ReLU NTK discriminator, LSGAN loss, closed form via eigendecomposition",
    )

    def coefficients(self, z: torch.Tensor, w: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
        tau = self.spec.tau
        root = w.sqrt()
        lam, u = torch.linalg.eigh(root[:, None] * self.kernel(z, z) * root[None, :])
        lam = lam.clamp_min(0.0)  # rounding below zero; a truly indefinite kernel is refused by the protocol
        phi = torch.where(lam > 0, -torch.expm1(-2 * tau * lam) / lam.clamp_min(torch.finfo(lam.dtype).tiny), 2 * tau)
        c = torch.where(is_real, 1.0, -1.0).to(w.dtype)
        return root * (u @ (phi * (u.T @ (root * c))))
