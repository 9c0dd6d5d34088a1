"""The direct solve (LU), the tiny task's reference."""

import torch

from ctbench import Manifest
from suites.tiny.interface import Solver


class Direct(Solver):
    manifest = Manifest(name="direct", authors=("ctbench",), url="https://pytorch.org/docs/stable/linalg.html")

    def solve(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(a, b)
