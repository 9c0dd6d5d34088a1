"""Distances between the particles x_1..x_n and the target samples y_1..y_m (uniform weights a, b).

- Debiased Sinkhorn divergence (Feydy et al. 2019; geomloss' ``SamplesLoss("sinkhorn", p=2)``, the paper's
  metric with ``blur`` 0.001 and ``scaling`` 0.95), cost C(x, y) = |x - y|^2 / 2, epsilon = blur^2:

      OT_eps(a, b) = max_{f, g} <a, f> + <b, g> - eps <a x b, exp((f + g - C) / eps) - 1>
      S_eps(a, b)  = OT_eps(a, b) - OT_eps(a, a) / 2 - OT_eps(b, b) / 2

  solved in the log domain by symmetric Sinkhorn iterations with epsilon-scaling (epsilon annealed
  geometrically from diameter^2 to blur^2 by scaling^2, one averaged update per epsilon, then a final
  extrapolation):

      f_i <- -eps log sum_j b_j exp((g_j - C_ij) / eps),   g_j <- -eps log sum_i a_i exp((f_i - C_ij) / eps)

  and S_eps = <a, f_ab - f_aa> + <b, g_ab - g_bb> at the fixed point (f_aa, g_bb: the symmetric problems'
  potentials).
- MMD with a sum of Gaussian kernels k(x, y) = sum_s exp(-|x - y|^2 / (2 s^2)), s = m * {1/8, 1/4, 1/2, 1, 2},
  m the median pairwise distance of the target (fixed per case), as a V-statistic:
  MMD = sqrt(E k(x, x') + E k(y, y') - 2 E k(x, y)).
- Energy distance 2 E|x - y| - E|x - x'| - E|y - y'| (V-statistic).
- Mode coverage: a mode is covered when at least ``min_fraction`` of its fair share n / modes of particles
  lies within ``radius`` of its centre.
"""

from __future__ import annotations

import math

import torch

BANDWIDTH_FACTORS = (0.125, 0.25, 0.5, 1.0, 2.0)


def _softmin(eps: float, cost: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """-eps log sum_j exp(h_j - C_ij / eps), row-wise, batched over the leading dimension."""
    return -eps * torch.logsumexp(h[:, None, :] - cost / eps, dim=2)


def _eps_schedule(diameter: float, blur: float, scaling: float) -> list[float]:
    """Annealed epsilons (p = 2): diameter^2, then geometric steps of scaling^2 down to blur^2."""
    start, stop, step = 2 * math.log(diameter), 2 * math.log(blur), 2 * math.log(scaling)
    n = max(int(math.ceil((stop - start) / step)), 0)
    return [diameter**2] + [math.exp(start + k * step) for k in range(n)] + [blur**2]


def _padded(u: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``u`` padded with zeros to ``size`` and their log-weights (uniform, -inf on the padding)."""
    logw = torch.full((size,), -math.inf, dtype=u.dtype, device=u.device)
    logw[: len(u)] = -math.log(len(u))
    return torch.cat([u, u.new_zeros(size - len(u), u.shape[1])]), logw


@torch.no_grad()
def sinkhorn_divergence(x: torch.Tensor, y: torch.Tensor, blur: float = 1e-3, scaling: float = 0.95) -> float:
    """Debiased entropic OT S_eps between the uniform empirical measures of ``x`` (n, d) and ``y`` (m, d).

    The four problems (x-y rows, y-x rows, x-x, y-y) run as one batch, padded to a common size with zero
    weights.
    """
    x, y = x.double().flatten(1), y.double().flatten(1)
    size = max(len(x), len(y))
    (xp, a_log), (yp, b_log) = _padded(x, size), _padded(y, size)
    c_xy = torch.cdist(xp, yp).square_() / 2
    cost = torch.stack([c_xy, c_xy.T, torch.cdist(xp, xp).square_() / 2, torch.cdist(yp, yp).square_() / 2])
    col_logw = torch.stack([b_log, a_log, a_log, b_log])  # problem k: columns' weights
    col_of = [1, 0, 2, 3]  # problem k's column potential: (f_ab, g_ab, f_aa, g_bb)[col_of[k]]
    both = torch.cat([x, y])
    diameter = max(float((both.max(0).values - both.min(0).values).norm()), blur)
    schedule = _eps_schedule(diameter, blur, scaling)
    pot = _softmin(schedule[0], cost, col_logw)  # (f_ab, g_ab, f_aa, g_bb) with zero potentials
    for eps in schedule:
        pot = (pot + _softmin(eps, cost, col_logw + pot[col_of] / eps)) / 2
    pot = _softmin(eps, cost, col_logw + pot[col_of] / eps)  # final extrapolation, without averaging
    a, b = a_log.exp(), b_log.exp()
    return float((a * (pot[0] - pot[2])).sum() + (b * (pot[1] - pot[3])).sum())


def median_distance(y: torch.Tensor) -> float:
    """Median pairwise distance of the rows of ``y`` (the MMD's bandwidth scale)."""
    y = y.double().flatten(1)
    d = torch.cdist(y, y)
    return float(d[torch.triu_indices(len(y), len(y), 1, device=y.device).unbind()].median())


@torch.no_grad()
def mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """MMD with the Gaussian mixture kernel of bandwidths ``bandwidth`` x BANDWIDTH_FACTORS."""
    x, y = x.double().flatten(1), y.double().flatten(1)

    def k(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(u, v).square_()
        return sum(torch.exp(-d2 / (2 * (s * bandwidth) ** 2)).mean() for s in BANDWIDTH_FACTORS)

    return math.sqrt(max(float(k(x, x) + k(y, y) - 2 * k(x, y)), 0.0))


@torch.no_grad()
def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """2 E|x - y| - E|x - x'| - E|y - y'|."""
    x, y = x.double().flatten(1), y.double().flatten(1)
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


@torch.no_grad()
def modes_covered(x: torch.Tensor, centers: torch.Tensor, radius: float, min_fraction: float) -> tuple[int, float]:
    """(number of covered modes, fraction of particles within ``radius`` of some mode)."""
    d = torch.cdist(x.double(), centers.double())
    near = d <= radius
    counts = near.sum(0)
    needed = max(1.0, min_fraction * len(x) / len(centers))
    return int((counts >= needed).sum()), float(near.any(1).double().mean())
