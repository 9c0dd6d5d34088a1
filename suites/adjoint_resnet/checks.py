"""Checks across the depth sweep of one run, per activation.

- memory-free methods (those that reconstruct activations, i.e. report ``reconstruction_error``): step memory at
  the deepest depth within ``FLAT_MEMORY_TOLERANCE`` of the shallowest, plus the spread of the two cases'
  repeated readings (on a CPU at smoke scale, a working set of a few MB read through RSS spreads by about 1 MB;
  CUDA's allocator peak does not spread); backprop's grows at least ``GROWTH_FACTOR`` times;
- ``grad_rel_error`` of the memory-free methods falls from the shallowest to the deepest depth (weights smooth in
  depth: the tied initialisation);
- the order of the adjoints' gradient error, the slope p of log ``grad_rel_error`` against log N (error ~ N^p),
  fitted (``ctbench.api.sweeps.slope``) over the sweep's depths but the shallowest. The order is a statement about
  h = 1/N -> 0; at N = 8 the step times the residual function's Lipschitz constant is not small (measured at
  smoke scale, Euler with softplus: local slopes -0.26 from 8 to 16, -0.59, -0.78, -0.88, -0.94, -0.97 from 256
  to 512; a fit from 8 to 256 gives -0.68). Claims:

  * Euler with a smooth activation (softplus): p = -1 +- ``EULER_BAND``. The adjoint's vector-Jacobian products
    are taken at reconstructed activations O(h) away from the true ones, and a smooth Jacobian is then O(h) off,
    so the error is O(h). The band 0.25 separates first order from its neighbours: ReLU's measured -0.5 and a
    second-order -2 (the midpoints are -0.75 and -1.5). Measured at smoke scale: -0.83 on depths 32..128 (the
    sweep), about -0.91 on 64..256 (the local slopes above);
  * Euler with ReLU: informative. Where a pre-activation lies within O(h) of its kink the reconstructed point
    sits on the other side and that unit's Jacobian is off by O(1), so first order holds only where the flow is
    smooth. Measured: -0.99 at smoke scale (width 8, depths 32..128; -0.97 on 64..256), -0.70 at the small
    scale (width 16, depths 8..512). It passes while the error still falls
    (p <= ``RELU_CONVERGES``); the value is the order measured;
  * Heun, either activation: second order at least, p <= -2 + ``HEUN_BAND`` (the same fit tolerance as Euler's:
    a second-order method's slope is -2 only in the limit, and a fit over two or three depths moves by about
    0.1). Measured with ReLU at smoke scale (width 8): -2.51 on depths 32..128, -1.91 on 64..256 (local slopes
    -0.9, -4.1 and +0.3 from 32 to 256: its kinks cost Heun its extra order too); about -3 with a smooth field
    and at the small scale;

- Heun's gradient error below Euler's at every depth;
- the paper's speed targets, recorded as checks so the page shows the measured ratio: adjoint_euler's step time
  within 1.8x of backprop's, checkpoint's within 1.5x, at the deepest depth both ran: the ratio each case times in
  alternating pairs with plain autograd's step (``step_time_vs_backprop``; the machine's speed drifted by up to 30%
  between cases of one run here); for records without it, the two cases' step times (CPU time where both have it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ctbench import Check, RunCheck
from ctbench.api.sweeps import Record, Sweep, flat, grows, interval_of, ratio, settings, slope, speed_metric, sweeps

FLAT_MEMORY_TOLERANCE = 0.15  # deepest within 15% of shallowest, plus the readings' spread
GROWTH_FACTOR = 2.0  # backprop's step memory at the deepest case at least twice the shallowest's
SPEED_TARGETS = {"adjoint_euler": 1.8, "checkpoint": 1.5}
PAIRED = "step_time_vs_backprop"
MEMORY = "step_peak_memory_bytes"
ERROR = "grad_rel_error"
EULER_BAND = 0.25
RELU_CONVERGES = -0.25
HEUN_BAND = 0.25  # second order at least: slope <= -2 + HEUN_BAND
SMOOTH = ("softplus",)


def order_check(sweep: Sweep) -> Check | None:
    """The order claim of an adjoint's sweep (see the module's docstring); None for other methods or too few
    depths (two at least once the shallowest is left out)."""
    xs = sweep.has(ERROR)
    if sweep.impl not in ("adjoint_euler", "adjoint_heun") or len(xs) < 3:
        return None
    fit = slope(Sweep(sweep.scope, sweep.impl, {x: sweep.points[x] for x in xs[1:]}), ERROR, -1.0, EULER_BAND, 2)
    if fit is None:
        return None
    activation = sweep.scope.get("activation") or "relu"
    span = f"slope of log {ERROR} against log depth, {xs[1]}..{xs[-1]} (depth {xs[0]} is pre-asymptotic)"
    if sweep.impl == "adjoint_heun":
        return Check.at_most(fit.value, -2.0 + HEUN_BAND, f"{span}; Heun: second order at least (-2 + {HEUN_BAND})")
    if activation in SMOOTH:
        return replace(fit, description=f"{span}; Euler, smooth activation: first order, -1 +- {EULER_BAND}")
    why = (
        f"{span}; Euler with {activation}: the order measured, informative (the Jacobian jumps at the kinks, "
        f"first order only where the flow is smooth; small scale: -0.7); passes while the error falls"
    )
    return Check.at_most(fit.value, RELU_CONVERGES, why)


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
            add("memory_flat_in_depth", flat(sweep, MEMORY, FLAT_MEMORY_TOLERANCE, "step memory"), where)
            err = sweep.value(xs[-1], ERROR) / max(sweep.value(xs[0], ERROR), 1e-30)
            span = f"{ERROR} ratio, depth {xs[0]} -> {xs[-1]}"
            add("grad_error_falls_with_depth", Check.at_most(err, 1.0, span), where)
            add("grad_error_order", order_check(sweep), where)
        elif sweep.impl == "backprop":
            add("backprop_memory_grows", grows(sweep, MEMORY, GROWTH_FACTOR, "step memory"), where)
    for scope, records in settings(cases, params=("depth", "activation")):
        heun = ratio(records, ERROR, "adjoint_heun", "adjoint_euler", 1.0, at_least=False)
        add("heun_error_below_euler", heun, scope)
    for (impl, *scope_values), sweep in by_impl.items():
        backprop = by_impl.get(("backprop", *scope_values))
        common = sorted(set(sweep.points) & set(backprop.points)) if backprop and impl in SPEED_TARGETS else []
        if common:
            pair = {impl: sweep.points[common[-1]], "backprop": backprop.points[common[-1]]}
            add("step_time_vs_backprop", speed_check(pair, impl), {**sweep.scope, "impl": impl, "depth": common[-1]})
    return checks


def speed_check(pair: Mapping[str, Record], impl: str) -> Check | None:
    """``impl``'s step time over backprop's against its target: the ratio its case timed in alternating pairs
    (``step_time_vs_backprop``) where recorded, else the two cases' step times (CPU time where both have it)."""
    paired = pair[impl]["metrics"].get(PAIRED)
    if paired is not None:
        what = f"{PAIRED}: {impl}'s step / autograd's, timed in alternating pairs within its case"
        interval = interval_of(pair[impl], PAIRED)
        if interval is None:
            return Check.at_most(paired, SPEED_TARGETS[impl], what)
        return Check.interval_at_most(paired, interval, SPEED_TARGETS[impl], f"{what}; decided by its 95% interval")
    return ratio(pair, speed_metric(list(pair.values())), impl, "backprop", SPEED_TARGETS[impl], at_least=False)
