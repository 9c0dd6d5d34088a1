"""Peer: normflows' ``Residual`` flow (a port of Residual Flows' ``iResBlock``) wrapped around the task's g.

Configured as normflows' residual-flow example does (``Residual(net, reduce_memory=True)``, ``reverse=True``: the
data-to-latent direction x -> x + g(x) is the flow's ``inverse``, as ``NormalizingFlow.forward_kld`` calls it),
with the task's series length as ``n_exact_terms``; its roulette is geometric with p = 0.5, one probe per sample.

- Training (gradients enabled, block in training mode): normflows' memory-saving estimator. Its output is a
  surrogate for the gradient: its value is v^T (sum_{k=0}^N (-1)^k J^k / P(N >= k)) J v, not a log-det estimate
  (on the smoke case 0.22 nats below the exact total log-det of its 4 blocks), its gradient the Neumann
  estimate. ``estimate`` therefore gives the log-det value normflows itself computes with the same roulette (its
  ``reduce_memory=False`` estimator: sum_{k=1}^N (-1)^{k+1} v^T J^k v / (k P(N >= k)), unbiased).
- Evaluation (no gradients, block in evaluation mode, as normflows evaluates ``log_prob``): on 2-D inputs the
  exact (brute-force) log-det, elsewhere 20 exact terms plus the roulette.
- Inverse: normflows' own fixed-point iteration (``iResBlock._inverse_fixed_point``, at most about 1000 evaluations of
  g), which stops when every element's squared step is below atol + rtol |y|. Its defaults (1e-5) stop at steps
  of about 3e-3, leaving errors near 5e-4 on a trained flow at c = 0.9 (normflows' own flows included); the task's
  tolerance is passed as atol = rtol = tol^2, i.e. a step below tol sqrt(1 + |y|) per element.
- Work: after a training call ``last_terms`` is the number of series terms normflows evaluated, read from its own
  record of the roulette draw (``last_n_samples``, plus ``n_exact_terms``); the protocol counts it.
"""

from typing import Any

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
    note = (
        "normflows as its residual-flow example configures it (reduce_memory=True, n_exact_terms = terms). Its "
        "training output is a surrogate whose gradient is the Neumann estimate and whose value is not a log-det "
        "(its train_loss curve is that surrogate); logdet_bias and logdet_std are of normflows' own roulette "
        "value with the same terms (its reduce_memory=False estimator). Inverse: its own fixed-point iteration "
        "at the task's tolerance (atol = rtol = tol^2); evaluation log-det: exact on 2-D inputs, as normflows does."
    )

    def __init__(self) -> None:
        self._blocks: dict[nn.Module, nn.Module] = {}
        self.last_terms: int | None = None  # series terms of the last training call (normflows' roulette draw)

    def block(self, g: nn.Module, terms: int | None = None) -> nn.Module:
        """normflows' ``Residual`` flow around g (one per g), with ``n_exact_terms`` = ``terms`` if given."""
        from normflows.flows import Residual

        block = self._blocks.get(g)
        if block is None:
            self._blocks[g] = block = Residual(g, reduce_memory=True)
        if terms is not None:
            block.iresblock.n_exact_terms = terms
        return block

    def _run(self, g: nn.Module, x: torch.Tensor, terms: int, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        block, mode = self.block(g, terms), g.training
        block.train(training)
        g.train(mode)  # Residual.train() sets g's mode too; keep the caller's
        if not x.requires_grad:  # normflows sets requires_grad on its input in place: not on the caller's tensor
            x = x.detach()
        out = block.inverse(x)  # reverse=True: the x -> x + g(x) direction with its log-det
        res: Any = block.iresblock
        # normflows' own record of its roulette draw: n_power_series = max(last_n_samples) + n_exact_terms
        self.last_terms = int(res.last_n_samples.max()) + res.n_exact_terms if training else None
        return out

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._run(g, x, terms, torch.is_grad_enabled())

    def estimate(self, g: nn.Module, x: torch.Tensor, terms: int) -> torch.Tensor:
        """normflows' roulette log-det value (its reduce_memory=False estimator, training mode)."""
        block = self.block(g, terms).iresblock
        block.neumann_grad = block.grad_in_forward = False
        try:
            with torch.enable_grad():
                return self._run(g, x, terms, True)[1].detach()
        finally:
            block.neumann_grad = block.grad_in_forward = True

    def inverse(self, g: nn.Module, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        with torch.no_grad():
            return self.block(g).iresblock._inverse_fixed_point(y, atol=tol**2, rtol=tol**2)
