"""Peer: torchdiffeq's ``odeint_adjoint`` with Euler on the N-step grid (Chen et al. 2018), configured as
torchdiffeq's documentation (FURTHER_DOCUMENTATION.md) says for this setting.

The stage is the Euler discretisation of dx/ds = h f_n(x) on s in [0, N] with unit steps, block n acting on
[n, n+1) (the time rescaling s = t N of dx/dt = f(x, theta(t)) on [0, 1]): the grid points are integers, exact
in any float type. The vector field is piecewise constant in time, discontinuous at every grid point, which is
what the documented fixed-solver option ``perturb=True`` is for: each evaluation at a step's start is nudged one
ulp into the step, so the forward takes block n on [n, n+1) and the adjoint solve (run backwards from N)
takes block n-1 on [n-1, n], the block whose parameters that interval carries. ``step_size=1`` is the documented
way to give the fixed grid when ``t`` holds only the ends. rtol and atol are ignored by Euler (documented), so
none are passed; ``adjoint_params`` are the stage's trainable parameters (documented: the tensors to
differentiate; torchdiffeq then accumulates their gradients along the adjoint solve).

The forward is exactly the Euler ResNet. The backward solves the continuous adjoint ODE with Euler on the same
grid: a(s) and the parameter gradients are integrated with vector-Jacobian products taken at the state
recovered by the reversed Euler step, one step later than the discrete adjoint takes them; its gradient error
is O(h) (first order) against backprop through the stage, as the discrete Euler adjoint's.
"""

import math

import torch

from ctbench import Manifest
from suites.adjoint_resnet.interface import StageGradient
from suites.adjoint_resnet.model import ResidualStage


class _PiecewiseField(torch.nn.Module):
    """dx/ds = h f_n(x) for s in [n, n+1): block n = floor(s), clipped to the stage."""

    def __init__(self, stage: ResidualStage):
        super().__init__()
        self.stage = stage

    def forward(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        n = min(max(math.floor(float(s.detach())), 0), self.stage.depth - 1)
        return self.stage.h * self.stage.blocks[n](x)


class TorchdiffeqAdjoint(StageGradient):
    manifest = Manifest(
        name="torchdiffeq", authors=("Ricky T. Q. Chen",), url="https://github.com/rtqichen/torchdiffeq"
    )

    def forward(self, stage: ResidualStage, x: torch.Tensor) -> torch.Tensor:
        from torchdiffeq import odeint_adjoint

        options = {"step_size": 1.0, "perturb": True}
        params = tuple(p for p in stage.parameters() if p.requires_grad)
        s = torch.tensor([0.0, float(stage.depth)], dtype=x.dtype, device=x.device)  # only x_N is kept
        return odeint_adjoint(
            _PiecewiseField(stage),
            x,
            s,
            method="euler",
            options=options,
            adjoint_options=options,
            adjoint_params=params,
        )[-1]
