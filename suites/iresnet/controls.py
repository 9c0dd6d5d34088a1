"""Failing controls of ``iresnet``'s checks: each runs the task's own check code on a deliberately broken input.

The per-case checks run the protocol's measures (``measures``) and its checks (``protocol``) on a small flow of
linear blocks g(x) = A x, A symmetric with eigenvalues from ``norm`` down to ``norm / 2``: J_g = A everywhere, so
Lip(g) = ``norm``, and the exact log-det and the truncation bound are known. The checks across cases run the
task's ``run_checks`` on recorded cases of the smoke scale's 2-D setting, each broken in what its check is about.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ctbench import Check, Task
from ctbench.api.claims import named
from reference_impls.iresnet.iresnet import IResNet
from suites.iresnet import configs, measures, protocol
from suites.iresnet.checks import MEMORY, PAIRED_METHODS, STEP_PAIRED, TRAINING_PAIRED
from suites.iresnet.flow import Block, Flow
from suites.iresnet.linearise import linearise
from suites.iresnet.series import power_series

TASK = "iresnet"
DIM, BLOCKS = 2, 4  # the smoke scale's 2-D density: 4 blocks on 2-D inputs


class TruncatedAsRoulette(IResNet):
    """Broken: i-ResNet's n-term truncated series declared unbiased (``series = "roulette"``), as a Russian
    roulette without its random number of terms and its 1 / P(N >= k) reweighting would be."""

    series = "roulette"


class SignlessSeries(IResNet):
    """Broken: the power series without its alternating sign, sum_k tr(J^k) / k, the series of
    -log det(I - J_g) rather than of log det(I + J_g)."""

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        lin = linearise(g, x)
        # power_series puts (-1)^(k+1) on term k: a weight of the same sign cancels it
        logdet = power_series(lin, [(-1.0) ** (k + 1) for k in range(1, terms + 1)], create_graph=False)
        return (lin.x + lin.gx).detach(), logdet.detach()


def linear_flow(norm: float, blocks: int = BLOCKS, dim: int = DIM, seed: int = 0) -> Flow:
    """A flow of ``blocks`` linear blocks x + A x, A = Q diag(norm .. norm / 2) Q^T (||A||_2 = Lip(g) = norm)."""
    gen = torch.Generator().manual_seed(seed)
    steps = []
    for _ in range(blocks):
        g = nn.Linear(dim, dim, bias=False)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen))
        with torch.no_grad():
            g.weight.copy_(q @ torch.diag(torch.linspace(norm, norm / 2, dim)) @ q.T)
        steps.append(Block(g))
    return Flow(steps)


@contextmanager
def seeded(seed: int = 0) -> Iterator[torch.Tensor]:
    """The probe batch of the smoke scale's size, with torch's global stream (Hutchinson probes) seeded for the
    block and put back after it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield torch.randn(configs.SMOKE["probe_batch"], DIM, generator=torch.Generator().manual_seed(seed + 1))


def inverse_error(task: Task) -> list[Check]:
    """Blocks that are not contractive (Lip(g) = 1.1 >= 1): the fixed-point inverse x <- y - g(x) does not
    converge within the smoke scale's budget of evaluations."""
    cfg = configs.SMOKE
    with seeded() as x:
        inv = measures.invert(linear_flow(1.1), IResNet(), x, cfg["inverse_tol"], cfg["inverse_max_iter"])
    return [protocol.inverse_check(inv, cfg["inverse_max_iter"])]


def lipschitz(task: Task) -> list[Check]:
    """Blocks whose spectral normalisation did not hold: Lip(g) = 1.5 in a case that asks for c = 0.9."""
    with seeded() as x:
        measured = measures.lipschitz(linear_flow(1.5), x, configs.SMOKE["lipschitz_iterations"])
    return [protocol.lipschitz_check(measured, 0.9)]


def logdet_unbiased(task: Task) -> list[Check]:
    """A biased estimator declared unbiased: the 2-term truncated series (no roulette, no reweighting) on blocks
    of Lip(g) = 0.9, against the exact log-det over the smoke scale's draws."""
    terms, estimator = 2, TruncatedAsRoulette()
    with seeded() as x:
        err = measures.estimator_error(linear_flow(0.9), estimator, x, terms, configs.SMOKE["estimator_draws"])
    return list(protocol.estimator_checks(estimator.series, err, terms).values())


