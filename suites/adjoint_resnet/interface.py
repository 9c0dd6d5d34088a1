"""What a gradient method for the deep residual stage provides, and what the task hands it.

The network is a frozen stem, the deep stage and a frozen head (``model.Net``). In every training step the protocol
computes the stem's output x_0, calls ``forward(stage, x_0)``, applies the head and the cross-entropy loss, and
calls ``loss.backward()``; then an SGD step updates the stage's parameters. The same ``forward`` gives the gradient
that is compared with exact backprop (``grad_rel_error``, on a float64 copy of the stage and batch). Test accuracy
runs the stage directly (``stage(x)``), not through the method. An example: ``examples/adjoint_resnet/``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from suites.adjoint_resnet.model import ResidualStage


class StageGradient(ABC):
    """A way to run the deep stage so that ``loss.backward()`` fills the stage's parameter gradients.

    ``scheme`` names the forward discretisation the method needs (``"euler"`` or ``"heun"``); the protocol builds
    the stage with it, and the exact gradient it compares against is backprop through that same stage.

    What ``forward`` and ``reverse`` receive:

    - ``stage``, a ``suites.adjoint_resnet.model.ResidualStage`` (an ``nn.Module``):

      - ``blocks``: an ``nn.ModuleList`` of the N residual functions f_n (``model.Residual``:
        f_n(x) = conv2(sigma(conv1(x))), two 3x3 convolutions of ``width`` channels with padding 1, sigma relu or
        softplus). Each block owns its parameters theta_n (untied); they are the only parameters that require
        grad, and the gradient is for them;
      - ``depth``: N = len(blocks); ``h``: the step 1 / N; ``scheme``: the scheme asked for;
      - ``increment(n, x, h)``: the scheme's update of block n with step h, h f_n(x) (Euler) or
        h/2 [f_n(x) + f_n(x + h f_n(x))] (Heun); a negative h runs the scheme backwards in time;
      - ``step(n, x)``: x + increment(n, x, h), one block; ``stage(x)`` runs all N in order.

    - ``x``: x_0, the frozen stem's output, shape (batch, width, H, W) (8 x 8 maps for 32 x 32 images), which does
      not require grad; float32 in training, float64 when the gradient error is measured: work in the dtype and
      on the device of the tensors given.
    """

    scheme: ClassVar[str] = "euler"

    @abstractmethod
    def forward(self, stage: ResidualStage, x: torch.Tensor) -> torch.Tensor:
        """x_N from x_0 (the value ``stage(x)`` computes), differentiable: its backward must accumulate
        d loss / d theta_n into ``p.grad`` of every parameter of ``stage.blocks``. Called with gradients enabled."""

    def reverse(self, stage: ResidualStage, y: torch.Tensor) -> torch.Tensor | None:
        """x_0 recovered from x_N, for methods that reconstruct activations; ``None`` for those that store them.
        Called under ``torch.no_grad()`` with y = stage(x_0), to measure ``reconstruction_error``."""
        return None
