"""Failing controls: for each check of ``gan_ntk``, the task's own check code on a deliberately broken input.

The case checks read the final particles of a run on eight Gaussians through the task's metrics (``Evaluator``)
and ``checks.dynamics_checks``; the run check reads ntk_accuracy case records, which ``ntk_record`` builds as the
engine stores them (the task's tests use it too).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ctbench import Check, Task
from ctbench.api.claims import named

Record = dict[str, Any]


def ntk_record(width: int, metrics: Mapping[str, float], impl: str = "finite_width") -> Record:
    """An ntk_accuracy case record at ``width`` on eight Gaussians (smoke, seed 0), as a run stores it."""
    return {
        "status": "ok",
        "impl": impl,
        "scale": "smoke",
        "dataset": "eight-gaussians",
        "seed": 0,
        "params": {"experiment": "ntk_accuracy", "width": width},
        "metrics": dict(metrics),
    }


def _ipm_checks(task: Task, final: Any) -> dict[str, Check]:
    """The case checks of an IPM run on eight Gaussians (smoke's n and settings, seed 0) whose particles end at
    ``final(problem)``."""
    from suites.gan_ntk import checks, data, dynamics, protocol

    cfg = protocol.config(task.scales["smoke"], {"dataset": protocol.KERNEL_DATASET})
    problem = data.load(protocol.KERNEL_DATASET, cfg["n"], 0, Path("/nonexistent"), torch.float64, torch.device("cpu"))
    evaluate = dynamics.Evaluator(problem, cfg)
    traj = dynamics.Trajectory(final(problem))
    for it, x in ((0, problem.particles), (cfg["iterations"], traj.particles)):
        for name, value in evaluate(x).items():
            traj.series.setdefault(name, []).append([float(it), value])
    return checks.dynamics_checks("ipm", problem, dynamics.final_metrics(traj))


def all_modes_covered(task: Task) -> list[Check]:
    """A generator that drops modes: the particles end on the target's own samples of six of the eight Gaussians
    (those of the other two modes moved onto the six), so two modes hold no particle."""

    def collapsed(problem: Any) -> torch.Tensor:
        y, centers = problem.target, problem.centers
        mode = torch.cdist(y, centers).argmin(1)
        kept = y[mode >= 2]
        return torch.cat([kept, kept[: len(y) - len(kept)]])

    return [_ipm_checks(task, collapsed)["all_modes_covered"]]


def sinkhorn_cut_10x(task: Task) -> list[Check]:
    """A Sinkhorn distance that is not cut: each particle stops halfway to the target sample of its index, so
    the Sinkhorn divergence to the eight Gaussians falls about 2x, not 10x."""

    def halfway(problem: Any) -> torch.Tensor:
        return (problem.particles + problem.target) / 2

    return [_ipm_checks(task, halfway)["sinkhorn_cut_10x"]]


def ntk_error_slope(task: Task) -> list[Check]:
    """An empirical NTK whose error does not fall with width: relative Frobenius error 0.2 at widths 64, 256 and
    1024 (slope 0, against the expected -1/2)."""

    cases = [ntk_record(width, {"ntk_rel_error": 0.2}) for width in (64, 256, 1024)]
    return named(task.run_checks(cases), "ntk_error_slope")
