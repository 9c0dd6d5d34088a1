"""Checks across the depth sweep of one run, per activation.

- memory-free methods (those that reconstruct activations, i.e. report ``reconstruction_error``): step memory
  grows by at most ``FLAT_MEMORY_TOLERANCE`` from the shallowest depth to the deepest, decided by the growth's
  interval from the two cases' readings (each median +- the range of its repeated readings): pass when the whole
  interval is within the bound, fail when it is all above, inconclusive otherwise (the spread never widens the
  bound itself). On a CPU at smoke scale the readings (3-5 MB through RSS) spread by up to 2.4 MB, and by 2-5 MB at
  batch 256: inconclusive there; CUDA's allocator peak does not spread. Backprop's grows at least ``GROWTH_FACTOR``
  times;
- ``grad_rel_error`` of the memory-free methods falls from the shallowest to the deepest depth (weights smooth in
  depth: the tied initialisation);
- the order of the adjoints' gradient error, the slope p of log ``grad_rel_error`` against log N (error ~ N^p),
  a least-squares fit over at least ``MIN_FIT_DEPTHS`` depths, the sweep's depths but the shallowest, with its 95%
  interval from the regression's standard error (Student's t, n - 2 degrees of freedom). The order is a statement
  about h = 1/N -> 0; at N = 8 the step times the residual function's Lipschitz constant is not small. Claims:

  * Euler with a smooth activation (softplus): p = -1 +- ``EULER_BAND``, passing when the slope's interval lies
    within the band, failing when it lies outside it, inconclusive otherwise. The adjoint's vector-Jacobian
    products are taken at reconstructed activations O(h) away from the true ones, and a smooth Jacobian is then
    O(h) off, so the error is O(h). The band 0.25 separates first order from its neighbours: a half order and a
    second order (the midpoints are -0.75 and -1.5);
  * Heun with a smooth activation: second order at least, p <= -2 + ``HEUN_BAND`` (the same tolerance), decided
    by the slope's interval;
  * either method with ReLU: informative (never passes or fails). Where a pre-activation lies within O(h) of its
    kink the reconstructed point sits on the other side and that unit's Jacobian is off by O(1), so the order
    holds only where the flow is smooth. The check records the slope, its interval, and the depth from which the
    error stops falling, if it does.

  Measured at smoke scale on a CPU (one thread, seed 0, pretrained from an empty cache), local slopes from
  depth 8 to 16, ..., 128 to 256: Euler with softplus -0.52, -0.55, -0.78, -0.87, -0.93 (still steepening: the fit
  over 16..128 is pre-asymptotic); Heun with softplus -3.0 throughout; Euler with ReLU -1.11, -0.94, -0.99, -0.99,
  -0.97; Heun with ReLU -2.67, -2.23, -0.93, -4.10, +0.27 (its error rises from 128 to 256: the kinks cost Heun its
  extra order). The smoke fits: Euler with softplus -0.74 (interval -0.96..-0.51: inconclusive), Heun with softplus
  -3.00 (-3.00..-2.99). At the small scale's configuration (width 16, errors only) Euler with softplus
  falls with local slopes -1.16, -1.07, -1.03, -1.01 from 32 to 1024: a fit of -1.05 (-1.10..-1.00), within the band;
  Heun's with -3.04, -3.01, -3.00, -3.00;

- Heun's gradient error below Euler's at every depth;
- the cost in operations the algorithms state, at each method's deepest depth: the FLOPs of its step over plain
  autograd's through the same depth (``step_flops_vs_backprop``, counted from the operators the step dispatches;
  deterministic, the same on every machine). Backprop costs a forward pass F and a backward pass 2F (the
  gradients with respect to the input and to the weights); the Euler adjoint runs the forward pass without keeping
  activations, then for each block reconstructs its input (one more evaluation of the residual function) and
  recomputes it with its gradient (F + 2F): at most 5F / 3F = 5/3, ``FLOP_TARGETS``; Heun's two evaluations per
  step double the stage's cost (10/3); checkpointing recomputes the forward pass once (4/3). The layers outside the
  stage cost both sides the same, so the ratios sit just below. Measured at smoke scale (one thread): adjoint_euler
  1.66661 at depth 8 and 1.66666 at 128, adjoint_heun 3.283 and 3.330, checkpoint 1.263 and 1.317. The step's
  wall-clock ratio (``step_time_vs_backprop``, timed in alternating pairs within the case, with its 95% interval)
  is recorded as a measurement, not checked: it depends on the machine's dispatch cost and load (1.85 against the
  same code's 1.67 FLOP ratio on a loaded CPU).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ctbench import Check, RunCheck
from ctbench.api.sweeps import (
    Record,
    Sweep,
    grows,
    interval_of,
    quotient_interval,
    ratio,
    settings,
    sweeps,
)

FLAT_MEMORY_TOLERANCE = 0.15  # deepest at most 15% above the shallowest, decided by the growth's interval
GROWTH_FACTOR = 2.0  # backprop's step memory at the deepest case at least twice the shallowest's
FLOP_TARGETS = {"adjoint_euler": 5 / 3, "adjoint_heun": 10 / 3, "checkpoint": 4 / 3}  # of backprop's step FLOPs
FLOPS = "step_flops_vs_backprop"
PAIRED = "step_time_vs_backprop"  # wall clock, measured beside the FLOPs
MEMORY = "step_peak_memory_bytes"
ERROR = "grad_rel_error"
EULER_BAND = 0.25
HEUN_BAND = 0.25  # second order at least: slope <= -2 + HEUN_BAND
MIN_FIT_DEPTHS = 4  # depths in the order's fit, the pre-asymptotic shallowest left out
CONFIDENCE = 0.95
SMOOTH = ("softplus",)


@dataclass(frozen=True)
class Fit:
    """A least-squares line through (log N, log error): its slope, the slope's ``CONFIDENCE`` interval from the
    regression's standard error, and the depths it was fitted on."""

    slope: float
    interval: tuple[float, float]
    depths: tuple[int, ...]


