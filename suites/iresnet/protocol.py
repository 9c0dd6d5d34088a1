"""The protocol of one case (a log-det method, an experiment and data set, the spectral coefficient c, the series
length n): build the experiment's model and data (``experiments``), bind the method to one training step, which
the engine measures (time, working memory, ``throughput_samples_s`` = batch / step time); then evaluate:

0. iresnet and residual_flow on a density at c < 1: their training step timed in alternating pairs with
   normflows' at the same series length on the same model (``versus_normflows``), single steps and chunks of
   steps, with the series terms each side evaluated; the state is restored after it as after the engine's steps;
1. train for the scale's steps (phase ``training``). The engine's measured steps run before it on the same
   model, so the evaluation first puts back what they moved: the weights and spectral-norm vectors, the random
   streams and the training batches, as ``prepare`` left them, and trains with a fresh optimiser. Training and
   every quality metric are then those of a case without measured steps, whatever the engine's policy. A
   non-finite loss stops training: at c < 1 a failure (RuntimeError); at c >= 1 (invalid anyway) the case keeps
   no training throughput;
2. with the spectral norms' power iteration converged: test NLL (bits/dim for images, accuracy for classification)
   with the same reference log-det for every method; the estimator's error (low dimensions): the method's total
   log-det against the exact one on test inputs over independent draws; log-det evaluation of the probe batch
   without gradient (phase ``eval``); inversion error and iterations of F^-1(F(x)) with the method's inverse; the
   largest singular value of each block's Jacobian; samples x = F^-1(z), z ~ N(0, I) (2-D).

A method whose log-det carries no gradient (found on a few inputs) cannot train a density: it has no step and
gets step 2 on the untrained flow, without training metrics; the case's note says why (no failing check: the
method was not built to train). A method's own ``note`` (how a peer is configured, what its numbers mean) goes on
the page too. A case with c >= 1 (blocks not contractive) completes and is marked invalid with its inversion
residual.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ctbench import CaseResult, Check, Context, Prepared, Scale, expect_tensor
from ctbench.api.measure import PairedRatio, StepStats, paired_interval
from suites.iresnet import checks, measures
from suites.iresnet.experiments import Setup, setup
from suites.iresnet.interface import ResidualLogDet
from suites.iresnet.spectral import converge

INVERSE_ERROR_MAX = 1e-4  # float32, within the iteration budget, at c = 0.9
NOT_CONVERGED = 1e-3  # a block's inversion residual above this: the fixed point was not reached
LIPSCHITZ_TOL = 0.01
NO_GRADIENT = (
    "its log-det carries no gradient, so it cannot train a density by maximum likelihood: no training step to "
    "measure (forward + log-det evaluation and inversion on the untrained flow only)"
)


class TrainingStopped(Exception):
    """A training step's loss was not finite at step ``step`` (no update was made)."""

    def __init__(self, step: int):
        super().__init__(f"non-finite loss at step {step}")
        self.step = step


