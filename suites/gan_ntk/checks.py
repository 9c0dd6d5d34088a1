"""The task's checks.

Per case (``dynamics_checks``): with the IPM loss on eight Gaussians (the paper's figure), the Sinkhorn divergence
falls at least ``MIN_SINKHORN_REDUCTION`` times from the initial to the final particles, and every mode is covered.

Across the cases of a run (``ntk_slope_checks``): the empirical NTK converges to the analytic one as
1/sqrt(width). For each (impl, scale, dataset, seed) with ntk_accuracy cases at three or more widths, the
least-squares slope of log ntk_rel_error against log width is compared with -1/2 (fluctuations of the empirical
NTK at initialisation are O(width^{-1/2}), Jacot et al. 2018; Arora et al. 2019): it passes within +-
``SLOPE_BAND``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, RunCheck
from ctbench.api.sweeps import slope, sweeps
from suites.gan_ntk.data import Problem

MIN_SINKHORN_REDUCTION = 10.0
EXPECTED_SLOPE = -0.5
SLOPE_BAND = 0.3


def dynamics_checks(loss: str, problem: Problem, metrics: Mapping[str, float]) -> dict[str, Check]:
    """The paper's claims for the IPM loss on eight Gaussians (none for other losses or data)."""
    if loss != "ipm" or problem.centers is None:
        return {}
    checks = {}
    if "sinkhorn_reduction" in metrics:
        checks["sinkhorn_cut_10x"] = Check.at_least(
            metrics["sinkhorn_reduction"], MIN_SINKHORN_REDUCTION, "Sinkhorn initial / final (IPM, eight Gaussians)"
        )
    checks["all_modes_covered"] = Check.at_least(
        metrics["modes_covered"], len(problem.centers), "modes covered by the particles (IPM, eight Gaussians)"
    )
    return checks


def ntk_slope_checks(task: str, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
    """The log-log slope of ntk_rel_error against width, per implementation and setting (>= 3 widths)."""
    ntk_cases = [c for c in cases if c["params"].get("experiment") == "ntk_accuracy"]
    checks = []
    for sweep in sweeps(ntk_cases, "width"):
        check = slope(sweep, "ntk_rel_error", EXPECTED_SLOPE, SLOPE_BAND, min_points=3)
        if check is not None:
            checks.append(RunCheck(task, "ntk_error_slope", check, {"impl": sweep.impl, **sweep.scope}))
    return checks
