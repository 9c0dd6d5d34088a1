"""The dequantised logit space the image density flows model.

A flow models y = logit(a + (1 - 2a) x~) of the uniformly dequantised x~ = (255 x + u) / 256, u ~ U(0, 1), for
images x in [0, 1] (Behrmann et al. 2019, following Real NVP, a = 0.05), so

    log p(x~) = log p_flow(y) + sum_i log|dy_i/dx~_i|,   bits/dim = (-log p(x~) + D log 256) / (D log 2),

the second on the 256-level scale of the data (D = C H W).
"""

from __future__ import annotations

import math

import torch


def to_logit(
    x: torch.Tensor, alpha: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, sum_i log|dy_i/dx~_i|) for images x in [0, 1] after uniform dequantisation."""
    noise = torch.rand(x.shape, generator=generator).to(x)
    s = alpha + (1 - 2 * alpha) * (x * 255 + noise) / 256
    y = torch.log(s) - torch.log1p(-s)
    return y, (math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(1)


def bits_per_dim(log_px: torch.Tensor, dim: int) -> torch.Tensor:
    """Bits per dimension on the 256-level scale from log p(x~) of x~ in [0, 1]^D."""
    return (-log_px + dim * math.log(256)) / (dim * math.log(2))
