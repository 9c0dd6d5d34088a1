"""A single-loop stochastic solver with constant steps (SOBA's directions, Dagreou et al. 2022, without its
decreasing step sizes).

Every step draws one inner and one outer minibatch from the problem's samplers and moves z (inner variable),
v (the linear system's solution) and x (outer variable) together along unbiased estimates of
D_z = d_z G, D_v = d2_zz G v + d_z F and D_x = d2_xz G v + d_x F. The steps are rho for z and v and
rho / outer_ratio for x, read with ``hyperparameters(problem)`` so the task's tuning search can set them.
"""

import torch
from torch import Tensor

from ctbench import Manifest
from suites.bilevel.interface import BilevelSolver
from suites.bilevel.problem import BilevelProblem


class ConstantSOBA(BilevelSolver):
    manifest = Manifest(name="constant_soba", authors=("ctbench examples",), description="SOBA, constant steps")
    defaults = {
        "quadratic": {"step_size": 0.1, "outer_ratio": 1.0},
        "hyperparam": {"step_size": 1.0, "outer_ratio": 1.0},
        "datacleaning": {"step_size": 1.0, "outer_ratio": 1e-2},
    }

    def init(self, problem: BilevelProblem, batch_size: int, seed: int) -> None:
        hp = self.hyperparameters(problem)
        self.problem, self.rho, self.gamma = problem, hp["step_size"], hp["step_size"] / hp["outer_ratio"]
        generator = torch.Generator(problem.device).manual_seed(seed)
        self.inner = problem.sampler("inner", batch_size, generator)
        self.outer = problem.sampler("outer", batch_size, generator)
        self.z, self.x = problem.z0.clone(), problem.x0.clone()
        self.v = torch.zeros_like(self.z)

    def step(self) -> None:
        gz, hv, cross = self.problem.inner_oracles(self.z, self.x, self.v, self.inner())
        fz, fx = self.problem.outer_grad(self.z, self.x, self.outer())
        self.z -= self.rho * gz
        self.v -= self.rho * (hv + fz)
        self.x -= self.gamma * (cross + fx)

    def outer_variable(self) -> Tensor:
        return self.x

    def inner_variable(self) -> Tensor:
        return self.z
