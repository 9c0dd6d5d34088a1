"""Checks across the cases of one run.

- memory over the sweep of series terms (same experiment, data set, c, scale, seed): the truncated series' step
  memory grows (at least ``GROWTH`` times from the fewest to the most terms); the Neumann-gradient methods' stays
  flat (at most ``FLAT`` more, plus the range of the two points' readings: each point is the median of the
  scale's ``memory_repeat`` readings, five). The flat check has power: at smoke the Neumann method's bound is
  about 1 MB (1.7 MB at 4 terms, 25% plus readings ranging over 0.3-0.4 MB), while the same roulette
  differentiated through its products grows by about 0.5 MB per term, 4.3 MB from 4 to 12 terms
  (``tests/tasks/iresnet/test_iresnet.py`` measures such a method and sees the check fail);
- speed targets, recorded so the page shows the measured ratio. Against normflows' residual flow: the training
  step of iresnet and of residual_flow processes at least as many samples per second as normflows' (``TARGET``)
  at equal architecture and series length, at every series length of the grid: ``throughput_samples_s_vs_...``
  is decided by the 95% interval of ``throughput_vs_normflows``, the median over single steps timed in
  alternating pairs with normflows' within the method's case (``protocol.versus_normflows``), and
  ``training_throughput_samples_s_vs_...`` by that of ``training_throughput_vs_normflows``, the same over
  chunks of consecutive steps (normflows' random series lengths averaged, as over a training run). Both sides'
  work is recorded beside it: the mean series terms per block and step each evaluated (``series_terms``,
  ``normflows_series_terms``). The bound 1 is the one this task stated before the comparison covered every
  length, kept as it was: i-ResNet differentiates its n products (about 3n vector-Jacobian products' work per
  block and step) where normflows' Neumann estimator applies n + M products without a graph (M ~ Geometric(1/2),
  mean 2) and differentiates one (about n + 7 in all), so at long series i-ResNet is expected to be the slower,
  and the check then fails there: it is shown, not scoped away. Log-det evaluation throughput of iresnet at
  least FrEIA's at equal series length (each case timed in its own process, one after another: on a shared
  machine that ratio also carries the load's change between the two cases).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, RunCheck
from ctbench.api.sweeps import Record, flat, grows, interval_of, ratio, settings, sweeps

GROWTH = 1.5  # iresnet: step memory at the most terms / at the fewest (>= 4x the terms)
FLAT = 0.25  # Neumann gradient: at most 25% more memory at the most terms
MEMORY = "step_peak_memory_bytes"
MEMORY_SHAPE = {"iresnet": "grows", "residual_flow": "flat", "normflows_residual": "flat"}
TARGET = 1.0  # the method's training throughput / normflows', at least (see the module's docstring)
PEER = "normflows_residual"
PAIRED_METHODS = ("iresnet", "residual_flow")  # timed against normflows within their own cases
STEP_PAIRED = "throughput_vs_normflows"  # single steps, alternately
TRAINING_PAIRED = "training_throughput_vs_normflows"  # chunks of consecutive steps, alternately
PAIRED = {f"throughput_samples_s_vs_{PEER}": STEP_PAIRED, f"training_throughput_samples_s_vs_{PEER}": TRAINING_PAIRED}
SPEED = [("eval_throughput_samples_s", "iresnet", "freia_iresnet")]  # (metric, method, peer): across cases
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
        for method in PAIRED_METHODS:
            for name, metric in PAIRED.items():
                check = paired_check(records.get(method), metric)
                if check is not None:
                    checks.append(RunCheck(task, name, check, {**scope, "impl": method}))
    return checks


def paired_check(record: Record | None, metric: str) -> Check | None:
    """The method's throughput over normflows' (``metric``, timed alternately in its case) at least ``TARGET``,
    decided by its 95% interval; the description states both sides' series terms. None without the metric."""
    if record is None or metric not in record["metrics"]:
        return None
    m = record["metrics"]
    what = "single training steps" if metric == STEP_PAIRED else "chunks of consecutive training steps"
    terms = f"n = {record['params'].get('terms')}"
    if "series_terms" in m and "normflows_series_terms" in m:
        terms += (
            f"; series terms per block and step: {m['series_terms']:.2f} ({record['impl']}), "
            f"{m['normflows_series_terms']:.2f} (normflows' roulette, plus its one differentiated product)"
        )
    description = f"{metric}: {record['impl']}'s throughput / normflows', {what} timed in alternating pairs ({terms})"
    interval = interval_of(record, metric)
    if interval is None:
        return Check.at_least(m[metric], TARGET, description)
    return Check.interval_at_least(m[metric], interval, TARGET, f"{description}; decided by its 95% interval")
