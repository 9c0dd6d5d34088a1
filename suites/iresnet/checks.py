"""Checks across the cases of one run.

- memory over the sweep of series terms (same experiment, data set, c, scale, seed): the truncated series' step
  memory grows (at least ``GROWTH`` times from the fewest to the most terms); the Neumann-gradient methods' stays
  flat (at most ``FLAT`` more, plus the two readings' measured spread);
- the issue's speed targets, recorded so the page shows the measured ratio: training throughput of iresnet and
  residual_flow (the engine's ``throughput_samples_s`` = batch / step time) at least normflows' at equal
  architecture and series length; log-det evaluation throughput of iresnet at least FrEIA's at equal series length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import RunCheck
from ctbench.sweeps import flat, grows, ratio, settings, sweeps

GROWTH = 1.5  # iresnet: step memory at the most terms / at the fewest (>= 4x the terms)
FLAT = 0.25  # Neumann gradient: at most 25% more memory at the most terms
MEMORY = "step_peak_memory_bytes"
MEMORY_SHAPE = {"iresnet": "grows", "residual_flow": "flat", "normflows_residual": "flat"}
SPEED = [  # (metric, method, peer): method's metric / peer's at least 1
    ("throughput_samples_s", "iresnet", "normflows_residual"),
    ("throughput_samples_s", "residual_flow", "normflows_residual"),
    ("eval_throughput_samples_s", "iresnet", "freia_iresnet"),
]
SETTING = ("experiment", "c")


def sweep_checks(task: str, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
    """Memory shape along ``terms`` per method, and the speed ratios per setting (experiment, c, terms)."""
    checks: list[RunCheck] = []
    for sweep in sweeps(cases, "terms", params=SETTING):
        shape = MEMORY_SHAPE.get(sweep.impl)
        if shape is None:
            continue
        check = (
            grows(sweep, MEMORY, GROWTH, "step memory")
            if shape == "grows"
            else flat(sweep, MEMORY, FLAT, "step memory")
        )
        if check is not None:
            checks.append(RunCheck(task, f"memory_{shape}_in_terms", check, {**sweep.scope, "impl": sweep.impl}))
    for scope, records in settings(cases, params=(*SETTING, "terms")):
        for metric, method, peer in SPEED:
            check = ratio(records, metric, method, peer, 1.0)
            if check is not None:
                checks.append(RunCheck(task, f"{metric}_vs_{peer}", check, {**scope, "impl": method}))
    return checks
