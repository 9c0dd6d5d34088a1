"""SOBA: StOchastic Bilevel Algorithm (Dagreou, Ablin, Vaiter, Moreau, NeurIPS 2022).

z, v and x move together along unbiased minibatch estimates of the framework's directions D_z, D_v, D_x:
    z <- z - rho_t D_z,   v <- v - rho_t D_v,   x <- x - gamma_t D_x,
with decreasing steps rho_t = rho / t^(2/5), gamma_t = rho / (r t^(3/5)) (the schedule of the paper's analysis; r the
outer ratio). Defaults: the paper's tuned values (IJCNN1: rho = 4; hyper-cleaning p = 0.5: rho = 3.16, r = 1e-3).
On ``quadratic-benchopt`` the exponents are benchopt's solver's, 1/2 and 1/2 (hyperparameter ``exponents``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ctbench import Manifest
from reference_impls.bilevel._common import Iterates, minibatch_directions, schedule
from suites.bilevel.interface import Directions
from suites.bilevel.problem import BilevelProblem


class SOBA(Iterates):
    manifest = Manifest(
        name="soba",
        authors=("Mathieu Dagreou", "Pierre Ablin", "Samuel Vaiter", "Thomas Moreau"),
        url="https://arxiv.org/abs/2201.13409",
        description="single-loop SGD on (z, v, x), decreasing steps",
    )
    defaults = {
        "quadratic": {"step_size": 0.1, "outer_ratio": 1.0},
        "hyperparam": {"step_size": 4.0, "outer_ratio": 1.0},
        "datacleaning": {"step_size": 3.16, "outer_ratio": 1e-3},
        "quadratic-benchopt": {"step_size": 0.1, "outer_ratio": 1.0, "exponents": (0.5, 0.5)},
    }
    exponents = (0.4, 0.6)  # of rho_t and gamma_t, unless the problem's defaults say otherwise

    def init(self, problem: BilevelProblem, batch_size: int, seed: int) -> dict[str, Any]:
        hp = super().init(problem, batch_size, seed)
        self.exponents = tuple(hp.get("exponents", type(self).exponents))
        return hp

    def directions(self, inner_idx: Tensor, outer_idx: Tensor) -> Directions:
        return minibatch_directions(self.problem, self.z, self.v, self.x, inner_idx, outer_idx)

    def step(self) -> None:
        self.t += 1
        rho, gamma = (schedule(s, self.t, e) for s, e in zip((self.rho, self.gamma), self.exponents, strict=True))
        d = self.directions(self.draw("inner"), self.draw("outer"))
        self.z -= rho * d.z
        self.v -= rho * d.v
        self.x -= gamma * d.x
