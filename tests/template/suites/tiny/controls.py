"""Failing controls: for each check, the task's own check code on a deliberately broken input."""

from typing import Any

import torch

from ctbench import Check, Task
from ctbench.api.claims import named
from ctbench.run import smoke


class HalfSolver:
    """Stops halfway: returns half the solution."""

    def solve(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(a, b) / 2


def solved(task: Task) -> list[Check]:
    """A solver that returns half the solution (residual 0.5), through the task's protocol at n = 8."""
    return [smoke.run_case("tiny", HalfSolver(), {"n": 8}).checks["solved"]]


def record(n: int, residual: float) -> dict[str, Any]:
    return {"status": "ok", "impl": "broken", "scale": "smoke", "dataset": "random-spd", "seed": 0,
            "params": {"n": n}, "metrics": {"residual": residual}}  # fmt: skip


def solved_at_every_n(task: Task) -> list[Check]:
    """A sweep whose largest system is solved to 1e-3 only."""
    return named(task.run_checks([record(8, 1e-12), record(64, 1e-3)]), "solved_at_every_n")
