"""Checks of one case and across the cases of one run.

Per case: the claims each method makes (``ImplicitBackward``): a fixed point within the tolerance and a descent
direction (``grad_cosine`` > ``DESCENT``), the implicit gradient (``grad_cosine`` >= ``EXACT``), no Jacobian
product of T in the backward.

Per run:
- memory against forward iterations (the tolerance sweep, plain iteration), in latents stored per extra forward
  iteration: L = (M_tight - M_loose) / ((k_tight - k_loose) b), with M the step memory (median of the engine's
  readings), k the forward iterations of the steps it read (``step_forward_iterations``) and b the bytes of one
  latent u. Backprop through
  the iterations (unrolled) must keep at least the iterate of every iteration, L >= 1; a method whose memory
  does not depend on the iterations (JFB, IFT) has L ~ 0. Both checks draw the line at one latent per iteration
  and decide by L +- U, U = (range_tight + range_loose) / ((k_tight - k_loose) b) the readings' spread: unrolled's
  memory grows when L - U >= 1, JFB's and IFT's stay flat when L + U <= 1; inconclusive while the interval holds
  the line. Skipped when the sweep moves the iterations by less than ``MIN_ITERATIONS``.
- the paper's speed claims: JFB's backward at least ``BACKWARD_SPEEDUP`` times faster than IFT's at the same
  forward, measured as the ratio of their ``backward_time_vs_one_step`` (each case's backward against the task's
  one-step backward, timed alternately in its own process, so that the machine's load between the two cases
  cancels), with IFT's Jacobian products and the cost of one of them (in one-step backwards) in the description.
  The claim is checked at the sweep's tightest tolerance, where the fixed point is solved as the paper solves it.
  The bound is the paper's statement, faster (1x, decided by the ratio's interval); the size of the speed-up is
  reported, not bounded: IFT's backward costs about 1 + k c one-step backwards for k Jacobian products of c each,
  so it moves with k (6 to 8 at smoke's tol 1e-5 over seeds 0-2) and with the machine's cost of a product (c 0.24
  to 0.36): 2.7x to 4.0x at smoke on a CPU, 2.1x at tol 1e-2 (k = 3). What holds at every
  tolerance is that the speed-up grows with the forward iterations (Fung et al. 2022: IFT's adjoint solve is as
  hard as the forward), decided by the quotient of the medians' 95% intervals; JFB's epoch faster than torchdeq's
  IFT (CPU time on a CPU, with ``EPOCH_FLOOR``); and, above the smoke scales (a single short epoch there makes
  accuracies noise), JFB's accuracy within ``ACCURACY_GAP`` of IFT's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, RunCheck
from ctbench.api.sweeps import (
    Record,
    Sweep,
    interval_of,
    quotient_interval,
    ratio,
    settings,
    speed_metric,
    sweeps,
)
from suites.implicit_jfb.interface import ImplicitBackward

DESCENT = 0.0  # grad_cosine above this: a descent direction
# grad_cosine of a method claiming the implicit gradient: 1 - cos <= 1e-3, a relative gradient error of at most about
# 4.5% (1 - cos ~ e^2 / 2). Measured at the loosest tolerance of the grid (1e-2, seed 0, a CPU): the exact methods
# (IFT, IFT-CG, torchdeq's IFT, unrolled) 1 - cos <= 3e-5 at smoke and 1.3e-5 at small; JFB's one-step gradient, which
# does not claim it, 9e-3 at both: a bound of 0.99 would not tell the two apart
EXACT = 0.999
STORED = 1.0  # latents per extra forward iteration: unrolled stores at least this many, JFB and IFT fewer
MIN_ITERATIONS = 1.0  # the memory checks need the sweep to move the measured steps' iterations by this much
BACKWARD_SPEEDUP = 1.0  # the paper's statement: faster; the size is reported (module docstring)
ACCURACY_GAP = 0.01
# one epoch of each method, timed once in its own case: each side's interval is +- this fraction of its value. Two
# runs of the smoke grid (3 seeds x 5 settings), the second beside two CPU-bound busy loops, read the same case's
# epoch CPU time up to 44% apart: each reading within about +-22% of their middle
EPOCH_FLOOR = 0.22
MEMORY = "step_peak_memory_bytes"
MIB = 2**20  # memory is shown in MiB everywhere (boards, figures, checks)
ITERATIONS = "step_forward_iterations"
COST = "backward_time_vs_one_step"
SWEPT = ("unrolled", "jfb", "ift")  # the methods of the tolerance sweep


def case_checks(impl: ImplicitBackward, metrics: Mapping[str, float]) -> dict[str, Check]:
    """The method's claims, checked on its case's metrics. (A forward that misses its tolerance makes the case
    invalid before these are checked: convergence is its status, not a check that could only pass.)"""
    checks = {}
    if impl.finds_fixed_point:
        checks["descent_direction"] = Check.at_least(metrics["grad_cosine"], DESCENT, "grad_cosine > 0")
    if impl.exact:
        checks["matches_implicit_gradient"] = Check.at_least(metrics["grad_cosine"], EXACT, "grad_cosine")
    if impl.jacobian_free:
        checks["no_jacobian_products"] = Check.at_most(
            metrics["backward_jacobian_products"], 0, "Jacobian products of T in the backward"
        )
    return checks


def latents_per_iteration(sweep: Sweep) -> tuple[float, float, str] | None:
    """(L, U, what) of the module docstring from the sweep's loosest and tightest tolerance; None if the sweep
    lacks the readings or barely moves the iterations."""
    xs = [t for t in sweep.has(MEMORY) if t is not None and ITERATIONS in sweep.points[t]["metrics"]]
    if len(xs) < 2 or "latent_bytes" not in sweep.points[xs[0]]["metrics"]:
        return None
    tight, loose = xs[0], xs[-1]
    k_tight, k_loose = sweep.value(tight, ITERATIONS), sweep.value(loose, ITERATIONS)
    if k_tight - k_loose < MIN_ITERATIONS:
        return None
    unit = (k_tight - k_loose) * sweep.value(loose, "latent_bytes")
    m_tight, m_loose = sweep.value(tight, MEMORY), sweep.value(loose, MEMORY)
    spread = sweep.spread(tight, MEMORY) + sweep.spread(loose, MEMORY)
    what = (
        f"latents ({sweep.value(loose, 'latent_bytes') / MIB:.2f} MiB each) stored per extra forward iteration: step "
        f"memory {m_loose / MIB:.1f} -> {m_tight / MIB:.1f} MiB over {k_loose:.1f} -> {k_tight:.1f} iterations, tol "
        f"{loose:g} -> {tight:g}; decided by the value +- the readings' spread "
        f"({spread / MIB:.1f} MiB, {spread / unit:.2f})"
    )
    return (m_tight - m_loose) / unit, spread / unit, what


def speedup(records: Mapping[str, Record]) -> tuple[float, tuple[float, float] | None, str] | None:
    """(s, interval, what): IFT's backward cost over JFB's, both in one-step backwards (each the median of pairs
    timed alternately in its own case), and the quotient of the two medians' 95% intervals where both cases
    recorded them; None without both."""
    ift, jfb = records.get("ift"), records.get("jfb")
    if ift is None or jfb is None or COST not in ift["metrics"] or COST not in jfb["metrics"]:
        return None
    a, b = ift["metrics"][COST], jfb["metrics"][COST]
    ia, ib = interval_of(ift, COST), interval_of(jfb, COST)
    products = ift["metrics"].get("backward_jacobian_products", float("nan"))
    each = (a - 1) / products if products else float("nan")
    what = (
        f"{COST}: ift {a:.2f} / jfb {b:.2f} (each against the task's one-step backward in its own process); "
        f"ift's backward spent {products:g} Jacobian products of T, {each:.2f} one-step backwards each"
    )
    return a / b, quotient_interval(ia, ib) if ia and ib else None, what


def run_checks(
    task: str, cases: Sequence[Mapping[str, Any]], solved: Mapping[str, float] | None = None
) -> list[RunCheck]:
    """The checks across a run's cases. ``solved`` (scale -> the tightest tolerance of its grid) scopes the
    speed-up claim to the solved tolerance: a run that stops at a looser one (``--param tol=...``) does not decide
    it there, where IFT's backward needs only a few Jacobian products. Without it, the run's tightest tolerance."""
    checks: list[RunCheck] = []

    def add(name: str, check: Check | None, scope: Mapping[str, Any]) -> None:
        if check is not None:
            checks.append(RunCheck(task, name, check, dict(scope)))

    for sweep in sweeps(cases, "tol", params=("solver",)):
        found = latents_per_iteration(sweep) if sweep.impl in SWEPT else None
        if found is None:
            continue
        value, noise, what = found
        where = {**sweep.scope, "impl": sweep.impl}
        interval = (value - noise, value + noise)  # inconclusive while the readings' spread holds the line
        if sweep.impl == "unrolled":
            add("unrolled_memory_grows", Check.interval_at_least(value, interval, STORED, what), where)
        else:
            add("memory_flat_in_iterations", Check.interval_at_most(value, interval, STORED, what), where)
    along: dict[str, tuple[dict[str, Any], list[tuple[float, float, tuple[float, float] | None, str, float]]]] = {}
    claims: dict[str, tuple[dict[str, Any], Check]] = {}  # the speed-up claim at the tightest tolerance only
    for scope, records in settings(cases, params=("solver", "tol")):
        found = speedup(records)
        if found is not None:
            rest = {k: v for k, v in scope.items() if k != "tol"}
            key = json.dumps(rest, sort_keys=True, default=str)
            iterations = records["ift"]["metrics"].get("forward_iterations", 0.0)
            point = (scope["tol"], found[0], found[1], found[2], iterations)
            along.setdefault(key, (rest, []))[1].append(point)
            solved_here = solved is None or scope["tol"] <= solved.get(scope["scale"], scope["tol"])
            if solved_here and (key not in claims or scope["tol"] < claims[key][0]["tol"]):
                claims[key] = (scope, _at_least(found[0], found[1], BACKWARD_SPEEDUP, found[2]))
        if scope["scale"] not in ("smoke", "gpu-smoke") and "jfb" in records and "ift" in records:
            gap = records["ift"]["metrics"]["test_accuracy"] - records["jfb"]["metrics"]["test_accuracy"]
            add("jfb_accuracy_near_ift", Check.at_most(gap, ACCURACY_GAP, "ift - jfb test accuracy"), scope)
        pair = [r for name, r in records.items() if name in ("torchdeq_ift", "jfb")]
        epoch = speed_metric(pair, "epoch")
        faster = ratio(records, epoch, "torchdeq_ift", "jfb", 1.0, floor=EPOCH_FLOOR)
        add("jfb_epoch_faster_than_torchdeq_ift", faster, scope)
    for scope, check in claims.values():
        add("jfb_backward_speedup_vs_ift", check, scope)
    for rest, points in along.values():
        if len(points) >= 2:
            add("jfb_speedup_grows_with_iterations", _grows(sorted(points)), rest)
    return checks


def _at_least(value: float, interval: tuple[float, float] | None, bound: float, what: str) -> Check:
    """Decided by the interval where both cases recorded one (inconclusive while it holds ``bound``)."""
    if interval is None:
        return Check.at_least(value, bound, what)
    return Check.interval_at_least(value, interval, bound, what)


def _grows(points: list[tuple[float, float, tuple[float, float] | None, str, float]]) -> Check:
    """The speed-up at the tightest tolerance over that at the loosest, above 1 beyond their intervals."""
    (tight, s_tight, i_tight, _, k_tight), *_, (loose, s_loose, i_loose, _, k_loose) = points
    what = (
        f"speed-up at tol {tight:g} (ift: {k_tight:.1f} forward iterations) over that at tol {loose:g} "
        f"({k_loose:.1f}): {s_tight:.2f} / {s_loose:.2f}, decided by the quotient of their 95% intervals"
    )
    interval = quotient_interval(i_tight, i_loose) if i_tight and i_loose else None
    return _at_least(s_tight / s_loose, interval, 1.0, what)
