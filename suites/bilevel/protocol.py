"""The protocol of one case: one solver on one problem.

``prepare`` builds the problem, computes h* (cached), tunes the solver's steps (``tune.tune``: a grid searched
on held-apart seeds under the scale's budget of points, the same for every solver; cached) and ``init``-s the
solver at the chosen values; the engine measures ``solver.step`` on that fresh state (time, working memory).
``evaluate`` first checks that the solver's stochastic directions, where it exposes them, are unbiased
(``checks.directions_check``: ``init``, a few steps, directions drawn without moving), then runs the race
(``race.run_solver``: ``init`` again, which resets the solver, then steps under the sample budget on
``ctx.meter.clock``, evaluations off the clock), times one inner SGD step at the same batch
size, through the same oracles as the solvers (closed form where the problem has it), as the phase ``sgd_step``,
counts the solver's oracle calls per iteration in its steady state (``oracle_counts``), times solver steps and SGD
steps in interleaved pairs (the cost ratio, a measurement) and returns the per-case metrics: time and samples to
h - h* <= 1e-3, final h - h*, ||grad h||^2, test accuracy, the rate's R^2, the oracle calls and samples of each
kind per iteration, the cost of a step against an SGD step, the solver's state and what a SAGA table must hold on
this problem (``saga_table``), the tuned values (``tuned_*``, with the grid, the scores and the choice in the
case's note and its series ``tuning_scores``). A race that diverges raises ``ctbench.Invalid`` with what it
measured before, its reason the iteration and the tuning's note (the values it ran at).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ctbench import CaseResult, Context, Invalid, Prepared, Scale
from ctbench.api.measure import PairedRatio, StepStats, paired_interval
from suites.bilevel.checks import TARGET, case_checks, directions_check
from suites.bilevel.interface import BilevelSolver
from suites.bilevel.problem import ORACLES, BilevelProblem
from suites.bilevel.problems import build, optimal_value, settings
from suites.bilevel.race import Clock, Evaluator, Trace, run_solver
from suites.bilevel.tune import TUNED, stored_choice, tune

FLOOR = 1e-12  # suboptimality below which float64 rounding dominates: left out of rate fits
COST_ROUNDS = 60  # interleaved (solver step, SGD step) pairs of the cost ratio
SGD_STEP_SIZE = 1e-3  # of the reference inner SGD step (its cost does not depend on it)
COUNT_MIN_STEPS = 5  # the oracle counts' window: at least these steps and one pass over the inner and outer
COUNT_MAX_STEPS = 10_000  # samples, at most these steps
OPAQUE = (type, types.ModuleType, types.FunctionType, types.MethodType, torch.Generator)  # not walked for tensors


def prepare(impl: BilevelSolver, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
    name = params["problem"]
    problem = build(name, scale.config, ctx.data_root, ctx.cache_dir).to(ctx.device)
    s = settings(name, scale.config)
    evaluator = problem.to(ctx.device, torch.float64)
    h_star = optimal_value(evaluator, ctx.cache_dir, scale.config["hstar_max_iter"].get(problem.kind, 0))
    if ctx.stored is None:
        tuning = tune(impl, problem, evaluator, h_star, s, scale.config["tuning"], ctx)
    else:  # a stored case's step timed again: its search's choice, not a new search
        tuning = stored_choice(impl, ctx.stored)
    tuned = {k: v for k, v in tuning.metrics().items() if k == "tuning_points" or k.removeprefix("tuned_") in TUNED}
    impl.init(problem, s["batch_size"], ctx.seed)

    def evaluate(stats: StepStats | None) -> CaseResult:
        unbiased = directions_check(impl, problem, s["batch_size"], ctx.seed)
        trace = run_solver(impl, problem, Evaluator(evaluator, h_star), s, ctx.meter.clock, ctx.seed)
        metrics = {**trace_metrics(trace, h_star, problem), **tuned}
        if trace.diverged_at is None:
            metrics.update(oracle_counts(impl.step, problem))
        sgd = sgd_step(problem, s["batch_size"])
        ctx.meter.phase("sgd_step", sgd, repeat=20, warmup=2)
        spread, intervals = {}, {}
        if stats is not None and trace.diverged_at is None:
            paired = cost_ratio(impl.step, sgd, ctx.meter.clock)
            metrics["cost_ratio_vs_sgd"], spread["cost_ratio_vs_sgd"] = paired.median, paired.iqr
            intervals["cost_ratio_vs_sgd"] = paired.interval
        curves = {**series(trace), **tuning.series()}
        if trace.diverged_at is not None:
            ran = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in impl.hyperparameters(problem).items())  # fmt: skip
            reason = f"diverged at iteration {trace.diverged_at} (an iterate or h not finite)"
            reason += f" at {ran}; {tuning.note()}" if ran else f"; {tuning.note()}"
            raise Invalid(reason, problem.dataset, metrics, curves)
        metrics["state_bytes"] = float(state_bytes(impl, problem))
        metrics.update(saga_table(problem, s["batch_size"]))
        checks = {**case_checks(trace), **unbiased}
        return CaseResult(metrics, problem.dataset, checks=checks, series=curves, note=tuning.note(), spread=spread,
                          intervals=intervals)  # fmt: skip

    return Prepared(impl.step, evaluate)


def oracle_counts(step: Callable[[], Any], problem: BilevelProblem) -> dict[str, float]:
    """The solver's oracle calls and samples of each kind (``suites.bilevel.problem.ORACLES``) per iteration, in its
    steady state: counted over a window after the race (so after ``init`` and SABA's fill of its table, and past
    SABA's first pass, where benchopt's variant fills it at zero cost), of at least ``COUNT_MIN_STEPS`` steps that
    process one pass over the inner and outer samples (at most ``COUNT_MAX_STEPS``): once-per-pass work is in it.
    ``oracle_calls_<kind>`` and ``oracle_samples_<kind>`` (a call on b samples counts b)."""
    before, samples, steps = problem.oracles.copy(), problem.samples, 0
    one_pass = problem.n_inner + problem.n_outer
    while steps < COUNT_MIN_STEPS or (problem.samples - samples < one_pass and steps < COUNT_MAX_STEPS):
        step()
        steps += 1
    counted = problem.oracles.since(before)
    return {
        **{f"oracle_calls_{kind}": counted.calls[kind] / steps for kind in ORACLES},
        **{f"oracle_samples_{kind}": counted.samples[kind] / steps for kind in ORACLES},
    }


def saga_table(problem: BilevelProblem, batch_size: int) -> dict[str, float]:
    """What SABA must hold between steps on this problem: its iterates z, v, x (2 dz + dx numbers) and a SAGA table
    of one entry per sample of each finite sum (per fixed batch, under the problem's fixed-batch sampling, as
    benchopt's SABA), each entry the quantities the estimates are made of:

    - per sample, rows: inner 2 dz + dx_g numbers (d_z g_i, d2_zz g_i v, d2_xz g_i v; dx_g = 1 where g_i depends on
      x only through x_i, else dx), outer dz + dx_f (d_z f_j, d_x f_j; dx_f = dx where F depends on x, else 0);
    - per sample, on a generalised linear model (``linear_model()``: each row a scalar times the sample's features
      plus a part no sample changes): 2 numbers for every inner and outer sample (the scalars; an outer sample's
      second one is unused, kept so that one gather serves both sums);
    - per fixed batch (ceil(n / b) inner, ceil(m / b) outer entries): the batch means, inner 2 dz + dx (the cross
      term in x's space), outer dz + dx_f.

    ``saga_state_bytes`` = (iterates + table numbers) x the problem's element size; ``saga_table_entries`` = the
    entries."""
    p, dz, dx = problem, problem.z0.numel(), problem.x0.numel()
    dx_f = dx if p.outer_uses_x else 0
    if p.sampling == "batches":
        b = min(batch_size, p.n_inner), min(batch_size, p.n_outer)
        entries = -(-p.n_inner // b[0]), -(-p.n_outer // b[1])
        numbers = entries[0] * (2 * dz + dx) + entries[1] * (dz + dx_f)
    elif p.linear_model() is not None:
        entries = p.n_inner, p.n_outer
        numbers = 2 * (p.n_inner + p.n_outer)
    else:
        entries = p.n_inner, p.n_outer
        numbers = p.n_inner * (2 * dz + (1 if p.per_sample_x else dx)) + p.n_outer * (dz + dx_f)
    return {
        "saga_state_bytes": float((2 * dz + dx + numbers) * p.z0.element_size()),
        "saga_table_entries": float(sum(entries)),
    }


def cost_ratio(step: Callable[[], Any], sgd: Callable[[], Any], clock: Clock, rounds: int = COST_ROUNDS) -> PairedRatio:
    """t(step) / t(sgd) over ``rounds`` interleaved pairs: the median, its IQR and 95% interval
    (``ctbench.api.measure.paired_interval``)."""
    return paired_interval(step, sgd, clock, rounds)


def fit_r2(xs: Sequence[float], ys: Sequence[float]) -> float:
    """R^2 of the least-squares line through (xs, ys): sxy^2 / (sxx syy)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return (sxy * sxy) / (sxx * syy) if sxx > 0 and syy > 0 else 0.0


def trace_metrics(trace: Trace, h_star: float, problem: BilevelProblem) -> dict[str, float]:
    """The race's metrics: its last evaluation, the first within ``TARGET`` of h*, the rate's R^2 (log10(h - h*)
    against samples, over the points above ``FLOOR``)."""
    last = trace.points[-1]
    metrics = {
        "final_suboptimality": last.suboptimality,
        "final_grad_norm2": last.grad_norm2,
        "reached_target": 0.0,
        "iterations": float(last.iteration if trace.diverged_at is None else trace.diverged_at),
        "samples": float(last.samples),
        "run_time_s": last.time_s,
        "h_star": h_star,
    }
    if last.test_accuracy is not None:
        metrics["final_test_accuracy"] = last.test_accuracy
    if problem.closed_form is not None:
        metrics["pl_constant"] = problem.closed_form.pl_constant
    hit = trace.first_below(TARGET)
    if hit is not None:
        metrics.update(reached_target=1.0, time_to_target_s=hit.time_s, samples_to_target=float(hit.samples))
    above = [(p.samples, math.log10(p.suboptimality)) for p in trace.points if p.suboptimality > FLOOR]
    if len(above) >= 3:
        metrics["rate_r2"] = fit_r2(*zip(*above, strict=True))
    return metrics


def series(trace: Trace) -> dict[str, list[list[float]]]:
    """``<quantity>_vs_time`` and ``<quantity>_vs_samples`` for h - h*, ||grad h||^2 and the test accuracy."""
    out: dict[str, list[list[float]]] = {}
    for key in ("suboptimality", "grad_norm2", "test_accuracy"):
        if getattr(trace.points[0], key) is None:
            continue
        for axis in ("time_s", "samples"):
            name = f"{key}_vs_{'time' if axis == 'time_s' else 'samples'}"
            out[name] = [[float(getattr(p, axis)), float(getattr(p, key))] for p in trace.points]
    return out


def sgd_step(problem: BilevelProblem, batch_size: int) -> Callable[[], None]:
    """One SGD step on the inner problem at the case's batch size, z <- z - rho d_z G_B(z, x), on a copy of z0
    (the reference cost of the task's cost check), through the problem's oracles: the closed-form path where the
    problem has one, as for every solver."""
    gen = torch.Generator(problem.device).manual_seed(0)
    z, x = problem.z0.clone(), problem.x0

    def step() -> None:
        z.sub_(SGD_STEP_SIZE * problem.inner_grad(z, x, problem.draw("inner", batch_size, gen)))

    return step


def state_bytes(solver: BilevelSolver, problem: BilevelProblem) -> int:
    """Bytes of the tensors a solver holds between steps (iterates, tables, momentum), each storage counted once;
    the problem's data excluded: any storage the problem holds (its data, starting point, the layout of its data
    that ``linear_model()`` built and keeps), whether the solver refers to it or not."""
    problems = _storages(problem, lambda obj: False)
    return sum(size for ptr, size in _storages(solver, lambda obj: obj is problem).items() if ptr not in problems)


def _storages(root: Any, skip: Callable[[Any], bool]) -> dict[int, int]:
    """The storages of the tensors reachable from ``root`` through attributes, mappings, sequences and optimiser
    state (objects for which ``skip`` is true not entered): {data pointer: bytes}."""
    seen: set[int] = set()
    storages: dict[int, int] = {}

    def walk(obj: Any) -> None:
        if id(obj) in seen or skip(obj):
            return
        seen.add(id(obj))
        if isinstance(obj, Tensor):
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        elif isinstance(obj, Mapping):
            for value in obj.values():
                walk(value)
        elif isinstance(obj, (list, tuple, set)):
            for value in obj:
                walk(value)
        elif isinstance(obj, torch.optim.Optimizer):
            walk(obj.state)
        elif hasattr(obj, "__dict__") and not isinstance(obj, OPAQUE):
            walk(vars(obj))

    walk(root)
    return storages
