"""2-D densities with a known log-density, so a model's test NLL can be set beside the true one.

- ``eight_gaussians``: equal mixture of N(mu_k, 0.35^2 I), mu_k = 2 (cos(k pi/4), sin(k pi/4)), k = 0..7;
- ``two_moons``: t ~ U(0, pi) on one of two half circles (scikit-learn's ``make_moons`` curves, centred and scaled
  by 2) plus N(0, 0.2^2 I) noise; its density is the average of the noise kernel along the curves, computed by the
  midpoint rule with 2,000 nodes per curve (spacing 0.003, far below the noise scale 0.2);
- ``checkerboard``: uniform on 8 of the 16 squares of side 2 tiling [-4, 4]^2 (area 32), log p = -log 32 inside.
"""

from __future__ import annotations

import math

import torch

DATASETS = ("eight_gaussians", "two_moons", "checkerboard")
_STD, _MOON_NOISE, _NODES = 0.35, 0.2, 2000


def _gauss_mixture_logp(x: torch.Tensor, centres: torch.Tensor, std: float, chunk: int = 1024) -> torch.Tensor:
    """log of (1/K) sum_k N(x; c_k, std^2 I), in chunks of rows to bound memory."""
    out = []
    for part in x.split(chunk):
        sq = torch.cdist(part, centres) ** 2
        out.append(torch.logsumexp(-sq / (2 * std**2), 1))
    return torch.cat(out) - math.log(len(centres)) - math.log(2 * math.pi * std**2)


def _eight_centres() -> torch.Tensor:
    angles = torch.arange(8) * math.pi / 4
    return 2 * torch.stack([angles.cos(), angles.sin()], 1)


def _moon_curves(t: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    upper_pt = torch.stack([t.cos(), t.sin()], 1)
    lower_pt = torch.stack([1 - t.cos(), 0.5 - t.sin()], 1)
    return 2 * (torch.where(lower[:, None], lower_pt, upper_pt) - torch.tensor([0.5, 0.25]))


def sample(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` points of dataset ``name``, float32 (N, 2)."""
    if name == "eight_gaussians":
        k = torch.randint(8, (n,), generator=generator)
        return _eight_centres()[k] + _STD * torch.randn(n, 2, generator=generator)
    if name == "two_moons":
        t = math.pi * torch.rand(n, generator=generator)
        lower = torch.rand(n, generator=generator) < 0.5
        return _moon_curves(t, lower) + _MOON_NOISE * torch.randn(n, 2, generator=generator)
    if name == "checkerboard":
        x1 = 4 * torch.rand(n, generator=generator) - 2
        x2 = torch.rand(n, generator=generator) - 2 * torch.randint(2, (n,), generator=generator).float()
        return 2 * torch.stack([x1, x2 + torch.floor(x1) % 2], 1)
    raise ValueError(f"unknown 2-D dataset {name!r}; valid: {', '.join(DATASETS)}")


def log_prob(name: str, x: torch.Tensor) -> torch.Tensor:
    """The true log-density of dataset ``name`` at x (N, 2)."""
    x = x.double()
    if name == "eight_gaussians":
        return _gauss_mixture_logp(x, _eight_centres().double(), _STD)
    if name == "two_moons":
        t = (torch.arange(_NODES, dtype=torch.float64) + 0.5) * math.pi / _NODES
        nodes = torch.cat(
            [
                _moon_curves(t, torch.zeros(_NODES, dtype=torch.bool)),
                _moon_curves(t, torch.ones(_NODES, dtype=torch.bool)),
            ]
        ).double()
        return _gauss_mixture_logp(x, nodes, _MOON_NOISE)
    if name == "checkerboard":
        inside = (x.abs() <= 4).all(1) & ((torch.floor(x[:, 0] / 2) + torch.floor(x[:, 1] / 2)) % 2 == 0)
        return torch.where(inside, -math.log(32.0), -math.inf)
    raise ValueError(f"unknown 2-D dataset {name!r}; valid: {', '.join(DATASETS)}")
