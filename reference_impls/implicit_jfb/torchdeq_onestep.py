"""Peer: torchdeq's one-step gradient (``get_deq(grad=1)``): f applied once at the detached z*, as JFB does.

torchdeq's PhantomGrad with k = 1 step and damping tau = 1 (Geng et al. 2021), which is JFB's gradient.
"""

import torch

from ctbench import Manifest
from reference_impls.implicit_jfb._torchdeq import TorchDEQ
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver


class TorchDEQOneStep(ImplicitBackward):
    manifest = Manifest(
        name="torchdeq_onestep",
        authors=("Zhengyang Geng", "J. Zico Kolter"),
        url="https://github.com/locuslab/torchdeq",
        description="torchdeq 0.1 get_deq(grad=1)",
    )
    jacobian_free = True

    def __init__(self) -> None:
        self._deq = TorchDEQ(grad=1)

    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        return self._deq(layer, u0, solver)
