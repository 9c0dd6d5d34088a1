"""Checks across the depth sweep of one run.

- memory-free methods (those that reconstruct activations, i.e. report ``reconstruction_error``): step memory at
  the deepest depth within ``tolerance`` of the shallowest, plus the spread of the two cases' repeated readings
  (on a CPU at smoke scale, a working set of a few MB read through RSS spreads by about 1 MB; CUDA's allocator
  peak does not spread); backprop's grows at least ``growth`` times;
- ``grad_rel_error`` of the memory-free methods falls from the shallowest to the deepest depth (weights smooth in
  depth: the tied initialisation);
- Heun's gradient error below Euler's at every depth;
- the paper's speed targets, recorded as checks so the page shows the measured ratio: adjoint_euler's step time
  within 1.8x of backprop's, checkpoint's within 1.5x, at the deepest depth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, RunCheck

SPEED_TARGETS = {"adjoint_euler": 1.8, "checkpoint": 1.5}


def _sweeps(cases: Sequence[Mapping[str, Any]]) -> dict[tuple, dict[str, dict[int, dict[str, float]]]]:
    """{(scale, dataset, seed): {impl: {depth: metrics}}} over the ok cases; a metric's spread as ``spread.<name>``."""
    sweeps: dict[tuple, dict[str, dict[int, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    for c in cases:
        if c["status"] == "ok":
            spread = {f"spread.{name}": value for name, value in c.get("spread", {}).items()}
            sweeps[(c["scale"], c["dataset"], c["seed"])][c["impl"]][int(c["params"]["depth"])] = {
                **c["metrics"],
                **spread,
            }
    return sweeps


def depth_checks(task: str, cases: Sequence[Mapping[str, Any]], tolerance: float, growth: float) -> list[RunCheck]:
    checks: list[RunCheck] = []
    for (scale, dataset, seed), impls in _sweeps(cases).items():
        where = {"scale": scale, "dataset": dataset, "seed": seed}

        def add(name: str, check: Check, where: dict = where, **scope: Any) -> None:
            checks.append(RunCheck(task, name, check, {**where, **scope}))

        for impl, by_depth in impls.items():
            if len(by_depth) < 2:
                continue
            lo, hi = min(by_depth), max(by_depth)
            mem = by_depth[hi]["step_peak_memory_bytes"] / max(by_depth[lo]["step_peak_memory_bytes"], 1.0)
            span = f"depth {lo} -> {hi}"
            if "reconstruction_error" in by_depth[lo]:
                noise = sum(by_depth[d].get("spread.step_peak_memory_bytes", 0.0) for d in (lo, hi))
                noise /= max(by_depth[lo]["step_peak_memory_bytes"], 1.0)
                add(
                    "memory_flat_in_depth",
                    Check.at_most(
                        mem - 1,
                        tolerance + noise,
                        f"step memory growth, {span} (bound: {tolerance:.0%} + the readings' spread, {noise:.0%})",
                    ),
                    impl=impl,
                )
                err = by_depth[hi]["grad_rel_error"] / max(by_depth[lo]["grad_rel_error"], 1e-30)
                add(
                    "grad_error_falls_with_depth",
                    Check.at_most(err, 1.0, f"grad_rel_error ratio, {span}"),
                    impl=impl,
                )
            elif impl == "backprop":
                add(
                    "backprop_memory_grows",
                    Check.at_least(mem, growth, f"step memory ratio, {span}"),
                    impl=impl,
                )
        for depth in sorted(set(impls.get("adjoint_euler", {})) & set(impls.get("adjoint_heun", {}))):
            ratio = impls["adjoint_heun"][depth]["grad_rel_error"] / impls["adjoint_euler"][depth]["grad_rel_error"]
            add(
                "heun_error_below_euler",
                Check.at_most(ratio, 1.0, "grad_rel_error heun / euler"),
                depth=depth,
            )
        for impl, target in SPEED_TARGETS.items():
            common = set(impls.get(impl, {})) & set(impls.get("backprop", {}))
            if common:
                d = max(common)
                ratio = impls[impl][d]["step_time_s"] / impls["backprop"][d]["step_time_s"]
                add(
                    "step_time_vs_backprop",
                    Check.at_most(ratio, target, f"{impl} / backprop step time"),
                    impl=impl,
                    depth=d,
                )
    return checks
