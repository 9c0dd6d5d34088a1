"""Deterministic full-batch baseline: gradient descent on h(x) with exact hypergradients and backtracking.

Each step evaluates the exact hypergradient at x (inner problem solved by Newton's method, warm-started; the
linear system d2_zz G v = -d_z F by conjugate gradient, or densely for small dim z; then
grad h = d_x F + d2_xz G v, Dagreou et al. 2022), then takes the largest step t (doubling the previous
one, halving until Armijo's condition h(x - t g) <= h(x) - t/4 ||g||^2 holds). All oracles are full batch.
The same exact quantities (``suites.bilevel.exact``), with L-BFGS-B instead of gradient descent, give h*.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ctbench import Manifest
from suites.bilevel.exact import Hypergradient, hypergradient, inner_solution
from suites.bilevel.interface import BilevelSolver
from suites.bilevel.problem import BilevelProblem

MIN_STEP = 1e-10


class FullBatch(BilevelSolver):
    manifest = Manifest(
        name="full_batch",
        authors=("ctbench",),
        description="exact inner solve + linear-system solve, gradient descent on h with backtracking",
    )
    defaults = {"quadratic": {"step_size": 1.0}, "hyperparam": {"step_size": 1.0}, "datacleaning": {"step_size": 1.0}}
    tuning_grid = {"default": {}}  # deterministic, its step found by backtracking: nothing to tune

    def init(self, problem: BilevelProblem, batch_size: int, seed: int) -> None:
        self.problem, self.t = problem, self.hyperparameters(problem)["step_size"]
        self.x = problem.x0.clone()
        self.hg: Hypergradient = hypergradient(problem, self.x, problem.z0, torch.zeros_like(problem.z0))

    def step(self) -> None:
        p, hg = self.problem, self.hg
        slope = float(hg.grad.square().sum())
        t = 2 * self.t
        while t > MIN_STEP:
            x = self.x - t * hg.grad
            z = inner_solution(p, x, hg.z)
            if float(p.outer_value(z, x)) <= hg.value - 0.25 * t * slope:
                break
            t /= 2
        self.t, self.x = t, x
        self.hg = hypergradient(p, x, z, hg.v)

    def outer_variable(self) -> Tensor:
        return self.x

    def inner_variable(self) -> Tensor:
        return self.hg.z
