"""Peer: normflows' ``Residual`` flow (a port of Residual Flows' ``iResBlock``) wrapped around the task's g.

normflows estimates the log-det with a geometric roulette (p = 0.5, ``n_exact_terms`` = ``terms``) and, by default
(``reduce_memory=True``), the Neumann-series gradient computed during the forward pass. Used as it trains: in
training mode when gradients are enabled, in its evaluation mode otherwise (there, on 2-D inputs, it switches to the
brute-force exact log-det and elsewhere to 20 exact terms plus the roulette). Its own fixed-point inverse is used.
"""

import torch
from torch import nn

from ctbench import Manifest
from suites.iresnet.interface import ResidualLogDet


class NormflowsResidual(ResidualLogDet):
    manifest = Manifest(
        name="normflows_residual",
        authors=("Vincent Stimper", "normflows contributors"),
        url="https://github.com/VincentStimper/normalizing-flows",
    )
    series = "roulette"

    def __init__(self) -> None:
        self._blocks: dict[nn.Module, tuple[int, nn.Module]] = {}

    def _block(self, g: nn.Module, terms: int) -> nn.Module:
        from normflows.flows import Residual

        key = self._blocks.get(g)
        if key is None or key[0] != terms:
            self._blocks[g] = key = (terms, Residual(g, reverse=False, n_exact_terms=terms))
        return key[1]

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        block, mode = self._block(g, terms), g.training
        block.train(torch.is_grad_enabled())
        g.train(mode)  # Residual.train() sets g's mode too; keep the caller's
        return block(x)

    def inverse(self, g: nn.Module, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        block = self._block(g, 1)
        with torch.no_grad():
            return block.iresblock.inverse(y)