def logdet_bias_bound(task: Task) -> list[Check]:
    """A truncated series without its alternating sign (the series of -log det(I - J_g)), 4 terms on blocks of
    Lip(g) = 0.6: its bias is far beyond Theorem 3's bound for 4 terms."""
    terms, estimator = 4, SignlessSeries()
    with seeded() as x:
        err = measures.estimator_error(linear_flow(0.6), estimator, x, terms, configs.SMOKE["estimator_draws"])
    return list(protocol.estimator_checks(estimator.series, err, terms).values())


def record(
    impl: str, terms: int, metrics: Mapping[str, float], intervals: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, Any]:
    """A case record of the smoke scale's 2-D setting (eight Gaussians, c = 0.9) with ``metrics``, their
    ``intervals`` and, for the step's memory, a spread of 1% (the range of its readings)."""
    params = {"experiment": "density_2d", "dataset": "eight_gaussians", "c": 0.9, "terms": terms}
    spread = {k: 0.01 * v for k, v in metrics.items() if k == MEMORY}
    return {"task": TASK, "status": "ok", "scale": "smoke", "dataset": "toy2d-eight_gaussians", "seed": 0,
            "impl": impl, "params": params, "metrics": dict(metrics), "spread": spread,
            "intervals": {k: list(v) for k, v in (intervals or {}).items()}, "series": {}}  # fmt: skip


def _run_checks(task: Task, cases: list[dict[str, Any]], name: str) -> list[Check]:
    return named(task.run_checks(cases), name)


def memory_grows_in_terms(task: Task) -> list[Check]:
    """The truncated series' step memory flat in the series length (1.00 MB at 4 terms, 1.05 MB at 12): a series
    that keeps no graph of its products, or a memory reading that misses it."""
    cases = [record("iresnet", 4, {MEMORY: 1.0e6}),
             record("iresnet", 12, {MEMORY: 1.05e6})]  # fmt: skip
    return _run_checks(task, cases, "memory_grows_in_terms")


def memory_flat_in_terms(task: Task) -> list[Check]:
    """A Neumann-gradient method whose step memory grows with the series (1 MB at 4 terms, 3 MB at 12, readings
    within 1%): the roulette differentiated through its products, as i-ResNet's series is."""
    cases = [record("residual_flow", 4, {MEMORY: 1.0e6}),
             record("residual_flow", 12, {MEMORY: 3.0e6})]  # fmt: skip
    return _run_checks(task, cases, "memory_flat_in_terms")


def _slower(metric: str, impl: str, peer: str) -> list[dict[str, Any]]:
    """``impl`` three times slower than ``peer`` on ``metric`` at 4 terms, each within 1% (its interval)."""
    return [
        record(impl, 4, {metric: 100.0}, {metric: (99.0, 101.0)}),
        record(peer, 4, {metric: 300.0}, {metric: (297.0, 303.0)}),
    ]


def _slower_than_normflows(metric: str) -> list[dict[str, Any]]:
    """i-ResNet's and Residual Flows' cases, at 4 and 12 terms, each recording ``metric`` (its throughput over
    normflows' from pairs timed alternately in the case) as 1/3, 95% interval 0.32..0.34, with the series terms
    both sides evaluated recorded beside it."""
    cases = []
    for impl in PAIRED_METHODS:
        for terms in (4, 12):
            ours = float(terms) if impl == "iresnet" else terms + 2.0  # truncated: n; a roulette: n + M
            metrics = {metric: 1 / 3, "series_terms": ours, "normflows_series_terms": terms + 2.0}
            cases.append(record(impl, terms, metrics, {metric: (0.32, 0.34)}))
    return cases


def throughput_samples_s_vs_normflows_residual(task: Task) -> list[Check]:
    """i-ResNet's and Residual Flows' training steps three times slower than normflows' at every series length
    (throughput ratio 1/3 from single steps timed in alternating pairs, interval 0.32..0.34)."""
    return _run_checks(task, _slower_than_normflows(STEP_PAIRED), "throughput_samples_s_vs_normflows_residual")


def training_throughput_samples_s_vs_normflows_residual(task: Task) -> list[Check]:
    """i-ResNet's and Residual Flows' training three times slower than normflows' at every series length
    (throughput ratio 1/3 from chunks of steps timed in alternating pairs, interval 0.32..0.34)."""
    return _run_checks(
        task, _slower_than_normflows(TRAINING_PAIRED), "training_throughput_samples_s_vs_normflows_residual"
    )


def eval_throughput_samples_s_vs_freia_iresnet(task: Task) -> list[Check]:
    """i-ResNet's log-det evaluation three times slower than FrEIA's (100 against 300 samples/s), each measured
    within 1%."""
    metric = "eval_throughput_samples_s"
    return _run_checks(task, _slower(metric, "iresnet", "freia_iresnet"), f"{metric}_vs_freia_iresnet")
