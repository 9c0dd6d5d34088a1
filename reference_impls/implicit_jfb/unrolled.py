"""Backpropagation through the forward iterations (unrolled): the solver runs with autograd recording.

Autograd stores every iteration's activations (memory linear in the number of forward iterations) and the
backward applies J^T once per iteration; for a gamma-contraction the result tends to the implicit gradient as
the iterations converge (error O(gamma^k)).
"""

import torch

from ctbench import Manifest
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver


class Unrolled(ImplicitBackward):
    manifest = Manifest(
        name="unrolled",
        authors=("ctbench",),
        url="https://pytorch.org/docs/stable/autograd.html",
        description="backprop through every forward iteration",
    )
    exact = True

    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        return solver(layer, u0).u
