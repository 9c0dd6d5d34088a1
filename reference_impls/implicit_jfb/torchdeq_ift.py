"""Peer: torchdeq's implicit differentiation (``get_deq(ift=True)``), its ``autograd.Function`` form.

Backward: torchdeq re-evaluates f at z* and solves w = g + J^T w from w = 0 with its backward solver at
torchdeq's documented defaults (plain iteration to an absolute residual of 1e-6, at most 40 iterations; see
``_torchdeq``), one vector-Jacobian product per iteration.
"""

import torch

from ctbench import Manifest
from reference_impls.implicit_jfb._torchdeq import TorchDEQ
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver


class TorchDEQIFT(ImplicitBackward):
    manifest = Manifest(
        name="torchdeq_ift",
        authors=("Zhengyang Geng", "J. Zico Kolter"),
        url="https://github.com/locuslab/torchdeq",
        description="torchdeq 0.1 get_deq(ift=True), backward at torchdeq's defaults",
    )
    exact = True

    def __init__(self) -> None:
        self._deq = TorchDEQ(ift=True)

    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        return self._deq(layer, u0, solver)
