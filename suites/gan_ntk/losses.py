"""The GAN losses of the task (Franceschi et al. 2022, section 3; GAN(TK)^2's ``losses.py``).

The discriminator f minimises L_D(f) = E_fake l_fake(f(x)) + E_real l_real(f(y)); the particles (generated
samples) then descend the generator loss l_gen(f(x)), i.e. move along v(x) = -grad_x l_gen(f(x)):

    loss      l_fake(f)      l_real(f)       l_gen(f)
    ipm       f              -f              -f              (f is an MMD witness in the NTK regime)
    lsgan     (f + 1)^2      (f - 1)^2       f^2             (labels a = -1, b = 1, c = 0)
    vanilla   softplus(f)    softplus(-f)    softplus(-f)    (non-saturating generator loss, -log sigmoid(f))
"""

from __future__ import annotations

import torch
from torch.nn.functional import softplus

LOSSES = ("ipm", "lsgan", "vanilla")


def _check(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"unknown GAN loss {loss!r}; valid: {', '.join(LOSSES)}")


def point_losses(loss: str, f: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """l_real(f_i) where ``real`` is True, l_fake(f_i) elsewhere (unweighted, one per point)."""
    _check(loss)
    sign = torch.where(real, -1.0, 1.0).to(f.dtype)  # -1 real, +1 fake
    if loss == "ipm":
        return sign * f
    if loss == "lsgan":
        return (f + sign) ** 2
    return softplus(sign * f)


def point_slopes(loss: str, f: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """d l / d f at each point: the derivative of ``point_losses`` (the kernel flow's right-hand side)."""
    _check(loss)
    sign = torch.where(real, -1.0, 1.0).to(f.dtype)
    if loss == "ipm":
        return sign
    if loss == "lsgan":
        return 2 * (f + sign)
    return sign * torch.sigmoid(sign * f)


def discriminator_loss(loss: str, f_fake: torch.Tensor, f_real: torch.Tensor) -> torch.Tensor:
    """L_D = mean l_fake(f(x)) + mean l_real(f(y))."""
    fake = point_losses(loss, f_fake, torch.zeros_like(f_fake, dtype=torch.bool)).mean()
    return fake + point_losses(loss, f_real, torch.ones_like(f_real, dtype=torch.bool)).mean()


def generator_loss(loss: str, f: torch.Tensor) -> torch.Tensor:
    """l_gen(f(x)) per particle."""
    _check(loss)
    if loss == "ipm":
        return -f
    if loss == "lsgan":
        return f**2
    return softplus(-f)
