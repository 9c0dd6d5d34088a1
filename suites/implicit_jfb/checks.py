"""Checks across the cases of one run.

- memory against forward iterations (the tolerance sweep, plain iteration): unrolled's step memory grows at
  least ``GROWTH`` times from the loose to the tight tolerance; JFB's and IFT's stays within ``FLAT`` of the
  loose one;
- the paper's speed claims, recorded with the measured ratio: JFB's backward at least ``BACKWARD_SPEEDUP``
  times faster than IFT's at the same forward; JFB's epoch faster than torchdeq's IFT; and, above smoke scale
  (a single short epoch there makes accuracies noise), JFB's accuracy within ``ACCURACY_GAP`` of IFT's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, RunCheck

GROWTH = 1.3
FLAT = 0.5  # generous: a CPU RSS reading moves by a few MB between cases
BACKWARD_SPEEDUP = 3.0
ACCURACY_GAP = 0.01
MEMORY = "step_peak_memory_bytes"


def _groups(
    cases: Sequence[Mapping[str, Any]],
) -> dict[tuple, dict[str, dict[float | None, Mapping[str, float]]]]:
    """{(scale, dataset, seed, solver): {impl: {tol: metrics}}} over the ok cases."""
    groups: dict[tuple, dict[str, dict]] = defaultdict(lambda: defaultdict(dict))
    for c in cases:
        if c["status"] == "ok":
            p = c["params"]
            groups[(c["scale"], c["dataset"], c["seed"], p.get("solver"))][c["impl"]][p.get("tol")] = c["metrics"]
    return groups


def run_checks(task: str, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
    checks: list[RunCheck] = []
    for (scale, dataset, seed, solver), impls in _groups(cases).items():
        where = {"scale": scale, "dataset": dataset, "seed": seed, "solver": solver}

        def add(name: str, check: Check, where: dict[str, Any] = where, **scope: Any) -> None:
            checks.append(RunCheck(task, name, check, {**where, **scope}))

        for impl, by_tol in impls.items():
            tols = sorted(t for t in by_tol if t is not None)
            if len(tols) < 2 or impl not in ("unrolled", "jfb", "ift"):
                continue
            loose, tight = by_tol[tols[-1]], by_tol[tols[0]]
            ratio = tight[MEMORY] / max(loose[MEMORY], 1.0)
            span = (
                f"step memory ratio, tol {tols[-1]:g} -> {tols[0]:g} "
                f"({loose['forward_iterations']:.1f} -> {tight['forward_iterations']:.1f} forward iterations)"
            )
            if impl == "unrolled":
                add("unrolled_memory_grows", Check.at_least(ratio, GROWTH, span), impl=impl)
            else:
                add("memory_flat_in_iterations", Check.at_most(ratio - 1, FLAT, span), impl=impl)
        for tol in sorted({t for by_tol in impls.values() for t in by_tol}, key=lambda t: (t is None, t)):
            jfb, ift, deq = (impls.get(name, {}).get(tol) for name in ("jfb", "ift", "torchdeq_ift"))
            if jfb and ift:
                ratio = ift["backward_time_s"] / jfb["backward_time_s"]
                add(
                    "jfb_backward_speedup_vs_ift",
                    Check.at_least(ratio, BACKWARD_SPEEDUP, "ift / jfb backward time"),
                    tol=tol,
                )
                if scale != "smoke":
                    gap = ift["test_accuracy"] - jfb["test_accuracy"]
                    add(
                        "jfb_accuracy_near_ift",
                        Check.at_most(gap, ACCURACY_GAP, "ift - jfb test accuracy"),
                        tol=tol,
                    )
            if jfb and deq:
                ratio = deq["epoch_time_s"] / jfb["epoch_time_s"]
                add(
                    "jfb_epoch_faster_than_torchdeq_ift",
                    Check.at_least(ratio, 1.0, "torchdeq_ift / jfb epoch time"),
                    tol=tol,
                )
    return checks
