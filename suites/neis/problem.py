"""What an estimator sees of a target: U0, a counted and validated U1, the base sampler; never the exact Z.

Cost is measured, not estimated: every call of ``Problem.U1`` adds the number of points it evaluated to
``Counter.values``, and every gradient of U1 that autograd computes (a backward pass or ``torch.autograd.grad``
reaching U1's input) adds its number of points to ``Counter.gradients``, through a hook on U1's input. The cost
unit of the paper's comparison with AIS is one evaluation of U1 or of its gradient at one point.

A potential that returns NaN, -inf, or +inf inside its support is bad input: ``NonFinitePotential`` says how
many points and where, instead of letting a NaN reach the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from suites.neis.targets import Target, base_potential

Tensor = torch.Tensor
SHOWN = 3  # offending points quoted in an error


class NonFinitePotential(FloatingPointError):
    """The target's potential returned NaN or inf where it must be finite."""


@dataclass
class Counter:
    values: int = 0
    gradients: int = 0

    @property
    def total(self) -> int:
        return self.values + self.gradients

    def reset(self) -> None:
        self.values = self.gradients = 0


class Problem:
    """The integral Z1 = int exp(-U1) on R^``dim``, with base rho0 = N(0, I) = exp(-U0)."""

    def __init__(self, target: Target, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self._target = target  # private: an estimator sees U1, never the exact Z
        self.name = target.name
        self.dim = target.dim
        self.device = torch.device(device)
        self.dtype = dtype
        self.counter = Counter()

    def sample_base(self, n: int) -> Tensor:
        return torch.randn(n, self.dim, device=self.device, dtype=self.dtype)

    @staticmethod
    def U0(x: Tensor) -> Tensor:
        return base_potential(x)

    def U1(self, x: Tensor, where: str = "") -> Tensor:
        """U1 at the rows of ``x`` (any leading shape), counted; +inf outside the support, else finite."""
        if x.requires_grad:
            x = x.view_as(x)  # a node of its own: its hook fires only for U1's gradient
            npoints = math.prod(x.shape[:-1])
            x.register_hook(lambda g: self._count_gradients(npoints))
        u = self._target.potential(x)
        self.counter.values += math.prod(x.shape[:-1])
        inside = self._target.in_support(x)
        bad = torch.isnan(u) | (inside & ~torch.isfinite(u)) | (u == -math.inf)
        if bool(bad.any()):
            raise self._error(x.detach(), u.detach(), bad, where)
        return u

    def _count_gradients(self, npoints: int) -> None:
        self.counter.gradients += npoints

    def _error(self, x: Tensor, u: Tensor, bad: Tensor, where: str) -> NonFinitePotential:
        flat_x, flat_u, flat_bad = x.reshape(-1, x.shape[-1]), u.reshape(-1), bad.reshape(-1)
        idx = flat_bad.nonzero().flatten()
        shown = "; ".join(
            f"point {int(i)}: U1={float(flat_u[i])} at x=[{', '.join(f'{v:.3g}' for v in flat_x[i, :4].tolist())}"
            f"{', ...' if x.shape[-1] > 4 else ''}]"
            for i in idx[:SHOWN]
        )
        context = f" ({where})" if where else ""
        return NonFinitePotential(
            f"target {self.name!r}: the potential U1 returned NaN or inf at {len(idx)} of {flat_bad.numel()} points"
            f"{context} where it must be finite; {shown}"
        )


@torch.no_grad()
def vanilla_log_weights(problem: Problem, n: int, chunk: int) -> Tensor:
    """log of exp(-U1(x)) / rho0(x) = U0(x) - U1(x) for ``n`` points x ~ N(0, I): vanilla IS, Z0 = 1."""
    out = []
    for i in range(0, n, chunk):
        x = problem.sample_base(min(chunk, n - i))
        out.append(problem.U0(x) - problem.U1(x, where="vanilla IS samples from N(0, I)"))
    return torch.cat(out)
