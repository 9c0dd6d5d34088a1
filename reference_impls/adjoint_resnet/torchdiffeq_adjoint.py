"""Peer: torchdiffeq's ``odeint_adjoint`` with Euler on the fixed grid t_n = n/N (Chen et al. 2018).

The vector field at time t is block n = round(t N) (clipped to N-1), so the forward is exactly the Euler ResNet;
the backward solves the continuous adjoint ODE with Euler on the same grid, torchdiffeq's own way.
"""

import torch

from ctbench import Manifest
from suites.adjoint_resnet.interface import StageGradient
from suites.adjoint_resnet.model import ResidualStage


class _PiecewiseField(torch.nn.Module):
    def __init__(self, stage: ResidualStage):
        super().__init__()
        self.stage = stage

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        n = min(round(float(t.detach()) * self.stage.depth), self.stage.depth - 1)
        return self.stage.blocks[n](x)


class TorchdiffeqAdjoint(StageGradient):
    manifest = Manifest(
        name="torchdiffeq", authors=("Ricky T. Q. Chen",), url="https://github.com/rtqichen/torchdiffeq"
    )

    def forward(self, stage: ResidualStage, x: torch.Tensor) -> torch.Tensor:
        from torchdiffeq import odeint_adjoint

        n = stage.depth
        # N equal steps between the ends of t (the adjoint solve passes t reversed and negated)
        options = {"grid_constructor": lambda func, y0, t: torch.linspace(float(t[0]), float(t[-1]), n + 1).to(t)}
        params = tuple(p for p in stage.parameters() if p.requires_grad)
        t = torch.tensor([0.0, 1.0], dtype=x.dtype, device=x.device)  # only x_N is kept, not a trajectory
        return odeint_adjoint(
            _PiecewiseField(stage),
            x,
            t,
            method="euler",
            options=options,
            adjoint_options=options,
            adjoint_params=params,
        )[-1]
