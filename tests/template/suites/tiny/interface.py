"""What an implementation of the tiny task provides."""

from abc import ABC, abstractmethod

import torch


class Solver(ABC):
    """Solves A x = b for a symmetric positive definite A."""

    @abstractmethod
    def solve(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """x with A x = b."""
