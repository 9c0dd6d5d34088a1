"""The explicit (feed-forward) counterpart: N(d) = S(T(0, Q(d))), one application of T from u = 0.

The same parameters as the implicit network (the paper's explicit baseline, its ``forward_explicit``): no
fixed point is sought, so it has no residual and no implicit gradient to compare with; plain backprop.
"""

import torch

from ctbench import Manifest
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver


class Explicit(ImplicitBackward):
    manifest = Manifest(
        name="explicit",
        authors=("ctbench",),
        url="https://arxiv.org/abs/2103.12803",
        description="feed-forward network with the same parameters: S(T(0, Q(d)))",
    )
    finds_fixed_point = False

    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        return layer(u0)
