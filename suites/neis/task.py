"""``neis``: estimate normalising constants with non-equilibrium importance sampling, against vanilla IS and AIS.

Protocol per case (one estimator, one target, one seed; Cao & Vanden-Eijnden 2022, section 5):
1. ``fit`` the estimator within the scale's budget (NEIS trains its velocity field on the second moment; vanilla IS
   and AIS do nothing), timed, its cost in U1 evaluations counted;
2. ``sample`` ``n_eval`` independent estimates of Z1; the counter of U1 evaluations (values + gradients) gives the
   measured cost per sample c, and their spread around the exact Z1 the relative variance and MSE per sample;
3. vanilla IS at equal cost: as many vanilla samples as the case's total sampling cost, drawn here, so its
   empirical relative variance is measured beside the method's; for Gaussian mixtures vanilla's exact variance is
   known in closed form and is the reference of ``variance_reduction`` (the empirical one underestimates it
   whenever the samples miss the far modes, which at these sizes is almost always);
4. wall time and peak memory of sampling (``ctbench.measure``), throughput in samples and in U1 evaluations per s.

A case whose mean is more than 3 standard errors from the exact Z1 is ``invalid``: its samples missed part of the
target's mass, so its empirical variance (and any reduction computed from it) is not to be trusted or ranked.
A velocity field whose ODE blows up during training makes the case ``invalid`` with the step; a potential that
returns NaN or inf fails the case with the count and location of the bad points.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ctbench import CaseResult, Check, Context, Metric, Paper, RunCheck, Scale, Task
from ctbench.measure import peak_memory, throughput, time_call
from suites.neis.interface import Budget, Estimator, FlowDiverged
from suites.neis.problem import Problem, vanilla_log_weights
from suites.neis.stats import Estimates
from suites.neis.targets import NAMES, make_target

MAX_Z_SCORE = 3.0  # unbiasedness: the mean within 3 standard errors of Z
VANILLA_CHUNK = 1 << 16
BUDGET_KEYS = tuple(Budget.__dataclass_fields__)

_COMMON = {
    "mala_step": 0.05,
    "exact_div_max_dim": 10,
    "seed_fraction": 0.1,  # the paper's assisted start (biased_percent 0.1, decaying to 0 at 60% of the steps)
    "seed_until": 0.6,
    "lr": 0.3,  # the paper's eg1 step (eg2 used 0.5)
    "chunk": 4096,
}


class NEISTask(Task):
    name = "neis"
    paper = Paper(
        title="Learning Optimal Flows for Non-Equilibrium Importance Sampling",
        authors="Yu Cao, Eric Vanden-Eijnden",
        venue="NeurIPS 2022",
        url="https://arxiv.org/abs/2206.09908",
    )
    summary = (
        "Estimate Z = int exp(-U1) by transporting N(0, I) samples along a trained flow and averaging importance "
        "weights over whole trajectories (NEIS), against vanilla importance sampling and annealed importance "
        "sampling, at equal cost in evaluations of U1 and its gradient."
    )
    interface = Estimator
    primary_metric = "variance_reduction"
    metrics = {
        "variance_reduction": Metric(
            "x",
            True,
            "vanilla IS relative variance / the method's, at equal cost in U1 evaluations (vanilla's "
            "exact variance for Gaussian mixtures, its equal-cost empirical one otherwise)",
        ),
        "variance_reduction_per_sample": Metric(
            "x",
            None,
            "vanilla's relative variance / the method's, per sample (the paper's figure; ignores cost)",
        ),
        "variance_reduction_empirical": Metric(
            "x",
            None,
            "as variance_reduction, against vanilla's empirical variance measured in this case at equal cost",
        ),
        "rel_var": Metric("", False, "Var(Z_hat)/Z^2 of one sample"),
        "rel_mse": Metric("", False, "E[(Z_hat - Z)^2]/Z^2 of one sample"),
        "rel_var_x_cost": Metric(
            "",
            False,
            "rel_var x cost_per_sample: relative variance at a budget of one U1 "
            "evaluation (divide by the budget for any equal-cost comparison)",
        ),
        "rel_mse_x_cost": Metric("", False, "rel_mse x cost_per_sample"),
        "mean_ratio": Metric("", None, "mean of the n_eval estimates / exact Z"),
        "bias_z_score": Metric("", None, "(mean - Z) / standard error of the mean"),
        "cost_per_sample": Metric("U1 evals", False, "evaluations of U1 plus of its gradient per sample, counted"),
        "vanilla_rel_var": Metric("", None, "vanilla IS relative variance per sample (exact where closed-form)"),
        "vanilla_rel_var_empirical": Metric(
            "",
            None,
            "vanilla IS relative variance per sample, measured on as many samples as this case's sampling cost",
        ),
        "training_time_s": Metric("s", False, "wall time of fit"),
        "training_cost": Metric("U1 evals", False, "evaluations of U1 plus its gradient during fit"),
        "final_log10_rel_second_moment": Metric("", False, "log10 E[Z_hat^2]/Z^2 on the last training batch"),
        "sample_time_s": Metric("s", False, "median wall time of sampling n_time estimates"),
        "throughput_samples_s": Metric("samples/s", True, "estimates per second while sampling"),
        "u1_evals_per_s": Metric("U1 evals/s", True, "U1 evaluations per second while sampling"),
        "sample_peak_memory_bytes": Metric("bytes", False, "working memory of sampling n_time estimates"),
        "training_steps_done": Metric("steps", None, "optimiser steps completed before the flow blew up"),
    }
    scales = {
        "smoke": Scale(
            "smoke",
            grid={"target": ["eg1", "eg2"]},
            config={
                **_COMMON,
                "time_steps": 20,
                "temperatures": 10,
                "train_steps": 30,
                "train_batch": 128,
                "width": 20,
                "n_eval": 2000,
                "n_time": 500,
                "timing_repeat": 3,
                "min_variance_reduction": 10.0,
            },
            timeout_s=120,
        ),
        "small": Scale(
            "small",
            grid={"target": list(NAMES)},
            config={
                **_COMMON,
                "time_steps": 50,
                "temperatures": 25,
                "train_steps": 150,  # eg2 needs them: 50 steps of width 20 left its variance 40-460 (20000 samples)
                "train_batch": 200,
                "width": 30,
                "n_eval": 20000,
                "n_time": 2000,
                "timing_repeat": 5,
                "min_variance_reduction": 1e3,
            },
            timeout_s=1800,
        ),
        "full": Scale(
            "full",
            grid={"target": list(NAMES)},
            # the paper's budgets: N = 100, 1000 samples per step, 200 steps, 30 hidden units
            config={
                **_COMMON,
                "time_steps": 100,
                "temperatures": 50,
                "train_steps": 200,
                "train_batch": 1000,
                "width": 30,
                "n_eval": 100000,
                "n_time": 10000,
                "timing_repeat": 5,
                "min_variance_reduction": 1e3,
            },
            timeout_s=4 * 3600,
        ),
    }

    def run(self, impl: Estimator, scale: Scale, params: Mapping[str, Any], ctx: Context) -> CaseResult:
        cfg = scale.config
        target = make_target(params["target"])
        problem = Problem(target, ctx.device)
        try:
            curve, train_time = _fit(impl, problem, cfg, ctx)
        except FlowDiverged as exc:
            return CaseResult(
                {"training_steps_done": float(exc.step)},
                target.dataset,
                series=_curve_series(exc.curve, target.log_z),
                invalid_reason=f"the velocity field's ODE blew up during training: {exc}",
            )
        metrics = {"training_time_s": train_time, "training_cost": float(problem.counter.total)}
        if curve:
            metrics["final_log10_rel_second_moment"] = (curve[-1] - 2 * target.log_z) / math.log(10)

        problem.counter.reset()
        est = Estimates.of(_sample(impl, problem, cfg["n_eval"]), target.log_z)
        total_cost = problem.counter.total
        if total_cost == 0:
            raise ValueError(f"{type(impl).__name__}.sample never evaluated U1: its cost cannot be measured")
        cost = total_cost / est.n
        vanilla = Estimates.of(vanilla_log_weights(problem, total_cost, VANILLA_CHUNK), target.log_z)
        vanilla_rel_var = target.vanilla_rel_var if target.vanilla_rel_var is not None else vanilla.rel_var
        metrics.update(
            rel_var=est.rel_var,
            rel_mse=est.rel_mse,
            mean_ratio=est.mean,
            cost_per_sample=cost,
            rel_var_x_cost=est.rel_var * cost,
            rel_mse_x_cost=est.rel_mse * cost,
            vanilla_rel_var=vanilla_rel_var,
            vanilla_rel_var_empirical=vanilla.rel_var,
        )
        invalid = None
        if est.rel_var > 0 and math.isfinite(est.z_score):
            metrics.update(
                bias_z_score=est.z_score,
                variance_reduction=vanilla_rel_var / (est.rel_var * cost),
                variance_reduction_per_sample=vanilla_rel_var / est.rel_var,
                variance_reduction_empirical=vanilla.rel_var / (est.rel_var * cost),
            )
            if abs(est.z_score) > MAX_Z_SCORE:
                invalid = (
                    f"mean of {est.n} estimates is {est.mean:.4g} Z, {est.z_score:+.1f} standard errors from Z: the "
                    "samples missed part of the target's mass, so the empirical variance is not reliable"
                )
        else:
            invalid = f"all {est.n} estimates are equal ({est.mean:.4g} Z): no variance to measure"

        step = functools.partial(_sample, impl, problem, cfg["n_time"])
        timing = time_call(step, ctx.device, repeat=cfg["timing_repeat"], warmup=1)
        metrics["sample_time_s"] = timing.median
        metrics["throughput_samples_s"] = throughput(cfg["n_time"], timing.median)
        metrics["u1_evals_per_s"] = throughput(round(cfg["n_time"] * cost), timing.median)
        metrics["sample_peak_memory_bytes"] = float(peak_memory(step, ctx.device).step_bytes)
        checks = {}
        if "bias_z_score" in metrics:
            checks["unbiased"] = Check.at_most(abs(est.z_score), MAX_Z_SCORE, "|mean - Z| / standard error of mean")
        return CaseResult(
            metrics,
            target.dataset,
            checks=checks,
            series=_curve_series(curve, target.log_z),
            spread={"sample_time_s": timing.iqr},
            invalid_reason=invalid,
        )

    def hot_step(self, impl: Estimator, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Callable:
        """One draw of ``n_time`` estimates from the fitted estimator."""
        problem = Problem(make_target(params["target"]), ctx.device)
        _fit(impl, problem, scale.config, ctx)
        return functools.partial(_sample, impl, problem, scale.config["n_time"])

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        from suites.neis.checks import paper_checks

        thresholds = {name: s.config["min_variance_reduction"] for name, s in self.scales.items()}
        return paper_checks(self.name, cases, thresholds)

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from suites.neis.plots import neis_plots

        return neis_plots(cases, records)


def budget_of(cfg: Mapping[str, Any]) -> Budget:
    return Budget(**{k: cfg[k] for k in BUDGET_KEYS})


def _fit(impl: Estimator, problem: Problem, cfg: Mapping[str, Any], ctx: Context) -> tuple[list[float], float]:
    curves: list[list[float]] = []
    timing = time_call(lambda: curves.append(impl.fit(problem, budget_of(cfg))), ctx.device, repeat=1, warmup=0)
    return curves[0], timing.median


def _sample(impl: Estimator, problem: Problem, n: int) -> torch.Tensor:
    log_z_hat = impl.sample(problem, n)
    if tuple(log_z_hat.shape) != (n,):
        raise ValueError(f"{type(impl).__name__}.sample returned shape {tuple(log_z_hat.shape)}, expected ({n},)")
    return log_z_hat


def _curve_series(curve: Sequence[float], log_z: float) -> dict[str, list[list[float]]]:
    """log10 of the relative second moment E[Z_hat^2]/Z^2 (1 + relative variance) per training step."""
    if not curve:
        return {}
    return {"log10_rel_second_moment": [[float(i), (c - 2 * log_z) / math.log(10)] for i, c in enumerate(curve)]}
