"""Failing controls of ``bilevel``'s checks: each runs the task's own check code on a deliberately broken input.

Most run a broken solver through the task's protocol on the smoke quadratic (``ctbench.run.smoke.run_case``, the
step size and outer ratio given, so no tuning: a fraction of a second), or a reference solver recorded under the
name of the other, and hand the case records to the task's ``run_checks``. The rate and the race are decided on
recorded curves with the defect (a smoke race on hyperparameter selection takes a minute).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ctbench import Check, Task
from ctbench.api.claims import named
from ctbench.run import smoke
from reference_impls.bilevel.saba import SABA
from reference_impls.bilevel.soba import SOBA
from suites.bilevel.interface import BilevelSolver, Directions
from suites.bilevel.problem import BilevelProblem
from suites.bilevel.protocol import fit_r2

TASK = "bilevel"
QUADRATIC = {"step_size": 0.1, "outer_ratio": 1.0}  # SOBA's and SABA's defaults on the quadratic


class ClimbingSOBA(SOBA):
    """Broken: SOBA with the outer direction's sign flipped, x <- x + gamma_t D_x (it climbs h)."""

    def directions(self, inner_idx: Any, outer_idx: Any) -> Directions:
        d = super().directions(inner_idx, outer_idx)
        return Directions(d.z, d.v, -d.x)


class BatchSizeMean(SOBA):
    """Broken: averages a minibatch's directions by dividing their sum by the case's batch size, not by the
    number of samples it is handed: right on its own minibatches (its steps are SOBA's), biased on any other (its
    full-batch directions are n / b times too large)."""

    def directions(self, inner_idx: Any, outer_idx: Any) -> Directions:
        d = super().directions(inner_idx, outer_idx)
        inner, outer = len(inner_idx) / self.batch_size, len(outer_idx) / self.batch_size
        return Directions(d.z * inner, d.v * inner, d.x * outer)


class ExtraHessianVector(SABA):
    """Broken: one more Hessian-vector product per iteration, on another minibatch."""

    def step(self) -> None:
        super().step()
        self.problem.inner_hvp(self.z, self.x, self.v, self.draw("inner"))


class FullBatchGradient(SABA):
    """Broken: a full-batch gradient of g every iteration (as a periodic full pass would, amortised)."""

    def step(self) -> None:
        super().step()
        self.problem.inner_grad(self.z, self.x, None)


class DoubleTable(SABA):
    """Broken: keeps a second copy of its table, twice the memory it must hold."""

    def init(self, problem: BilevelProblem, batch_size: int, seed: int) -> dict:
        hp = super().init(problem, batch_size, seed)
        held = [self.scalars.rows] if self.scalars is not None else [self.table.rows] if self.joint else [
            self.inner.rows, self.outer.rows]  # fmt: skip
        self.spare = [t.clone() for t in held]
        return hp


def smoke_record(impl: str, solver: BilevelSolver, problem: str = "quadratic") -> dict[str, Any]:
    """The record of ``solver`` run through the task's protocol on the smoke instance of ``problem``, under the
    name ``impl``."""
    result = smoke.run_case(TASK, solver, {"problem": problem})
    return {"task": TASK, "impl": impl, "scale": "smoke", "params": {"problem": problem}, "seed": 0,
            "status": "ok" if result.invalid_reason is None else "invalid", "metrics": result.metrics,
            "series": result.series, "dataset": result.dataset}  # fmt: skip


def _run_checks(task: Task, records: Sequence[dict[str, Any]], name: str) -> list[Check]:
    return named(task.run_checks(records), name)


def suboptimality_decreased(task: Task) -> list[Check]:
    """A SOBA that climbs the value function (its outer step along +D_x), through the protocol on the smoke
    quadratic: h - h* ends above where it started."""
    return [smoke.run_case(TASK, ClimbingSOBA(**QUADRATIC), {"problem": "quadratic"}).checks["suboptimality_decreased"]]


def directions_unbiased(task: Task) -> list[Check]:
    """A SOBA whose directions divide a minibatch's sum by the case's batch size rather than by the samples given,
    through the protocol on the smoke quadratic: its mean over minibatches is not its full-batch direction."""
    return [smoke.run_case(TASK, BatchSizeMean(**QUADRATIC), {"problem": "quadratic"}).checks["directions_unbiased"]]


