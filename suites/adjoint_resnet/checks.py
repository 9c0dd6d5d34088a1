"""Checks across the depth sweep of one run.

- memory-free methods (those that reconstruct activations, i.e. report ``reconstruction_error``): step memory at
  the deepest depth within ``FLAT_MEMORY_TOLERANCE`` of the shallowest, plus the spread of the two cases'
  repeated readings (on a CPU at smoke scale, a working set of a few MB read through RSS spreads by about 1 MB;
  CUDA's allocator peak does not spread); backprop's grows at least ``GROWTH_FACTOR`` times;
- ``grad_rel_error`` of the memory-free methods falls from the shallowest to the deepest depth (weights smooth in
  depth: the tied initialisation);
- Heun's gradient error below Euler's at every depth;
- the paper's speed targets, recorded as checks so the page shows the measured ratio: adjoint_euler's step time
  within 1.8x of backprop's, checkpoint's within 1.5x, at the deepest depth both ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, RunCheck
from ctbench.sweeps import flat, grows, ratio, settings, sweeps

FLAT_MEMORY_TOLERANCE = 0.15  # deepest within 15% of shallowest, plus the readings' spread
GROWTH_FACTOR = 2.0  # backprop's step memory at the deepest case at least twice the shallowest's
SPEED_TARGETS = {"adjoint_euler": 1.8, "checkpoint": 1.5}
MEMORY = "step_peak_memory_bytes"


def depth_checks(task: str, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
    checks: list[RunCheck] = []

    def add(name: str, check: Check | None, scope: Mapping[str, Any]) -> None:
        if check is not None:
            checks.append(RunCheck(task, name, check, dict(scope)))

    by_impl = {}
    for sweep in sweeps(cases, "depth"):
        by_impl[(sweep.impl, *sweep.scope.values())] = sweep
        where, xs = {**sweep.scope, "impl": sweep.impl}, sweep.xs
        if len(xs) < 2:
            continue
        if "reconstruction_error" in sweep.points[xs[0]]["metrics"]:
            add("memory_flat_in_depth", flat(sweep, MEMORY, FLAT_MEMORY_TOLERANCE, "step memory"), where)
            err = sweep.value(xs[-1], "grad_rel_error") / max(sweep.value(xs[0], "grad_rel_error"), 1e-30)
            span = f"grad_rel_error ratio, depth {xs[0]} -> {xs[-1]}"
            add("grad_error_falls_with_depth", Check.at_most(err, 1.0, span), where)
        elif sweep.impl == "backprop":
            add("backprop_memory_grows", grows(sweep, MEMORY, GROWTH_FACTOR, "step memory"), where)
    for scope, records in settings(cases, params=("depth",)):
        heun = ratio(records, "grad_rel_error", "adjoint_heun", "adjoint_euler", 1.0, at_least=False)
        add("heun_error_below_euler", heun, scope)
    for (impl, *scope_values), sweep in by_impl.items():
        backprop = by_impl.get(("backprop", *scope_values))
        common = sorted(set(sweep.points) & set(backprop.points)) if backprop and impl in SPEED_TARGETS else []
        if common:
            pair = {impl: sweep.points[common[-1]], "backprop": backprop.points[common[-1]]}
            check = ratio(pair, "step_time_s", impl, "backprop", SPEED_TARGETS[impl], at_least=False)
            add("step_time_vs_backprop", check, {**sweep.scope, "impl": impl, "depth": common[-1]})
    return checks
