"""Checks across the cases of one run.

- memory over the sweep of series terms (same experiment, data set, c, scale, seed): the truncated series' step
  memory grows (at least ``GROWTH`` times from the fewest to the most terms); the Neumann-gradient methods' stays
  flat (at most ``FLAT`` more, plus the range of the two points' readings: each point is the median of the
  scale's ``memory_repeat`` readings, five). The flat check has power: at smoke the Neumann method's bound is
  about 1 MB (1.7 MB at 4 terms, 25% plus readings ranging over 0.3-0.4 MB), while the same roulette
  differentiated through its products grows by about 0.5 MB per term, 4.3 MB from 4 to 12 terms
  (``tests/tasks/iresnet/test_iresnet.py`` measures such a method and sees the check fail);
- speed targets, recorded so the page shows the measured ratio: training throughput of iresnet and
  residual_flow (the engine's ``throughput_samples_s`` = batch / step time, and the training phase's) at least
  normflows' at equal architecture and series length (iresnet: at short series, see ``SHORT_SERIES``); log-det
  evaluation throughput of iresnet at least FrEIA's at equal series length. Each case is timed in its own process,
  one after another: on a shared machine a ratio also carries the load's change between the two cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import RunCheck
from ctbench.api.sweeps import flat, grows, ratio, settings, sweeps

GROWTH = 1.5  # iresnet: step memory at the most terms / at the fewest (>= 4x the terms)
FLAT = 0.25  # Neumann gradient: at most 25% more memory at the most terms
MEMORY = "step_peak_memory_bytes"
MEMORY_SHAPE = {"iresnet": "grows", "residual_flow": "flat", "normflows_residual": "flat"}
# i-ResNet differentiates its n products (about 3n vector-Jacobian products' work per block and step) where
# normflows' Neumann estimator applies n + M products without a graph (M ~ Geometric(1/2), mean 2) and
# differentiates one (about n + 7 in all): i-ResNet can be the faster only at short series. Its claim against
# normflows is checked up to the task's default length (n = 5 at small, 4 at smoke), not along the whole sweep.
SHORT_SERIES = 5
SPEED = [  # (metric, method, peer, longest series checked or None): method's metric / peer's at least 1
    ("throughput_samples_s", "iresnet", "normflows_residual", SHORT_SERIES),
    ("training_throughput_samples_s", "iresnet", "normflows_residual", SHORT_SERIES),
    ("throughput_samples_s", "residual_flow", "normflows_residual", None),
    ("training_throughput_samples_s", "residual_flow", "normflows_residual", None),
    ("eval_throughput_samples_s", "iresnet", "freia_iresnet", None),
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
        for metric, method, peer, longest in SPEED:
            if longest is not None and scope["terms"] is not None and scope["terms"] > longest:
                continue
            check = ratio(records, metric, method, peer, 1.0)
            if check is not None:
                checks.append(RunCheck(task, f"{metric}_vs_{peer}", check, {**scope, "impl": method}))
    return checks
