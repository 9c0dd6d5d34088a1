"""The paper's targets Z1 = int exp(-U1(x)) dx, each with its exact log Z1, and the base N(0, I).

Base (Cao & Vanden-Eijnden 2022, section 5): U0(x) = |x|^2 / 2 + (d / 2) log(2 pi), so Z0 = 1 and
exp(-U0) = rho0 is the standard normal density.

Gaussian mixtures: exp(-U1(x)) = sum_k w_k exp(-(x - m_k)^T S_k^{-1} (x - m_k) / 2) (2 pi)^{-d/2}, S_k diagonal,
so Z1 = sum_k w_k sqrt(det S_k) in closed form, and so is vanilla importance sampling's second moment
E_0[(exp(-U1)/rho0)^2] = sum_jk c_j c_k int N_j N_k / N_0 (c_k = w_k sqrt(det S_k)), which is finite when
1/S_j + 1/S_k > 1 in every coordinate:

- eg1: 2-D, modes (5, 0) and (0, -5), variance 0.1, weights 0.2 / 0.8 (the paper's example 1);
- eg2: 10-D, 4 equally weighted modes on the circle of radius 5 in (x1, x2), variance 0.1 in x1, x2 and 0.5 in
  the other coordinates (example 2);
- gmm_d{2,10,20,50}: the scaling family, two modes (5, 0, ...) and (0, -5, ...), weights 0.2 / 0.8, variance 0.5
  in every coordinate, so the same problem grows only by its dimension.

Neal's funnel (example 3), 10-D, sigma_f = 3, restricted to the ball |x| <= 25: x1 ~ N(0, sigma_f^2),
x_i | x1 ~ N(0, e^{x1}); U1 = +inf outside the ball. Z1 = P(|X| <= 25) = int N(x1; 0, sigma_f^2)
F_{chi2(d-1)}((25^2 - x1^2) e^{-x1}) dx1, a 1-D integral computed by adaptive quadrature (error < 1e-10).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor
LOG_2PI = math.log(2 * math.pi)


def base_potential(x: Tensor) -> Tensor:
    """U0(x) = |x|^2 / 2 + (d / 2) log(2 pi): the standard normal, Z0 = 1."""
    return 0.5 * (x * x).sum(-1) + 0.5 * x.shape[-1] * LOG_2PI


@dataclass(frozen=True)
class Target:
    """A potential U1 on R^d with its exact log Z1; ``potential`` is +inf outside ``support_radius``."""

    name: str
    dim: int
    log_z: float
    potential: Callable[[Tensor], Tensor]
    dataset: str
    support_radius: float | None = None
    vanilla_rel_var: float | None = None  # exact Var(Z_hat)/Z1^2 of one vanilla IS sample, where closed-form

    def in_support(self, x: Tensor) -> Tensor:
        if self.support_radius is None:
            return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
        return (x * x).sum(-1) <= self.support_radius**2


@dataclass(frozen=True)
class GaussianMixture:
    """sum_k w_k exp(-(x - m_k)^T S_k^{-1} (x - m_k) / 2) (2 pi)^{-d/2}, diagonal S_k (``variances``)."""

    means: Tensor  # [K, d]
    variances: Tensor  # [K, d]
    weights: Tensor  # [K]

    def potential(self, x: Tensor) -> Tensor:
        m, v = self.means.to(x), self.variances.to(x)
        q = (((x[..., None, :] - m) ** 2) / v).sum(-1)  # [..., K]
        return -torch.logsumexp(self.weights.to(x).log() - 0.5 * q, -1) + 0.5 * x.shape[-1] * LOG_2PI

    def _log_c(self) -> Tensor:
        return self.weights.double().log() + 0.5 * self.variances.double().log().sum(-1)

    def log_z(self) -> float:
        return float(torch.logsumexp(self._log_c(), 0))

    def vanilla_rel_var(self) -> float:
        """E_0[(e^{-U1}/rho0)^2] / Z1^2 - 1, from int N(m1, v1) N(m2, v2) / N(0, 1) per coordinate."""
        m, v = self.means.double(), self.variances.double()
        m1, v1, m2, v2 = m[:, None], v[:, None], m[None], v[None]
        a = 1 / v1 + 1 / v2 - 1
        if bool((a <= 0).any()):
            return math.inf
        b = m1 / v1 + m2 / v2
        log_int = (-0.5 * (v1.log() + v2.log() + a.log()) + b**2 / (2 * a) - (m1**2 / v1 + m2**2 / v2) / 2).sum(-1)
        log_c = self._log_c()
        log_m2 = torch.logsumexp((log_c[:, None] + log_c[None] + log_int).flatten(), 0)
        return math.expm1(float(log_m2 - 2 * torch.logsumexp(log_c, 0)))

    def target(self, name: str, dataset: str) -> Target:
        dim = self.means.shape[1]
        return Target(name, dim, self.log_z(), self.potential, dataset, None, self.vanilla_rel_var())


def two_modes(dim: int, variance_plane: float, variance_rest: float) -> GaussianMixture:
    """Modes (5, 0, 0...) and (0, -5, 0...), weights 0.2 / 0.8."""
    means = torch.zeros(2, dim, dtype=torch.float64)
    means[0, 0], means[1, 1] = 5.0, -5.0
    variances = torch.full((2, dim), variance_rest, dtype=torch.float64)
    variances[:, :2] = variance_plane
    return GaussianMixture(means, variances, torch.tensor([0.2, 0.8], dtype=torch.float64))


def circle_modes(dim: int, modes: int = 4, radius: float = 5.0) -> GaussianMixture:
    """``modes`` equal modes on the circle of radius 5 in (x1, x2); variance 0.1 there, 0.5 elsewhere."""
    angle = torch.arange(1, modes + 1, dtype=torch.float64) * (2 * math.pi / modes)
    means = torch.zeros(modes, dim, dtype=torch.float64)
    means[:, 0], means[:, 1] = radius * angle.cos(), radius * angle.sin()
    variances = torch.full((modes, dim), 0.5, dtype=torch.float64)
    variances[:, :2] = 0.1
    return GaussianMixture(means, variances, torch.full((modes,), 1 / modes, dtype=torch.float64))


@dataclass(frozen=True)
class Funnel:
    """Neal's funnel: x1 ~ N(0, sigma^2), x_i | x1 ~ N(0, e^{x1}) (i >= 2), restricted to |x| <= radius."""

    dim: int = 10
    sigma: float = 3.0
    radius: float = 25.0

    def potential(self, x: Tensor) -> Tensor:
        inside = (x * x).sum(-1) <= self.radius**2
        safe = torch.where(inside[..., None], x, torch.zeros_like(x))  # no inf/NaN (nor their gradients) outside
        x1, rest = safe[..., 0], safe[..., 1:]
        u = (
            0.5 * x1**2 / self.sigma**2
            + 0.5 * math.log(2 * math.pi * self.sigma**2)
            + 0.5 * (rest * rest).sum(-1) * torch.exp(-x1)
            + 0.5 * (self.dim - 1) * (x1 + LOG_2PI)
        )
        return torch.where(inside, u, torch.full_like(u, math.inf))

    def log_z(self) -> float:
        """log P(|X| <= radius) by adaptive quadrature over x1 of the chi-square CDF of |x_{2:d}|^2 e^{-x1}."""
        from scipy import integrate, stats

        def integrand(x1: float) -> float:
            inner = stats.chi2.cdf((self.radius**2 - x1**2) * math.exp(-x1), self.dim - 1)
            return stats.norm.pdf(x1, scale=self.sigma) * inner

        r = self.radius
        value, err = integrate.quad(integrand, -r, r, points=[0.0], limit=500, epsabs=1e-13, epsrel=1e-12)
        if err > 1e-10:
            raise ArithmeticError(f"funnel log Z: quadrature error {err:.1e} above 1e-10")
        return math.log(value)

    def target(self, name: str, dataset: str) -> Target:
        return Target(name, self.dim, self.log_z(), self.potential, dataset, self.radius, None)


GMM_DIMS = (2, 10, 20, 50)
NAMES = ("eg1", "eg2", "eg3", *(f"gmm_d{d}" for d in GMM_DIMS))


def make_target(name: str) -> Target:
    """The target called ``name`` (one of ``NAMES``)."""
    if name == "eg1":
        return two_modes(2, 0.1, 0.1).target(name, "eg1-gmm2-d2")
    if name == "eg2":
        return circle_modes(10).target(name, "eg2-gmm4-d10")
    if name == "eg3":
        return Funnel().target(name, "eg3-funnel-d10-ball25")
    if name.startswith("gmm_d") and name[5:].isdigit() and int(name[5:]) in GMM_DIMS:
        dim = int(name[5:])
        return two_modes(dim, 0.5, 0.5).target(name, f"gmm2-d{dim}")
    raise ValueError(f"unknown neis target {name!r}; valid: {', '.join(NAMES)}")
