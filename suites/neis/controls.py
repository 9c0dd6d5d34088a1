"""Failing controls: for each check of ``neis``, the task's own check code on a deliberately broken input.

The run checks read case records; ``record`` builds one as the engine stores it (the task's tests use it too).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ctbench import Check, Task
from ctbench.api.claims import named

Record = dict[str, Any]


def record(impl: str, target: str, status: str = "ok", scale: str = "smoke", **metrics: float) -> Record:
    """A case record of ``impl`` on ``target`` (seed 0) with ``metrics``, as a run stores it."""
    return {
        "impl": impl,
        "scale": scale,
        "seed": 0,
        "params": {"target": target},
        "status": status,
        "metrics": metrics,
    }


def run_checks(task: Task, cases: list[Record], name: str) -> list[Check]:
    return named(task.run_checks(cases), name)


def biased_log_estimates(log_z: float, n: int = 2000, z_score: float = 5.0, spread: float = 0.1) -> torch.Tensor:
    """log Z_hat of ``n`` estimates whose mean is exactly ``z_score`` standard errors above Z (relative spread
    ``spread``): a fixed standardised normal sample, shifted."""
    u = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u = (u - u.mean()) / u.std()
    r = 1 + spread * (u + z_score / math.sqrt(n))
    return torch.log(r) + log_z


def unbiased(task: Task) -> list[Check]:
    """An estimator biased by 5 standard errors: 2000 estimates of eg1's Z1 whose mean is 5 standard errors above
    the exact Z1 (relative spread 0.1), through the protocol's evaluation of a case."""
    from suites.neis.protocol import evaluation
    from suites.neis.stats import Estimates
    from suites.neis.targets import make_target

    target = make_target("eg1")
    est = Estimates.of(biased_log_estimates(target.log_z), target.log_z)
    vanilla = Estimates.of(torch.full((2,), target.log_z, dtype=torch.float64), target.log_z)
    return [evaluation(target, est, vanilla, 21.0, {}, []).checks["unbiased"]]


def neis_variance_reduction(task: Task) -> list[Check]:
    """A NEIS no better than vanilla IS: trained neis_gradient cases on eg1 and eg2 whose variance at equal cost
    is vanilla's (reduction 1x, against smoke's 10x)."""
    cases = [record("neis_gradient", target, rel_var_x_cost=1e6, variance_reduction=1.0) for target in ("eg1", "eg2")]
    return run_checks(task, cases, "neis_variance_reduction")


def neis_beats_ais(task: Task) -> list[Check]:
    """A weakened NEIS that AIS at the paper's temperatures beats at the small scale (20,000 estimates): valid
    AIS-10 and AIS-100 cases on eg1 whose relative variance x cost is 50x and 100x below neis_gradient's with its
    training counted (ratios 0.02 and 0.01; 0.1 and 0.05 even at equal sampling cost)."""
    cases = [
        record("ais", "eg1", scale="small", rel_var_x_cost=100.0, cost_per_sample=20.0),
        record("ais_100", "eg1", scale="small", rel_var_x_cost=50.0, cost_per_sample=200.0),
        record(
            "neis_gradient",
            "eg1",
            scale="small",
            rel_var_x_cost=1000.0,
            rel_var_x_cost_with_training=5000.0,
            training_cost=1.8e5,
            variance_reduction=2e3,
        ),
    ]
    return run_checks(task, cases, "neis_beats_ais")
