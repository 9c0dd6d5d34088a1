"""Plain backpropagation: autograd stores every block's activations (memory linear in N)."""

import torch

from ctbench import Manifest
from suites.adjoint_resnet.interface import StageGradient
from suites.adjoint_resnet.model import ResidualStage


class Backprop(StageGradient):
    manifest = Manifest(name="backprop", authors=("ctbench",), url="https://pytorch.org/docs/stable/autograd.html")

    def forward(self, stage: ResidualStage, x: torch.Tensor) -> torch.Tensor:
        return stage(x)
