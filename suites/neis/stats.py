"""Statistics of n independent estimates Z_hat_i of Z, relative to the exact Z, from their logs.

r_i = Z_hat_i / Z = exp(log Z_hat_i - log Z) (float64):
- relative variance per sample Var(Z_hat)/Z^2 = the sample variance of r;
- relative mean-squared error per sample E[(Z_hat - Z)^2]/Z^2 = mean((r - 1)^2);
- the z-score of the mean, (mean(r) - 1) / (std(r) / sqrt(n)): an unbiased estimator's mean lies within 3 standard
  errors of Z except with probability ~0.3%. A heavy-tailed estimator whose rare large weights the n samples
  missed shows a mean many "standard errors" below Z: its empirical variance is then not to be trusted.
At equal cost C (in U1 evaluations), an estimator costing c per sample averages C / c samples: its relative
variance is rel_var * c / C, so estimators compare by rel_var * c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Estimates:
    mean: float  # mean of Z_hat / Z
    rel_var: float
    rel_mse: float
    z_score: float
    n: int

    @classmethod
    def of(cls, log_z_hat: torch.Tensor, log_z: float) -> Estimates:
        r = torch.exp(log_z_hat.detach().double().cpu() - log_z)
        n = r.numel()
        mean, var = float(r.mean()), float(r.var()) if n > 1 else math.inf
        se = math.sqrt(var / n)
        z = (mean - 1) / se if se > 0 else (0.0 if mean == 1 else math.inf)
        return cls(mean, var, float(((r - 1) ** 2).mean()), z, n)
