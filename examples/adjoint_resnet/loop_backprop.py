"""Plain backpropagation through the deep stage, its loop written out.

The stage hands over its ``blocks`` (the residual functions f_n) and its step ``h`` = 1/``depth``; this method
asks for the Euler scheme (``scheme = "euler"``, the default), so x_{n+1} = x_n + h f_n(x_n). Autograd records
every block, so ``loss.backward()`` gives the exact gradient, at a memory cost linear in the depth.
"""

import torch

from ctbench import Manifest
from suites.adjoint_resnet.interface import StageGradient
from suites.adjoint_resnet.model import ResidualStage


class LoopBackprop(StageGradient):
    manifest = Manifest(name="loop_backprop", authors=("ctbench examples",), description="backprop, loop written out")

    def forward(self, stage: ResidualStage, x: torch.Tensor) -> torch.Tensor:
        for f in stage.blocks:
            x = x + stage.h * f(x)
        return x