def loglog_fit(depths: Sequence[int], errors: Sequence[float]) -> Fit:
    """The slope of log ``errors`` against log ``depths`` with its interval (Student's t, n - 2 degrees of
    freedom; three points at least)."""
    from scipy import stats

    xs, ys = [math.log(d) for d in depths], [math.log(e) for e in errors]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    residual = sum((y - my - b * (x - mx)) ** 2 for x, y in zip(xs, ys, strict=True))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 2)) * math.sqrt(residual / (n - 2) / sxx)
    return Fit(b, (b - half, b + half), tuple(depths))


def stops_falling(depths: Sequence[int], errors: Sequence[float]) -> int | None:
    """The first depth from which the error no longer falls (the next depth's is at least as large), or None."""
    for i in range(len(depths) - 1):
        if errors[i + 1] >= errors[i]:
            return int(depths[i])
    return None


def order_check(sweep: Sweep) -> Check | None:
    """The order claim of an adjoint's sweep (see the module's docstring); None for other methods or too few
    depths (``MIN_FIT_DEPTHS`` once the shallowest is left out)."""
    xs = [x for x in sweep.has(ERROR) if sweep.value(x, ERROR) > 0]
    if sweep.impl not in ("adjoint_euler", "adjoint_heun") or len(xs) < MIN_FIT_DEPTHS + 1:
        return None
    errors = [sweep.value(x, ERROR) for x in xs]
    fit = loglog_fit(xs[1:], errors[1:])
    low, high = fit.interval
    activation = sweep.scope.get("activation") or "relu"
    span = (
        f"slope of log {ERROR} against log depth over {', '.join(map(str, fit.depths))} (depth {xs[0]} is "
        f"pre-asymptotic), {CONFIDENCE:.0%} interval from the fit's standard error"
    )
    heun = sweep.impl == "adjoint_heun"
    if activation not in SMOOTH:
        local = ", ".join(
            f"{math.log(errors[i + 1] / errors[i]) / math.log(xs[i + 1] / xs[i]):.2f}" for i in range(len(xs) - 1)
        )
        stop = stops_falling(xs, errors)
        where = f"the error stops falling at depth {stop}" if stop else "the error falls at every depth"
        why = (
            f"{span}; {'Heun' if heun else 'Euler'} with {activation}: informative (the Jacobian jumps at the kinks, "
            f"so the order holds only where the flow is smooth); local slopes {local}; {where}"
        )
        return Check(fit.slope, -2.0 if heun else -1.0, None, why, fit.interval)
    if heun:
        bound = -2.0 + HEUN_BAND
        return Check.interval_at_most(fit.slope, fit.interval, bound, f"{span}; Heun: second order at least ({bound})")
    band = (-1.0 - EULER_BAND, -1.0 + EULER_BAND)
    passed = True if band[0] <= low and high <= band[1] else False if high < band[0] or low > band[1] else None
    why = f"{span}; Euler, smooth activation: first order, the interval within -1 +- {EULER_BAND}"
    return Check(fit.slope, -1.0, passed, why, fit.interval)


