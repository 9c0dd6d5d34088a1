"""``tiny``: solve a linear system; the smallest complete task (declarations only: the protocol is in
``protocol.py``)."""

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import LinePlot, Metric, Paper, Phase, Policy, Prepared, RunCheck, Scale, Step, Task
from ctbench.sweeps import grows, sweeps
from suites.tiny import protocol
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
    line_plots = (LinePlot("time_vs_n", "param.n", "step_time_s", "n", "step time (s)", xlog=True, ylog=True),)

    def prepare(self, impl: Solver, scale: Scale, params: Mapping[str, Any], ctx: Any) -> Prepared:
        return protocol.prepare(impl, scale, params, ctx)

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        found = (RunCheck(self.name, "time_grows_with_n", grows(s, "step_time_s", 1.0), {**s.scope, "impl": s.impl})
                 for s in sweeps(cases, "n"))  # fmt: skip
        return [c for c in found if c.check is not None]
