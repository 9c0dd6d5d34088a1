"""``tiny``: solve a linear system; the smallest complete task (declarations only: the protocol is in
``protocol.py``)."""

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, Claim, LinePlot, Metric, Paper, Phase, Policy, Prepared, RunCheck, Scale, Step, Task
from ctbench.api.sweeps import sweeps
from suites.tiny import controls, protocol
from suites.tiny.interface import Solver


class Tiny(Task):
    name = "tiny"
    paper = Paper("Numerical Linear Algebra", "Trefethen, Bau", "SIAM 1997")
    summary = "Solve A x = b for a random symmetric positive definite A."
    interface = Solver
    metrics = {"residual": Metric("", False, "||A x - b|| / ||b||")}
    primary_metric = "residual"
    step = Step("one solve of A x = b", {"solves": "systems solved"})
    phases = {"setup": Phase("a Cholesky factorisation of A")}
    scales = {
        "smoke": Scale("smoke", {"n": [8, 64]}, {"diverged": 1.0}, policy=Policy(repeat=3, memory_repeat=2)),
        "small": Scale("small", {"n": [64, 512]}, {"diverged": 1.0}),
    }
    claims = (
        Claim("solved", "A x = b solved to 1e-6", "Trefethen, Bau, Lect. 23", controls.solved, "case"),
        Claim("solved_at_every_n", "every size solved", "Trefethen, Bau, Lect. 23", controls.solved_at_every_n),
    )
    line_plots = (LinePlot("time_vs_n", "param.n", "step_time_s", "n", "step time (s)", xlog=True, ylog=True),)

    def prepare(self, impl: Solver, scale: Scale, params: Mapping[str, Any], ctx: Any) -> Prepared:
        return protocol.prepare(impl, scale, params, ctx)

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        """Across the sweep in n: every size solved to 1e-6 (the largest residual of the sweep)."""
        checks = []
        for sweep in sweeps(cases, "n"):
            worst = max(sweep.value(n, "residual") for n in sweep.xs)
            check = Check.at_most(worst, 1e-6, f"largest residual over n = {sweep.xs[0]}..{sweep.xs[-1]}")
            checks.append(RunCheck(self.name, "solved_at_every_n", check, {**sweep.scope, "impl": sweep.impl}))
        return checks