def saba_reaches_quadratic_target(task: Task) -> list[Check]:
    """A SABA without its variance reduction (SOBA's minibatch directions and decreasing steps, recorded as
    SABA) on the smoke quadratic: it stops near 1e-3, far from the target 1e-6."""
    return _run_checks(task, [smoke_record("saba", SOBA(**QUADRATIC))], "saba_reaches_quadratic_target")


def sublinear_record(impl: str, evaluations: int = 40) -> dict[str, Any]:
    """A record of the quadratic at small scale whose h - h* decays as 1 / k over its ``evaluations`` (the
    scale's 40; one every 15,000 samples), with the R^2 of its log-linear fit (``protocol.fit_r2``)."""
    samples = [15_000.0 * k for k in range(1, evaluations + 1)]
    suboptimality = [1e-2 / k for k in range(1, evaluations + 1)]
    r2 = fit_r2(samples, [math.log10(s) for s in suboptimality])
    metrics = {"final_suboptimality": suboptimality[-1], "rate_r2": r2, "samples": samples[-1]}
    curve = [[s, h] for s, h in zip(samples, suboptimality, strict=True)]
    return {"task": TASK, "impl": impl, "scale": "small", "params": {"problem": "quadratic"}, "seed": 0,
            "status": "ok", "metrics": metrics, "dataset": "synthetic",
            "series": {"suboptimality_vs_samples": curve}}  # fmt: skip


def saba_linear_rate(task: Task) -> list[Check]:
    """A SABA that converges sublinearly on the quadratic: h - h* = 1e-2 / k over the small scale's 40
    evaluations, a straight line on log-log axes and a curve on the linear rate's semi-log ones."""
    return _run_checks(task, [sublinear_record("saba")], "saba_linear_rate")


def soba_does_not_reach_quadratic_target(task: Task) -> list[Check]:
    """A variance-reduced SOBA (SABA's SAGA tables and constant steps, recorded as SOBA) on the smoke quadratic:
    it reaches 1e-6, which SOBA's decreasing steps cannot within the budget."""
    return _run_checks(task, [smoke_record("soba", SABA(**QUADRATIC))], "soba_does_not_reach_quadratic_target")


def race_record(impl: str, series: list[list[float]], problem: str = "hyperparam", seed: int = 0) -> dict[str, Any]:
    """A small-scale record of ``problem`` (a scale that decides the race) whose curve ``series`` of [samples,
    h - h*] is also its curve in time (one second per 1,000 samples)."""
    clock = [[samples / 1000, h] for samples, h in series]
    return {
        "task": TASK, "impl": impl, "scale": "small", "params": {"problem": problem}, "seed": seed,
        "status": "ok", "metrics": {"run_time_s": clock[-1][0], "final_suboptimality": series[-1][1]},
        "series": {"suboptimality_vs_samples": series, "suboptimality_vs_time": clock},
    }  # fmt: skip


def saba_reaches_1e_3_before_soba(task: Task) -> list[Check]:
    """SOBA comes within 1e-3 of the run's lowest h (0.05) after 1,000 samples, SABA only after 2,000, on each of
    three seeds: SABA loses the race on hyperparameter selection."""
    records = [
        rec
        for seed in range(3)
        for rec in (
            race_record("saba", [[0, 0.5], [1000, 0.3], [2000, 0.0505], [4000, 0.0502]], seed=seed),
            race_record("soba", [[0, 0.5], [1000, 0.0505], [3000, 0.0501]], seed=seed),
            race_record("full_batch", [[0, 0.5], [5000, 0.05]], seed=seed),
        )
    ]
    return _run_checks(task, records, "saba_reaches_1e-3_before_soba")


def saba_oracles_equal_soba(task: Task) -> list[Check]:
    """A SABA that makes one Hessian-vector product more per iteration than SOBA (on another minibatch),
    through the protocol on the smoke quadratic, with SOBA beside it."""
    records = [smoke_record("soba", SOBA(**QUADRATIC)), smoke_record("saba", ExtraHessianVector(**QUADRATIC))]
    return _run_checks(task, records, "saba_oracles_equal_soba")


def saba_table_size(task: Task) -> list[Check]:
    """A SABA that keeps a second copy of its SAGA table (twice the memory it must hold), through the protocol on
    the smoke quadratic."""
    return _run_checks(task, [smoke_record("saba", DoubleTable(**QUADRATIC))], "saba_table_size")