class Checked(ResidualLogDet):
    """A method whose every return is checked against the interface: ``forward`` gives (x + g(x) shaped and typed
    like x, a log-det of shape (N,) in x's dtype), ``estimate`` the same log-det, ``inverse`` a tensor like y. A
    log-det of shape (N, 1) would broadcast into the flow's (N,) total as (N, N) and loosen the bias bound: it
    fails the case instead, naming the method, the expected and the received shape and dtype."""

    def __init__(self, impl: ResidualLogDet):
        self.impl, self.name = impl, type(impl).__name__
        self.series, self.note = impl.series, getattr(impl, "note", "")

    def __getattr__(self, name: str) -> Any:
        """Any other attribute is the method's own (its ``manifest``, a roulette's ``last_terms``)."""
        if name == "impl":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.impl, name)

    def _logdet(self, value: Any, x: torch.Tensor, method: str) -> torch.Tensor:
        return expect_tensor(value, (x.shape[0],), x.dtype, f"{self.name}.{method} (log-det per sample)")

    def forward(self, g: torch.nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.impl.forward(g, x, terms)
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError(f"{self.name}.forward returned {type(out).__name__}; expected (x + g(x), log-det)")
        y = expect_tensor(out[0], tuple(x.shape), x.dtype, f"{self.name}.forward (x + g(x))")
        return y, self._logdet(out[1], x, "forward")

    def estimate(self, g: torch.nn.Module, x: torch.Tensor, terms: int) -> torch.Tensor:
        return self._logdet(self.impl.estimate(g, x, terms), x, "estimate")

    def inverse(self, g: torch.nn.Module, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        return expect_tensor(self.impl.inverse(g, y, tol, max_iter), tuple(y.shape), y.dtype, f"{self.name}.inverse")


def prepare(impl: ResidualLogDet, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
    """The case's model and data with the method bound to one training step (work: the batch's examples), or no
    step for a method whose log-det has no gradient; the evaluation restores the state before any step. Every
    return of the method is checked (``Checked``)."""
    cfg, terms = scale.config, int(params["terms"])
    impl = Checked(impl)
    s = setup(params, cfg, ctx)
    trains = _trains(s, impl, terms)
    initial = copy.deepcopy(s.model.state_dict())  # weights and power-iteration vectors before any step
    restore_random = _random_streams(ctx.device)

    def evaluate(_: StepStats | None) -> CaseResult:
        versus = versus_normflows(s, impl, params, cfg, ctx) if trains else None
        s.model.load_state_dict(initial)
        restore_random()
        s.batches.restart()
        result = _evaluate(s, impl, params, cfg, ctx, trains)
        if versus is not None and result.invalid_reason is None:
            result.metrics.update(versus.metrics)
            result.spread.update(versus.spread)
            result.intervals.update(versus.intervals)
        return result

    if not trains:
        return Prepared(None, evaluate, no_step=NO_GRADIENT)
    return Prepared(_train_step(s, impl, terms), evaluate, work={"samples": cfg[params["experiment"]]["batch"]})


@dataclass
class Versus:
    """What ``versus_normflows`` measured: metrics with their spreads (IQR) and 95% intervals."""

    metrics: dict[str, float] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


class CountedTerms(ResidualLogDet):
    """``impl`` as it is, counting the series terms each call evaluates: the method's ``last_terms`` after the
    call where it records one (a random roulette length), else ``terms`` (a truncated series)."""

    def __init__(self, impl: ResidualLogDet):
        self.impl, self.terms, self.calls = impl, 0, 0

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.impl.forward(g, x, terms)
        self.terms += getattr(self.impl, "last_terms", None) or terms
        self.calls += 1
        return out

    @property
    def mean(self) -> float:
        return self.terms / self.calls if self.calls else math.nan


def versus_normflows(
    s: Setup, impl: ResidualLogDet, params: Mapping[str, Any], cfg: Mapping[str, Any], ctx: Context
) -> Versus | None:
    """The method's training step and normflows' (``NormflowsResidual``, its documented setting) on the same
    model at the same series length, timed in alternating pairs within this case (``paired_interval``; pairs
    are added while the 95% interval still holds ``checks.TARGET``): single steps (``throughput_vs_normflows``)
    and chunks of ``paired_chunk`` consecutive steps (``training_throughput_vs_normflows``, over which normflows'
    random series lengths average towards their mean, as over a training run). Each ratio is normflows' time over
    the method's: the method's throughput over normflows'. Both sides' mean series terms per block and step are
    recorded beside them (``series_terms``, ``normflows_series_terms``). None where the comparison does not apply:
    another method, a non-density experiment, c >= 1 or no normflows installed. The protocol restores the model,
    random streams and batches afterwards, as after the engine's steps."""
    c, name = params["c"], getattr(getattr(impl, "manifest", None), "name", None)
    if name not in checks.PAIRED_METHODS or not s.density or c is None or c >= 1:
        return None
    if importlib.util.find_spec("normflows") is None:
        return None
    from reference_impls.iresnet.normflows_residual import NormflowsResidual

    terms, rounds, chunk = int(params["terms"]), cfg["paired_rounds"], cfg["paired_chunk"]
    ours, theirs = CountedTerms(impl), CountedTerms(NormflowsResidual())
    step, peer = _train_step(s, ours, terms), _train_step(s, theirs, terms)
    step(), peer()  # warm-up: normflows' blocks are built on their first call
    ours.terms = ours.calls = theirs.terms = theirs.calls = 0
    clock, found = ctx.meter.clock, Versus()

    def record(metric: str, paired: PairedRatio) -> None:
        found.metrics[metric], found.spread[metric] = paired.median, paired.iqr
        found.intervals[metric] = paired.interval

    record(checks.STEP_PAIRED, paired_interval(peer, step, clock, rounds, bound=checks.TARGET))

    def chunk_of(fn: Callable[[], float]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(chunk):
                fn()

        return run

    paired = paired_interval(chunk_of(peer), chunk_of(step), clock, rounds, bound=checks.TARGET, max_rounds=2 * rounds)
    record(checks.TRAINING_PAIRED, paired)
    found.metrics["series_terms"], found.metrics["normflows_series_terms"] = ours.mean, theirs.mean
    return found


def _random_streams(device: torch.device) -> Callable[[], None]:
    """A function that puts Python's, NumPy's and torch's random streams (CPU, and ``device`` if CUDA: Hutchinson
    probes, roulette lengths, normflows' NumPy draws) back as they are now."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore() -> None:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)

    return restore


def _evaluate(
    s: Setup, impl: ResidualLogDet, params: Mapping[str, Any], cfg: Mapping[str, Any], ctx: Context, trains: bool
) -> CaseResult:
    c, terms, run = params["c"], int(params["terms"]), cfg[params["experiment"]]
    contractive = c is not None and c < 1
    metrics: dict[str, float] = {}
    checks: dict[str, Check] = {}
    series: dict[str, list[list[float]]] = {}
    stopped = ""
    if trains:
        step, losses, steps = _train_step(s, impl, terms), [], run["steps"]
        try:
            ctx.meter.phase("training", lambda: _fit(step, steps, losses), work={"samples": steps * run["batch"]})
        except TrainingStopped as stop:
            if contractive:
                raise RuntimeError(f"training diverged at step {stop.step}: non-finite loss at c={c}") from None
            stopped = f"; training stopped at step {stop.step} (non-finite loss)"
        series["train_loss"] = losses[:: max(len(losses) // 200, 1)]
    s.model.eval()
    converge(s.model, cfg["converge_iterations"])
    if trains:
        metrics.update(s.evaluate())
    if s.density and s.dim <= cfg["exact_max_dim"]:
        err = measures.estimator_error(s.flow, impl, s.probe, terms, cfg["estimator_draws"])
        metrics.update(logdet_bias=err.bias, logdet_std=err.std)
        checks.update(estimator_checks(impl.series, err, terms))
    probe_work = {"samples": len(s.probe)}
    ctx.meter.phase("eval", _eval_step(s, impl, terms), repeat=cfg["eval_repeat"], warmup=1, work=probe_work)

    inv = measures.invert(s.flow, impl, s.probe, cfg["inverse_tol"], cfg["inverse_max_iter"])
    metrics.update(inverse_error=inv.error, inverse_iterations=inv.iterations, inverse_residual=inv.residual)
    checks["inverse_error"] = inverse_check(inv, cfg["inverse_max_iter"])
    metrics["lipschitz_measured"] = measures.lipschitz(s.flow, s.probe, cfg["lipschitz_iterations"])
    if c is not None:
        checks["lipschitz"] = lipschitz_check(metrics["lipschitz_measured"], c)
    if s.density and s.dim == 2 and trains:
        series["samples"] = _samples(s, impl, cfg)
        series["data"] = s.probe.cpu().tolist()

    invalid = _invalid_reason(c, contractive, s.density, inv, cfg["inverse_max_iter"])
    if invalid:  # numbers of a non-invertible model: keep the finite ones, unranked, with the reason
        invalid += stopped
        metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
        checks = {k: v for k, v in checks.items() if math.isfinite(v.value) and math.isfinite(v.threshold)}
    note = getattr(impl, "note", "") or None
    return CaseResult(metrics, dataset=s.dataset, checks=checks, series=series, invalid_reason=invalid, note=note)


def inverse_check(inv: measures.Inversion, max_iter: int) -> Check:
    """``inverse_error``: the relative error of F^-1(F(x)) at most ``INVERSE_ERROR_MAX``."""
    return Check.at_most(
        inv.error, INVERSE_ERROR_MAX, f"relative error of F^-1(F(x)), at most {max_iter} evaluations of g per block"
    )


def lipschitz_check(measured: float, c: float) -> Check:
    """``lipschitz``: the largest measured ||J_g(x)||_2 at most the case's c plus ``LIPSCHITZ_TOL``."""
    return Check.at_most(measured, c + LIPSCHITZ_TOL, f"largest ||J_g(x)||_2 at most c + {LIPSCHITZ_TOL}")


def estimator_checks(kind: str, err: measures.EstimatorError, terms: int) -> dict[str, Check]:
    """Roulette: |bias| within 3 standard errors (unbiased); truncated: |bias| within the n-term bound + 3 SE."""
    if kind == "roulette":
        return {
            "logdet_unbiased": Check.at_most(
                abs(err.bias), 3 * err.bias_se, "|mean log-det error| within 3 standard errors"
            )
        }
    if kind == "truncated" and math.isfinite(err.bound):
        return {
            "logdet_bias_bound": Check.at_most(
                abs(err.bias),
                err.bound + 3 * err.bias_se,
                f"|mean log-det error| within the {terms}-term bound -d(log(1-s) + sum_k s^k/k) + 3 SE",
            )
        }
    return {}


def _trains(s: Setup, impl: ResidualLogDet, terms: int) -> bool:
    """Whether the method can train this experiment: its log-det carries a gradient (classification uses none)."""
    if not s.density:
        return True
    with torch.enable_grad():
        _, logdet = s.flow.forward_logdet(s.probe[:4].clone(), lambda g, h: impl.forward(g, h, terms))
    return logdet.requires_grad


def _train_step(s: Setup, impl: ResidualLogDet, terms: int) -> Callable[[], float]:
    """One optimiser step (its own optimiser); returns the loss, or NaN (no update) when the loss is not finite."""
    opt = s.optimizer()

    def logdet(g: torch.nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return impl.forward(g, h, terms)

    def step() -> float:
        s.model.train()
        batch = s.batches.next()
        opt.zero_grad(set_to_none=False)
        with parametrize.cached():
            loss = s.loss(batch, logdet)
            if not torch.isfinite(loss):
                return math.nan
            loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def _fit(step: Callable[[], float], steps: int, losses: list[list[float]]) -> None:
    """``steps`` training steps, appending [i, loss]; raises ``TrainingStopped`` at the first non-finite loss."""
    for i in range(steps):
        loss = step()
        if not math.isfinite(loss):
            raise TrainingStopped(i)
        losses.append([i, loss])


def _eval_step(s: Setup, impl: ResidualLogDet, terms: int) -> Callable[[], None]:
    """Forward + log-det of the probe batch without gradients (classification: inference)."""

    def step() -> None:
        with torch.no_grad():
            if s.density:
                s.flow.forward_logdet(s.probe, lambda g, h: impl.forward(g, h, terms))
            else:
                s.model(s.probe)

    return step


def _samples(s: Setup, impl: ResidualLogDet, cfg: Mapping[str, Any]) -> list[list[float]]:
    """x = F^-1(z), z ~ N(0, I), with the method's inverse."""
    z = torch.randn(cfg["n_samples"], s.dim, generator=torch.Generator().manual_seed(1)).to(s.probe)
    x = s.flow.inverse(z, lambda g, y: impl.inverse(g, y, cfg["inverse_tol"], cfg["inverse_max_iter"]))
    return x.detach().cpu().tolist()


def _invalid_reason(
    c: float | None, contractive: bool, density: bool, inv: measures.Inversion, limit: int
) -> str | None:
    """Why the case's numbers cannot be ranked: c >= 1 (or c None for a density), or an inversion that failed."""
    failed = max(inv.residual, inv.error) > NOT_CONVERGED
    where = (
        f"fixed-point inversion {'did not converge' if failed else 'converged'}: residual {inv.residual:.2e}, "
        f"reconstruction error {inv.error:.2e}, {inv.iterations} evaluations of g (limit {limit})"
    )
    if not contractive and (density or c is not None):
        return f"c = {c} requested: blocks are not guaranteed contractive (need c < 1); {where}"
    if density and failed:
        return f"not invertible: {where}"
    return None
