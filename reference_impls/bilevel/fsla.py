"""FSLA: Fully Single Loop Algorithm (Li, Gu, Huang, "A fully single loop algorithm for bilevel optimization
without Hessian inverse", AAAI 2022).

SOBA's single loop on (z, v, x) with a STORM-type momentum on the outer direction, re-evaluating the previous
state (z', v', x') on the same samples:
    d_t = D_x(z, v, x; B) + (1 - eta_t) (d_{t-1} - D_x(z', v', x'; B)),   x <- x - gamma_t d_t,
z and v take SGD steps along D_z, D_v. Steps decrease as 1/sqrt(t) (rho_t, gamma_t = rho_t / r) with momentum
eta_t = min(1, rho / sqrt(t)), as in benchopt's implementation, whose tuned values are the defaults.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ctbench import Manifest
from reference_impls.bilevel._common import Iterates, minibatch_directions, schedule
from suites.bilevel.interface import Directions
from suites.bilevel.problem import BilevelProblem


class FSLA(Iterates):
    manifest = Manifest(
        name="fsla",
        authors=("Junyi Li", "Bin Gu", "Heng Huang"),
        url="https://arxiv.org/abs/2112.04660",
        description="single loop, STORM momentum on the outer direction",
    )
    defaults = {
        "quadratic": {"step_size": 0.1, "outer_ratio": 1.0},
        "hyperparam": {"step_size": 0.03125, "outer_ratio": 0.01},
        "datacleaning": {"step_size": 1.0, "outer_ratio": 1e-4},
    }

    def init(self, problem: BilevelProblem, batch_size: int, seed: int) -> dict[str, Any]:
        hp = super().init(problem, batch_size, seed)
        self.momentum: Tensor | None = None  # d_{t-1}
        self.previous: tuple[Tensor, Tensor, Tensor] | None = None  # (z', v', x') where d_{t-1} was formed
        return hp

    def directions(self, inner_idx: Tensor, outer_idx: Tensor) -> Directions:
        p = self.problem
        d = minibatch_directions(p, self.z, self.v, self.x, inner_idx, outer_idx)
        if self.momentum is None:
            return d
        z, v, x = self.previous
        old = p.inner_cross(z, x, v, inner_idx) + p.outer_grad(z, x, outer_idx)[1]
        eta = min(1.0, schedule(self.rho, self.t + 1, 0.5))
        return Directions(d.z, d.v, d.x + (1 - eta) * (self.momentum - old))

    def step(self) -> None:
        d = self.directions(self.draw("inner"), self.draw("outer"))
        self.t += 1
        rho, gamma = schedule(self.rho, self.t, 0.5), schedule(self.gamma, self.t, 0.5)
        self.previous = (self.z.clone(), self.v.clone(), self.x.clone())
        self.momentum = d.x
        self.z -= rho * d.z
        self.v -= rho * d.v
        self.x -= gamma * d.x
