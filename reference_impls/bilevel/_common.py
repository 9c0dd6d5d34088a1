"""Pieces shared by the reference bilevel solvers: their iterates, minibatch directions, step-size schedules and
the two-loop scheme."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from suites.bilevel.interface import BilevelSolver, Directions
from suites.bilevel.problem import BilevelProblem


class Once:
    """Which positions of a batch of row indices count when each row is counted once (a row drawn k times carries
    the same change k times): each position writes itself into a scratch entry of its row, and the position that
    reads itself back is the one that counts. No sort, no host synchronisation."""

    def __init__(self, rows: int, device: torch.device):
        self.scratch = torch.empty(rows, dtype=torch.long, device=device)
        self.positions: dict[int, Tensor] = {}  # 0..k-1, per batch length k

    def __call__(self, idx: Tensor) -> Tensor:
        positions = self.positions.get(len(idx))
        if positions is None:
            positions = self.positions[len(idx)] = torch.arange(len(idx), device=idx.device)
        self.scratch.index_copy_(0, idx, positions)
        return self.scratch.index_select(0, idx) == positions


class Iterates(BilevelSolver):
    """The state the stochastic reference solvers share: iterates z (inner), v (linear system) and x (outer)
    started at (z0, 0, x0), steps rho and gamma = rho / outer_ratio, a step counter and the minibatch samplers
    (the problem's ``sampling``, seeded with the case's seed)."""

    def init(self, problem: BilevelProblem, batch_size: int, seed: int) -> dict[str, Any]:
        """Set the shared state up; returns the hyperparameters, for a subclass's own."""
        hp = self.hyperparameters(problem)
        self.problem, self.batch_size, self.t = problem, batch_size, 0
        self.rho, self.gamma = hp["step_size"], hp["step_size"] / hp["outer_ratio"]
        self.gen = torch.Generator(problem.device).manual_seed(seed)
        self.samplers = {which: problem.sampler(which, batch_size, self.gen) for which in ("inner", "outer")}
        self.z, self.x = problem.z0.clone(), problem.x0.clone()
        self.v = torch.zeros_like(self.z)
        return hp

    def draw(self, which: str) -> Tensor:
        """The next batch of inner or outer sample indices."""
        return self.samplers[which]()

    def outer_variable(self) -> Tensor:
        return self.x

    def inner_variable(self) -> Tensor:
        return self.z


def minibatch_directions(problem: BilevelProblem, z: Tensor, v: Tensor, x: Tensor, i: Tensor, j: Tensor) -> Directions:
    """Unbiased estimates at (z, v, x) from inner samples ``i`` and outer samples ``j`` (Dagreou et al. 2022):
    D_z = d_z G_i, D_v = d2_zz G_i v + d_z F_j, D_x = d2_xz G_i v + d_x F_j."""
    gz, hv, cross = problem.inner_oracles(z, x, v, i)
    fz, fx = problem.outer_grad(z, x, j)
    return Directions(gz, hv + fz, cross + fx)


def schedule(step_size: float, t: int, exponent: float) -> float:
    """step_size / t^exponent (t >= 1); exponent 0 is a constant step."""
    return step_size / t**exponent


class TwoLoop(Iterates):
    """Shared scheme of StocBiO and AmIGO: per outer iteration,
    1. ``n_inner_steps`` SGD steps on z:              z <- z - rho d_z G_i(z, x),
    2. ``n_v_steps`` SGD steps on the linear system:  v <- v - rho (d2_zz G_i(z, x) v + d_z F_j(z, x)),
       with one outer batch j (from v = 0 this is the truncated Neumann series -rho sum_q (I - rho H)^q d_z F),
    3. an outer step:                                 x <- x - gamma (d2_xz G_i(z, x) v + d_x F_j(z, x)),
    with gamma = rho / outer_ratio. ``warm_start_v`` keeps v between outer iterations (AmIGO) or restarts it
    from 0 (StocBiO)."""

    warm_start_v: bool

    def init(self, problem: BilevelProblem, batch_size: int, seed: int) -> dict[str, Any]:
        hp = super().init(problem, batch_size, seed)
        self.n_inner_steps, self.n_v_steps = hp["n_inner_steps"], hp["n_v_steps"]
        return hp

    def step(self) -> None:
        p = self.problem
        for _ in range(self.n_inner_steps):
            self.z -= self.rho * p.inner_grad(self.z, self.x, self.draw("inner"))
        fz, fx = p.outer_grad(self.z, self.x, self.draw("outer"))
        if not self.warm_start_v:
            self.v.zero_()
        for _ in range(self.n_v_steps):
            self.v -= self.rho * (p.inner_hvp(self.z, self.x, self.v, self.draw("inner")) + fz)
        self.x -= self.gamma * (p.inner_cross(self.z, self.x, self.v, self.draw("inner")) + fx)

    def directions(self, inner_idx: Tensor, outer_idx: Tensor) -> Directions:
        """The directions of its SGD moves on z and v and of its outer move, at the current state."""
        return minibatch_directions(self.problem, self.z, self.v, self.x, inner_idx, outer_idx)
