"""The convergence race: run a solver under a sample budget, evaluating it on the exact value function.

The clock counts the solver's ``init`` and ``step`` calls only, each timed by the ``clock`` the protocol hands in
(the engine's ``ctx.meter.clock``: one CUDA-synchronised timing per call); evaluations between steps (exact inner
solve, float64, not counted as samples) are off the clock, as in benchopt. A step that leaves a NaN or infinite
iterate, or an iterate whose h is not finite, stops the run: the trace records ``diverged_at`` with the
iteration, and keeps what was measured before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ctbench import expect_tensor
from suites.bilevel.exact import hypergradient
from suites.bilevel.interface import BilevelSolver
from suites.bilevel.problem import BilevelProblem

MIN_STEPS = 3  # steps taken even past the sample budget (a full-batch step can cost more than the budget)
Clock = Callable[[Callable[[], Any]], tuple[Any, float]]  # fn -> (its result, seconds it took)


@dataclass(frozen=True)
class Point:
    """One evaluation of the outer iterate."""

    iteration: int
    samples: int
    time_s: float
    suboptimality: float
    grad_norm2: float
    test_accuracy: float | None


@dataclass
class Trace:
    """The evaluations of one race, its clock's init time, and the iteration where it diverged (if it did)."""

    points: list[Point] = field(default_factory=list)
    init_time_s: float = 0.0
    diverged_at: int | None = None

    def first_below(self, target: float) -> Point | None:
        return next((p for p in self.points if p.suboptimality <= target), None)


class Evaluator:
    """h(x) - h*, ||grad h(x)||^2 at the exact inner solution and the test accuracy of z*(x), in float64.

    A problem with a closed form is evaluated by it; otherwise by ``exact.hypergradient``, warm-started at the
    previous evaluation's z*, v*."""

    def __init__(self, problem: BilevelProblem, h_star: float):
        self.problem, self.h_star = problem, h_star
        self.z, self.v = problem.z0.clone(), torch.zeros_like(problem.z0)

    def __call__(self, x: Tensor) -> tuple[float, float, float | None]:
        p, x = self.problem, x.detach().to(self.problem.device, self.problem.dtype)
        if p.closed_form is not None:
            return p.closed_form.value(x) - self.h_star, float(p.closed_form.grad(x).square().sum()), None
        hg = hypergradient(p, x, self.z, self.v)
        if torch.isfinite(hg.z).all() and torch.isfinite(hg.v).all():
            self.z, self.v = hg.z, hg.v
        accuracy = p.accuracy(hg.z, p.test) if p.accuracy is not None and p.test is not None else None
        return hg.value - self.h_star, float(hg.grad.square().sum()), accuracy


def outer(solver: BilevelSolver, problem: BilevelProblem) -> Tensor:
    """The solver's x, checked: shaped like ``problem.x0``, in the problem's dtype (else the case fails)."""
    x0 = problem.x0
    return expect_tensor(solver.outer_variable(), tuple(x0.shape), x0.dtype, f"{type(solver).__name__}.outer_variable")


def inner(solver: BilevelSolver, problem: BilevelProblem) -> Tensor | None:
    """The solver's z, where it keeps one, checked like ``outer`` against ``problem.z0``."""
    z, z0 = solver.inner_variable(), problem.z0
    return None if z is None else expect_tensor(z, tuple(z0.shape), z0.dtype, f"{type(solver).__name__}.inner_variable")


def _finite(*tensors: Tensor | None) -> bool:
    return all(t is None or bool(torch.isfinite(t).all()) for t in tensors)


def warm_up(problem: BilevelProblem) -> None:
    """Call every oracle once on two samples, so that first-call costs (allocator, dispatch caches) stay off
    the clock; reset the problem's sample counter."""
    idx = torch.arange(min(2, problem.n_inner, problem.n_outer), device=problem.device)
    z, x = problem.z0, problem.x0
    problem.inner_oracles(z, x, z, idx)
    problem.outer_grad(z, x, idx)
    problem.inner_per_sample(z, x, z, idx)
    problem.outer_per_sample(z, x, idx)
    problem.samples = 0


def run_solver(
    solver: BilevelSolver,
    problem: BilevelProblem,
    evaluator: Evaluator,
    settings: Mapping[str, Any],
    clock: Clock,
    seed: int,
) -> Trace:
    """``init`` the solver (which resets its state), then step until ``budget_samples`` samples are processed and
    at least ``MIN_STEPS`` steps are taken (or until ``max_time_s`` on the clock), evaluating about ``n_evals``
    times, evenly in samples."""
    trace = Trace()

    def evaluate(iteration: int, time_s: float) -> bool:
        sub, gn2, acc = evaluator(outer(solver, problem))
        if not (math.isfinite(sub) and math.isfinite(gn2)):
            return False
        trace.points.append(Point(iteration, problem.samples, time_s, sub, gn2, acc))
        return True

    warm_up(problem)
    _, elapsed = clock(lambda: solver.init(problem, settings["batch_size"], seed))
    elapsed = trace.init_time_s = float(elapsed)
    if not evaluate(0, elapsed):
        raise ValueError(f"{problem.name}: h(x) - h* or grad h is not finite at the initial point")
    every = settings["budget_samples"] / settings["n_evals"]
    next_eval, k = every, 0
    while (problem.samples < settings["budget_samples"] or k < MIN_STEPS) and elapsed < settings["max_time_s"]:
        elapsed += clock(solver.step)[1]
        k += 1
        if not _finite(outer(solver, problem), inner(solver, problem)):
            trace.diverged_at = k
            return trace
        if problem.samples >= next_eval:
            if not evaluate(k, elapsed):
                trace.diverged_at = k
                return trace
            next_eval = (problem.samples // every + 1) * every
    if trace.points[-1].iteration != k and not evaluate(k, elapsed):
        trace.diverged_at = k
    return trace
