"""What the protocol measures on a flow besides its likelihood: estimator error, inversion, Lipschitz constants.

- ``estimator_error``: R independent draws of a method's total log-det over the flow's blocks against the exact one
  on the same inputs; bias = mean error, std = mean over inputs of the per-input spread, and the standard error of
  the bias from the R batch means (draws within a batch may share their roulette length, batches are independent);
- ``invert``: F^-1(F(x)) block by block with the method's inverse, counting g's evaluations (forward hooks) and the
  residual ||x^ + g(x^) - y|| / ||y|| each block is left with;
- ``lipschitz``: max over blocks and inputs of ||J_g(x)||_2, by power iteration on the trained blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from suites.iresnet.flow import Flow
from suites.iresnet.interface import ResidualLogDet
from suites.iresnet.series import exact_logdet, jacobian, jacobian_norm, truncation_bound


@dataclass(frozen=True)
class EstimatorError:
    bias: float
    std: float
    bias_se: float
    bound: float  # mean over inputs of the n-term truncation bound summed over blocks


def exact_total(flow: Flow, x: torch.Tensor) -> torch.Tensor:
    """The flow's exact log|det J_F(x)|: the sum of its blocks' exact log-dets (low dimensions)."""
    return flow.forward_logdet(x, lambda g, h: exact_logdet(g, h))[1].detach()


def estimator_error(flow: Flow, impl: ResidualLogDet, x: torch.Tensor, terms: int, draws: int) -> EstimatorError:
    """Error of ``impl``'s log-det estimate (as in training: ``impl.estimate``) against the exact one."""
    exact = exact_total(flow, x)
    inputs = flow.block_inputs(x)

    def total() -> torch.Tensor:
        return sum(impl.estimate(g, h.clone(), terms) for g, h in zip(flow.branches, inputs, strict=True))

    errors = torch.stack([total() - exact for _ in range(draws)])
    norms = torch.stack(
        [torch.linalg.matrix_norm(jacobian(g, h)[1], 2) for g, h in zip(flow.branches, inputs, strict=True)]
    )
    bound = truncation_bound(norms.double(), x.shape[1], terms).sum(0).mean()
    batch_means = errors.double().mean(1)
    return EstimatorError(
        bias=float(batch_means.mean()),
        std=float(errors.double().std(0).mean()) if draws > 1 else 0.0,
        bias_se=float(batch_means.std() / draws**0.5) if draws > 1 else 0.0,
        bound=float(bound),
    )


@dataclass(frozen=True)
class Inversion:
    error: float  # ||F^-1(F(x)) - x|| / ||x|| over the batch
    iterations: int  # most evaluations of g any block's inversion used
    residual: float  # largest ||x^ + g(x^) - y|| / ||y|| a block was left with


def invert(flow: Flow, impl: ResidualLogDet, x: torch.Tensor, tol: float, max_iter: int) -> Inversion:
    calls = {"n": 0}
    iterations, residuals = [], []

    def invert_block(g: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
        calls["n"] = 0
        hook = g.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
        try:
            x_hat = impl.inverse(g, y, tol, max_iter).detach()
        finally:
            hook.remove()
        iterations.append(calls["n"])
        with torch.no_grad():
            residuals.append(float((x_hat + g(x_hat) - y).norm() / y.norm()))
        return x_hat

    with torch.no_grad():
        z = flow(x)
    x_hat = flow.inverse(z, invert_block)
    return Inversion(float((x_hat - x).norm() / x.norm()), max(iterations), max(residuals))


def lipschitz(flow: Flow, x: torch.Tensor, iterations: int) -> float:
    """max over blocks and inputs of ||J_g(x)||_2 (a lower bound on the largest Lip(g))."""
    inputs = flow.block_inputs(x)
    return max(float(jacobian_norm(g, h, iterations).max()) for g, h in zip(flow.branches, inputs, strict=True))