def memory_flat(sweep: Sweep) -> Check | None:
    """Step memory's growth from the shallowest depth to the deepest at most ``FLAT_MEMORY_TOLERANCE``, decided by
    the growth's interval (each reading's median +- its spread); exact readings (no spread) by the growth itself."""
    xs = sweep.has(MEMORY)
    if len(xs) < 2:
        return None
    lo, hi = sweep.points[xs[0]], sweep.points[xs[-1]]
    growth = sweep.value(xs[-1], MEMORY) / max(sweep.value(xs[0], MEMORY), 1e-300) - 1
    what = f"step memory growth, depth {xs[0]} -> {xs[-1]}"
    a, b = interval_of(hi, MEMORY), interval_of(lo, MEMORY)
    if a is None or b is None:
        return Check.at_most(growth, FLAT_MEMORY_TOLERANCE, what)
    low, high = quotient_interval(a, b)
    why = f"{what}; decided by its interval from the readings' spread"
    return Check.interval_at_most(growth, (low - 1, high - 1), FLAT_MEMORY_TOLERANCE, why)


def depth_checks(task: str, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
    checks: list[RunCheck] = []

    def add(name: str, check: Check | None, scope: Mapping[str, Any]) -> None:
        if check is not None:
            checks.append(RunCheck(task, name, check, dict(scope)))

    by_impl = {}
    for sweep in sweeps(cases, "depth", params=("activation",)):
        by_impl[(sweep.impl, *sweep.scope.values())] = sweep
        where, xs = {**sweep.scope, "impl": sweep.impl}, sweep.xs
        if len(xs) < 2:
            continue
        if "reconstruction_error" in sweep.points[xs[0]]["metrics"]:
            add("memory_flat_in_depth", memory_flat(sweep), where)
            err = sweep.value(xs[-1], ERROR) / max(sweep.value(xs[0], ERROR), 1e-30)
            span = f"{ERROR} ratio, depth {xs[0]} -> {xs[-1]}"
            add("grad_error_falls_with_depth", Check.at_most(err, 1.0, span), where)
            add("grad_error_order", order_check(sweep), where)
        elif sweep.impl == "backprop":
            add("backprop_memory_grows", grows(sweep, MEMORY, GROWTH_FACTOR, "step memory"), where)
    for scope, records in settings(cases, params=("depth", "activation")):
        heun = ratio(records, ERROR, "adjoint_heun", "adjoint_euler", 1.0, at_least=False)
        add("heun_error_below_euler", heun, scope)
    for sweep in by_impl.values():
        counted = [x for x in sweep.xs if FLOPS in sweep.points[x]["metrics"]]
        if sweep.impl in FLOP_TARGETS and counted:
            where = {**sweep.scope, "impl": sweep.impl, "depth": counted[-1]}
            add(FLOPS, flops_check(sweep.points[counted[-1]], sweep.impl), where)
    return checks


def flops_check(record: Record, impl: str) -> Check:
    """``impl``'s step FLOPs over autograd's at the same depth, counted in its case, against its cost model."""
    what = f"{FLOPS}: {impl}'s step / autograd's, FLOPs counted in its case (exact, no spread)"
    return Check.at_most(record["metrics"][FLOPS], FLOP_TARGETS[impl], what)
