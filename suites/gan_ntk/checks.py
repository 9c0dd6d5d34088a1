"""Checks across the cases of a run: the empirical NTK converges to the analytic one as 1/sqrt(width).

For each (impl, scale, dataset, seed) with ntk_accuracy cases at three or more widths, the least-squares slope
of log ntk_rel_error against log width is compared with -1/2 (fluctuations of the empirical NTK at
initialisation are O(width^{-1/2}), Jacot et al. 2018; Arora et al. 2019): it passes within +- ``SLOPE_BAND``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, RunCheck

EXPECTED_SLOPE = -0.5
SLOPE_BAND = 0.3


def loglog_slope(widths: Sequence[float], errors: Sequence[float]) -> float:
    """Least-squares slope of log(error) on log(width)."""
    xs, ys = [math.log(w) for w in widths], [math.log(e) for e in errors]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def ntk_slope_checks(task: str, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
    sweeps: dict[tuple, dict[int, float]] = defaultdict(dict)
    for c in cases:
        error = c["metrics"].get("ntk_rel_error")
        if c["status"] == "ok" and c["params"].get("experiment") == "ntk_accuracy" and error and error > 0:
            sweeps[(c["impl"], c["scale"], c["dataset"], c["seed"])][int(c["params"]["width"])] = error
    checks = []
    for (impl, scale, dataset, seed), by_width in sweeps.items():
        if len(by_width) < 3:
            continue
        widths = sorted(by_width)
        slope = loglog_slope(widths, [by_width[w] for w in widths])
        check = Check(
            slope,
            EXPECTED_SLOPE,
            abs(slope - EXPECTED_SLOPE) <= SLOPE_BAND,
            f"slope of log ntk_rel_error vs log width {widths[0]}..{widths[-1]}; passes within "
            f"{EXPECTED_SLOPE} +- {SLOPE_BAND}",
        )
        scope = {"impl": impl, "scale": scale, "dataset": dataset, "seed": seed}
        checks.append(RunCheck(task, "ntk_error_slope", check, scope))
    return checks
