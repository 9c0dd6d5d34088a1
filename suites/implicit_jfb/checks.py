"""Checks of one case and across the cases of one run.

Per case: the claims each method makes (``ImplicitBackward``): a fixed point within the tolerance and a descent
direction (``grad_cosine`` > ``DESCENT``), the implicit gradient (``grad_cosine`` >= ``EXACT``), no Jacobian
product of T in the backward.

Per run:
- memory against forward iterations (the tolerance sweep, plain iteration): unrolled's step memory grows at
  least ``GROWTH`` times from the loose to the tight tolerance; JFB's and IFT's stays within ``FLAT`` of the
  loose one;
- the paper's speed claims, recorded with the measured ratio: JFB's backward at least ``BACKWARD_SPEEDUP``
  times faster than IFT's at the same forward; JFB's epoch faster than torchdeq's IFT; and, above smoke scale
  (a single short epoch there makes accuracies noise), JFB's accuracy within ``ACCURACY_GAP`` of IFT's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, RunCheck
from ctbench.sweeps import Sweep, ratio, settings, sweeps
from suites.implicit_jfb.interface import ImplicitBackward

DESCENT = 0.0  # grad_cosine above this: a descent direction
EXACT = 0.99  # grad_cosine of a method claiming the implicit gradient
GROWTH = 1.3
FLAT = 0.5  # generous: a CPU RSS reading moves by a few MB between cases
BACKWARD_SPEEDUP = 3.0
ACCURACY_GAP = 0.01
MEMORY = "step_peak_memory_bytes"
SWEPT = ("unrolled", "jfb", "ift")  # the methods of the tolerance sweep


def case_checks(impl: ImplicitBackward, metrics: Mapping[str, float], tol: float) -> dict[str, Check]:
    """The method's claims, checked on its case's metrics."""
    checks = {}
    if impl.finds_fixed_point:
        checks["converged"] = Check.at_most(metrics["residual"], tol, "worst test residual <= tol")
        checks["descent_direction"] = Check.at_least(metrics["grad_cosine"], DESCENT, "grad_cosine > 0")
    if impl.exact:
        checks["matches_implicit_gradient"] = Check.at_least(metrics["grad_cosine"], EXACT, "grad_cosine")
    if impl.jacobian_free:
        checks["no_jacobian_products"] = Check.at_most(
            metrics["backward_jacobian_products"], 0, "Jacobian products of T in the backward"
        )
    return checks


def _memory_ratio(sweep: Sweep, tols: Sequence[float]) -> tuple[float, str]:
    """Step memory at the tightest of ``tols`` (ascending) over that at the loosest, and what it spans."""
    tight, loose = tols[0], tols[-1]
    value = sweep.value(tight, MEMORY) / max(sweep.value(loose, MEMORY), 1.0)
    iterations = [sweep.value(t, "forward_iterations") for t in (loose, tight)]
    span = (
        f"step memory ratio, tol {loose:g} -> {tight:g} ({iterations[0]:.1f} -> {iterations[1]:.1f} forward iterations)"
    )
    return value, span


def run_checks(task: str, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
    checks: list[RunCheck] = []

    def add(name: str, check: Check | None, scope: Mapping[str, Any]) -> None:
        if check is not None:
            checks.append(RunCheck(task, name, check, dict(scope)))

    for sweep in sweeps(cases, "tol", params=("solver",)):
        xs = [t for t in sweep.has(MEMORY) if t is not None]
        if len(xs) < 2 or sweep.impl not in SWEPT:
            continue
        value, span = _memory_ratio(sweep, xs)
        where = {**sweep.scope, "impl": sweep.impl}
        if sweep.impl == "unrolled":
            add("unrolled_memory_grows", Check.at_least(value, GROWTH, span), where)
        else:
            add("memory_flat_in_iterations", Check.at_most(value - 1, FLAT, span), where)
    for scope, records in settings(cases, params=("solver", "tol")):
        speedup = ratio(records, "backward_time_s", "ift", "jfb", BACKWARD_SPEEDUP)
        add("jfb_backward_speedup_vs_ift", speedup, scope)
        if scope["scale"] != "smoke" and "jfb" in records and "ift" in records:
            gap = records["ift"]["metrics"]["test_accuracy"] - records["jfb"]["metrics"]["test_accuracy"]
            add("jfb_accuracy_near_ift", Check.at_most(gap, ACCURACY_GAP, "ift - jfb test accuracy"), scope)
        add("jfb_epoch_faster_than_torchdeq_ift", ratio(records, "epoch_time_s", "torchdeq_ift", "jfb", 1.0), scope)
    return checks
