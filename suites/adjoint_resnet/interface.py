"""What a gradient method for the deep residual stage provides."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from suites.adjoint_resnet.model import ResidualStage


class StageGradient(ABC):
    """A way to run the deep stage so that ``loss.backward()`` fills the stage's parameter gradients.

    ``scheme`` names the forward discretisation the method needs (``"euler"`` or ``"heun"``); the protocol builds
    the stage with it, and the exact gradient it compares against is backprop through that same stage.
    """

    scheme: ClassVar[str] = "euler"

    @abstractmethod
    def forward(self, stage: ResidualStage, x: torch.Tensor) -> torch.Tensor:
        """x_N from x_0, differentiable: its backward must accumulate d loss / d theta_n into ``p.grad``."""

    def reverse(self, stage: ResidualStage, y: torch.Tensor) -> torch.Tensor | None:
        """x_0 recovered from x_N, for methods that reconstruct activations; ``None`` for those that store them."""
        return None
