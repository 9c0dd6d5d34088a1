"""Jacobian-free backpropagation (JFB): backprop through one application of T at the fixed point.

Forward: u* by the case's solver without a graph; z = T(u*, Q(d)) with u* detached. Backward: the gradient is
g^T dT/dtheta at u*, i.e. the implicit gradient with (I - J)^-1 replaced by I (Fung et al. 2022, section 3),
which the paper proves is a descent direction for a contractive T (its section 3 theorem). No Jacobian product
of T is spent.
"""

import torch

from ctbench import Manifest
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver


class JFB(ImplicitBackward):
    manifest = Manifest(
        name="jfb",
        authors=(
            "Samy Wu Fung",
            "Howard Heaton",
            "Qiuwei Li",
            "Daniel McKenzie",
            "Stanley Osher",
            "Wotao Yin",
        ),
        url="https://arxiv.org/abs/2103.12803",
        description="Jacobian-free backpropagation",
    )
    jacobian_free = True

    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        with torch.no_grad():
            u_star = solver(layer, u0).u
        return layer(u_star)
