"""The protocol of one case (one estimator, one target, one seed; Cao & Vanden-Eijnden 2022, section 5).

``prepare``:
1. ``fit`` the estimator within the scale's budget for the target (NEIS trains its velocity field on the second
   moment; vanilla IS and AIS do nothing), timed as the ``training`` phase, its cost in U1 evaluations counted; a
   flow that blows up makes the case invalid with the step it reached and the curve so far;
2. draw ``n_eval`` independent estimates of Z1; the counter of U1 evaluations (values + gradients) gives the
   measured cost per sample c = (U1 evaluations) / n_eval, and their spread around the exact Z1 the relative
   variance and MSE per sample;
3. vanilla IS at equal cost: as many vanilla samples as the case's total sampling cost C = c n_eval, so its
   empirical relative variance is measured beside the method's;
4. hand the engine the step, one draw of ``n_time`` estimates, whose work is n_time samples and round(n_time c)
   U1 evaluations.

``evaluate`` (after the engine measured the step) assembles the metrics: at equal cost an estimator costing c per
sample has relative variance rel_var c / C, so

    variance_reduction = vanilla_rel_var / (rel_var c)      (vanilla costs 1 per sample),

and, with the fit's U1 evaluations T counted and spread over the n_eval estimates (c' = c + T / n_eval; AIS and
vanilla IS fit nothing, T = 0), ``rel_var_x_cost_with_training`` = rel_var c' and
``variance_reduction_with_training`` = vanilla_rel_var / (rel_var c'). The paper compares at the cost of the
estimates (``variance_reduction``); the second pair says what a trained flow costs in all, for this n_eval.

with vanilla's exact relative variance where the target is a Gaussian mixture (closed form), its equal-cost
empirical one otherwise. A mean more than ``MAX_Z_SCORE`` standard errors from Z leaves the case completed but
``invalid_reason`` set: its samples missed part of the mass, so its variance is not to be ranked.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ctbench import CaseResult, Context, Invalid, Prepared, Scale, expect_tensor
from suites.neis.checks import bias_reason, unbiased
from suites.neis.interface import Budget, Estimator, FlowDiverged
from suites.neis.problem import Problem, vanilla_log_weights
from suites.neis.stats import Estimates
from suites.neis.targets import Target, make_target

VANILLA_CHUNK = 1 << 16


def prepare(impl: Estimator, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
    """Steps 1-4 above: fit, draw ``n_eval`` estimates and count their cost, vanilla IS at equal cost, the step."""
    cfg = scale.config
    target = make_target(params["target"])
    problem = Problem(target, ctx.device)
    try:
        curve = ctx.meter.phase("training", lambda: impl.fit(problem, Budget.of(cfg, target.name)))
    except FlowDiverged as exc:
        raise Invalid(
            f"the velocity field's ODE blew up during training: {exc}",
            target.dataset,
            metrics={"training_steps_done": float(exc.step)},
            series=curve_series(exc.curve, target.log_z),
        ) from exc
    training = {"training_cost": float(problem.counter.total)}
    if curve:
        training["final_log10_rel_second_moment"] = (curve[-1] - 2 * target.log_z) / math.log(10)

    problem.counter.reset()
    estimates = Estimates.of(draw(impl, problem, cfg["n_eval"]), target.log_z)
    total_cost = problem.counter.total
    if total_cost == 0:
        raise ValueError(f"{type(impl).__name__}.sample never evaluated U1: its cost cannot be measured")
    cost = total_cost / estimates.n
    vanilla = Estimates.of(vanilla_log_weights(problem, total_cost, VANILLA_CHUNK), target.log_z)

    def evaluate(_: Any) -> CaseResult:
        return evaluation(target, estimates, vanilla, cost, training, curve)

    n_time = cfg["n_time"]
    step = functools.partial(draw, impl, problem, n_time)
    return Prepared(step, evaluate, work={"samples": n_time, "u1_evals": round(n_time * cost)})


def draw(impl: Estimator, problem: Problem, n: int) -> torch.Tensor:
    """``n`` estimates log Z_hat from the estimator, their shape and dtype checked."""
    return expect_tensor(impl.sample(problem, n), (n,), problem.dtype, f"{type(impl).__name__}.sample (log Z_hat)")


def evaluation(
    target: Target,
    est: Estimates,
    vanilla: Estimates,
    cost: float,
    training: Mapping[str, float],
    curve: Sequence[float],
) -> CaseResult:
    """The case's metrics, its unbiasedness check and why it is not to be ranked, if so."""
    vanilla_rel_var = target.vanilla_rel_var if target.vanilla_rel_var is not None else vanilla.rel_var
    # training's U1 evaluations spread over the case's estimates: the cost per sample with the fit counted
    cost_with_training = cost + training.get("training_cost", 0.0) / est.n
    metrics = {
        **training,
        "rel_var": est.rel_var,
        "rel_mse": est.rel_mse,
        "mean_ratio": est.mean,
        "cost_per_sample": cost,
        "rel_var_x_cost": est.rel_var * cost,
        "rel_var_x_cost_with_training": est.rel_var * cost_with_training,
        "rel_mse_x_cost": est.rel_mse * cost,
        "vanilla_rel_var": vanilla_rel_var,
        "vanilla_rel_var_empirical": vanilla.rel_var,
    }
    checks = {}
    if est.rel_var > 0 and math.isfinite(est.z_score):
        metrics.update(
            bias_z_score=est.z_score,
            variance_reduction=vanilla_rel_var / (est.rel_var * cost),
            variance_reduction_with_training=vanilla_rel_var / (est.rel_var * cost_with_training),
            variance_reduction_per_sample=vanilla_rel_var / est.rel_var,
            variance_reduction_empirical=vanilla.rel_var / (est.rel_var * cost),
        )
        checks["unbiased"] = unbiased(est)
    return CaseResult(
        metrics,
        target.dataset,
        checks=checks,
        series=curve_series(curve, target.log_z),
        invalid_reason=bias_reason(est),
    )


def curve_series(curve: Sequence[float], log_z: float) -> dict[str, list[list[float]]]:
    """log10 of the relative second moment E[Z_hat^2]/Z^2 (1 + relative variance) per training step."""
    if not curve:
        return {}
    return {"log10_rel_second_moment": [[float(i), (c - 2 * log_z) / math.log(10)] for i, c in enumerate(curve)]}
