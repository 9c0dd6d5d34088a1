"""Gradient checkpointing over sqrt(N) segments: stores segment inputs, recomputes each segment in backward.

Memory O(sqrt(N)) activations, about 4/3 of backprop's work.
"""

import math

import torch
from torch.utils.checkpoint import checkpoint

from ctbench import Manifest
from suites.adjoint_resnet.interface import StageGradient
from suites.adjoint_resnet.model import ResidualStage


class Checkpoint(StageGradient):
    manifest = Manifest(name="checkpoint", authors=("ctbench",), url="https://pytorch.org/docs/stable/checkpoint.html")

    def forward(self, stage: ResidualStage, x: torch.Tensor) -> torch.Tensor:
        size = max(1, round(math.sqrt(stage.depth)))
        for start in range(0, stage.depth, size):
            blocks = range(start, min(start + size, stage.depth))
            x = checkpoint(_run_segment, stage, blocks, x, use_reentrant=False)
        return x


def _run_segment(stage: ResidualStage, blocks: range, x: torch.Tensor) -> torch.Tensor:
    for n in blocks:
        x = stage.step(n, x)
    return x
