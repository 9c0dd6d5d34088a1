"""One case: a random SPD system of size n; the step is one solve; the evaluation measures the residual."""

from collections.abc import Mapping
from typing import Any

import torch

from ctbench import CaseResult, Check, Context, Invalid, Prepared, Scale
from suites.tiny.interface import Solver


def prepare(impl: Solver, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
    n = int(params["n"])
    m = torch.randn(n, n, dtype=torch.float64)
    a, b = m @ m.T + n * torch.eye(n, dtype=torch.float64), torch.randn(n, dtype=torch.float64)
    ctx.meter.phase("setup", lambda: torch.linalg.cholesky(a), repeat=3)

    def evaluate(stats: Any) -> CaseResult:
        x = impl.solve(a, b)
        residual = float((a @ x - b).norm() / b.norm())
        if residual > scale.config["diverged"]:
            raise Invalid(f"residual {residual:.3g}: the solver diverged", "random-spd", {"residual": residual})
        checks = {"solved": Check.at_most(residual, 1e-6, "||Ax - b|| / ||b||")}
        return CaseResult({"residual": residual}, "random-spd", checks=checks)

    return Prepared(lambda: impl.solve(a, b), evaluate, work={"solves": 1})
