"""Infinite-width IPM discriminator (Franceschi et al. 2022, section 4.1): a closed form, the MMD witness.

With l_fake(f) = f, l_real(f) = -f the flow's slope is constant, so a_tau = -tau W s (s = +1 fake, -1 real):

    f_tau(x) = tau [ mean_j k(x, y_j) - mean_i k(x, x_i) ],

the witness function of the MMD with the NTK; particles move along grad_x f_tau. No kernel matrix on the
training set is needed: one (n_eval, n + m) kernel block per evaluation.
"""

import torch

from ctbench import Manifest
from reference_impls.gan_ntk._kernel_flow import KernelFlow


class IPM(KernelFlow):
    loss = "ipm"
    manifest = Manifest(
        name="ipm",
        authors=("ctbench", "after Franceschi et al. 2022"),
        url="https://arxiv.org/abs/2106.05566",
        description="infinite-width ReLU NTK discriminator, IPM loss, closed-form witness",
    )

    def coefficients(self, z: torch.Tensor, w: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
        return self.spec.tau * torch.where(is_real, w, -w)
