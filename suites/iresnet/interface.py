"""What a log-determinant method for invertible residual blocks provides, and what the task hands it.

The model is a flow of residual blocks x + g(x) (``flow.py``); log p(x) = log N(F(x); 0, I) plus the sum over
blocks of log|det(I + J_g(x))|. The protocol calls ``forward`` block by block for training (maximum likelihood,
gradients enabled) and for evaluation (``torch.no_grad()``), ``estimate`` to measure the estimator's error against
the exact log-det, and ``inverse`` block by block (last block first) to invert the flow. An example:
``examples/iresnet/``.

What a method receives: ``g``, a block's residual branch, an ``nn.Module`` whose every weight is spectrally
normalised so that Lip(g) <= c (the case's parameter ``c``: c < 1 for a contraction; c >= 1 is a negative control):
a multilayer perceptron with ELU for 2-D densities, x of shape (N, 2); a conv3x3 - ELU - conv1x1 - ELU - conv3x3
branch for images, x of shape (N, C, H, W). ``x`` is a block's input: a data batch for the first block, which does
not require grad; a later block's input carries the graph of the blocks before it in training. ``terms`` is the
case's series length (the grid's parameter ``terms``); ``tol`` and ``max_iter`` the scale's inversion tolerance and
budget.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn


class ResidualLogDet(ABC):
    """Log-determinant (and inverse) of a residual block f(x) = x + g(x) with Lip(g) < 1.

    ``series`` says which bias check the protocol applies: ``"exact"`` (none is allowed), ``"truncated"`` (an
    n-term power series: its bias within the series' bound) or ``"roulette"`` (unbiased). The protocol trains a
    density with the method only if its log-det carries a gradient (it checks); otherwise it evaluates the
    method's log-det and inverse on the untrained flow.
    """

    series: ClassVar[str] = "exact"
    note: ClassVar[str] = ""  # shown on the page beside the method's cases: how a peer is configured, caveats

    @abstractmethod
    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x + g(x), an estimate of log|det(I + J_g(x))| per sample, shape (N,)).

        With gradients enabled (training) the estimate must be differentiable in g's parameters and in x (its
        gradient is what training follows); under ``torch.no_grad()`` (evaluation) no graph needs to survive.
        ``terms`` is the series length: the truncation length of a truncated series, the number of
        always-evaluated terms of a roulette one.
        """

    def estimate(self, g: nn.Module, x: torch.Tensor, terms: int) -> torch.Tensor:
        """The value of the log-det estimate training uses, without a graph (the protocol measures its error
        against the exact log-det). By default ``forward``'s with gradients enabled; a method whose training
        output is only a surrogate for the gradient (its value not a log-det estimate) gives its estimate here."""
        with torch.enable_grad():
            return self.forward(g, x, terms)[1].detach()

    def inverse(self, g: nn.Module, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        """x with x + g(x) = y, by the Banach fixed-point iteration x_{k+1} = y - g(x_k) from x_0 = y
        (Behrmann et al. 2019, Algorithm 1), stopped when every sample's step ||x_{k+1} - x_k|| is at most
        tol (1 + ||y||), or after ``max_iter`` evaluations of g. It converges when Lip(g) < 1."""
        scale = tol * (1 + y.flatten(1).norm(dim=1))
        x = y
        with torch.no_grad():
            for _ in range(max_iter):
                x_next = y - g(x)
                done = bool(((x_next - x).flatten(1).norm(dim=1) <= scale).all())
                x = x_next
                if done:
                    break
        return x
