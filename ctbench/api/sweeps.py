"""Shared pieces of run checks: group case records into sweeps along a parameter, and the usual claims about a
sweep (flat within noise, grows, log-log slope) or a pair of methods (ratio against a named peer).

A *sweep* is the ok records of one implementation in one setting (scale, dataset, seed and any fixed parameters),
keyed by the value of the swept parameter. A *setting* without an axis holds one record per implementation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ctbench.api.check import Check

Record = Mapping[str, Any]
SETTING = ("scale", "dataset", "seed")


def _scope(record: Record, keys: Sequence[str], params: Sequence[str]) -> dict[str, Any]:
    scope = {k: record[k] for k in keys}
    scope.update({p: record["params"].get(p) for p in params})
    return scope


def _sort_key(value: Any) -> tuple[bool, float | str]:
    return (value is None, value if isinstance(value, (int, float)) else str(value))


@dataclass
class Sweep:
    """One implementation's ok records in one setting, keyed by the swept parameter's value (sorted)."""

    scope: dict[str, Any]
    impl: str
    points: dict[Any, Record]

    @property
    def xs(self) -> list[Any]:
        return sorted(self.points, key=_sort_key)

    def has(self, metric: str) -> list[Any]:
        """The axis values whose record carries ``metric``."""
        return [x for x in self.xs if metric in self.points[x]["metrics"]]

    def value(self, x: Any, metric: str) -> float:
        return float(self.points[x]["metrics"][metric])

    def spread(self, x: Any, metric: str) -> float:
        return float(self.points[x].get("spread", {}).get(metric, 0.0))


def sweeps(
    cases: Iterable[Record], axis: str, params: Sequence[str] = (), keys: Sequence[str] = SETTING
) -> list[Sweep]:
    """The ok records grouped by setting (``keys`` and the fixed ``params``) and implementation, along ``axis``."""
    groups: dict[str, Sweep] = {}
    for case in cases:
        if case["status"] != "ok" or axis not in case["params"]:
            continue
        scope = _scope(case, keys, params)
        key = json.dumps([scope, case["impl"]], sort_keys=True, default=str)
        sweep = groups.setdefault(key, Sweep(scope, case["impl"], {}))
        sweep.points[case["params"][axis]] = case
    return list(groups.values())


def settings(
    cases: Iterable[Record],
    params: Sequence[str] = (),
    keys: Sequence[str] = SETTING,
    statuses: Sequence[str] = ("ok",),
) -> list[tuple[dict[str, Any], dict[str, Record]]]:
    """(scope, {impl: record}) per setting: the records to compare methods at one point."""
    groups: dict[str, tuple[dict[str, Any], dict[str, Record]]] = {}
    for case in cases:
        if case["status"] not in statuses:
            continue
        scope = _scope(case, keys, params)
        groups.setdefault(json.dumps(scope, sort_keys=True, default=str), (scope, {}))[1][case["impl"]] = case
    return list(groups.values())


def flat(sweep: Sweep, metric: str, tolerance: float, what: str = "") -> Check | None:
    """``metric`` at the sweep's last point within ``tolerance`` (relative) of its first, plus the two readings'
    measured spread; None with fewer than two points."""
    xs = sweep.has(metric)
    if len(xs) < 2:
        return None
    lo, hi = xs[0], xs[-1]
    base = max(sweep.value(lo, metric), 1e-300)
    noise = (sweep.spread(lo, metric) + sweep.spread(hi, metric)) / base
    growth = sweep.value(hi, metric) / base - 1
    return Check.at_most(
        growth,
        tolerance + noise,
        f"{what or metric} growth, {lo} -> {hi} (bound: {tolerance:.0%} + the readings' spread, {noise:.0%})",
    )


def grows(sweep: Sweep, metric: str, factor: float, what: str = "") -> Check | None:
    """``metric`` at the sweep's last point at least ``factor`` times its first; None with fewer than two points."""
    xs = sweep.has(metric)
    if len(xs) < 2:
        return None
    ratio = sweep.value(xs[-1], metric) / max(sweep.value(xs[0], metric), 1e-300)
    return Check.at_least(ratio, factor, f"{what or metric} ratio, {xs[0]} -> {xs[-1]}")


def interval_of(record: Record, metric: str, floor: float = 0.0) -> tuple[float, float] | None:
    """The interval a record's measured ``metric`` lies in: its recorded confidence interval (``intervals``), else
    its value +- its spread (an IQR: for the median of 5 or more repeats, wider than the median's 95% interval),
    widened to +- ``floor`` x value where ``floor`` (a relative noise floor the check states) is larger; None for a
    metric with neither (an exact value)."""
    value = record["metrics"][metric]
    recorded = (record.get("intervals") or {}).get(metric)
    if recorded is not None:
        low, high = float(recorded[0]), float(recorded[1])
    else:
        spread = (record.get("spread") or {}).get(metric)
        if spread is None and not floor:
            return None
        half = float(spread or 0.0)
        low, high = value - half, value + half
    margin = floor * abs(value)
    return min(low, value - margin), max(high, value + margin)


def quotient_interval(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """The interval of x / y for x in ``a`` and y in ``b`` (both positive quantities): unbounded above where ``b``
    reaches zero."""
    low = a[0] / b[1] if b[1] > 0 else math.inf
    high = a[1] / b[0] if b[0] > 0 else math.inf
    return max(low, 0.0), high


def ratio(
    records: Mapping[str, Record],
    metric: str,
    numerator: str,
    denominator: str,
    threshold: float,
    at_least: bool = True,
    floor: float = 0.0,
) -> Check | None:
    """``metric`` of ``numerator`` / ``metric`` of ``denominator`` against ``threshold`` (a named peer); None when
    either lacks the metric. Where both values are measured (``interval_of``: a recorded interval or spread, or the
    relative noise ``floor`` the caller states), the check is decided by the quotient's interval and is
    inconclusive while that interval holds the threshold; exact values are decided by the ratio itself."""
    a, b = records.get(numerator), records.get(denominator)
    if a is None or b is None or metric not in a["metrics"] or metric not in b["metrics"]:
        return None
    value = a["metrics"][metric] / b["metrics"][metric] if b["metrics"][metric] else math.inf
    description = f"{metric}: {numerator} / {denominator}"
    ia, ib = interval_of(a, metric, floor), interval_of(b, metric, floor)
    if ia is not None and ib is not None:
        interval = quotient_interval(ia, ib)
        if at_least:
            return Check.interval_at_least(value, interval, threshold, description)
        return Check.interval_at_most(value, interval, threshold, description)
    return Check.at_least(value, threshold, description) if at_least else Check.at_most(value, threshold, description)


def speed_metric(records: Sequence[Record], phase: str = "step") -> str:
    """The clock that speed checks across cases compare for ``phase`` (the step, or a timed phase such as
    ``epoch``): ``<phase>_cpu_time_s`` where every record has it (CPU cases: cases run minutes apart, and the
    machine's load in between does not count), else ``<phase>_time_s``."""
    cpu = f"{phase}_cpu_time_s"
    return cpu if all(cpu in r["metrics"] for r in records) else f"{phase}_time_s"


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(y) on log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((x - mx) * (y - my) for x, y in zip(lx, ly, strict=True)) / sum((x - mx) ** 2 for x in lx)


def slope(sweep: Sweep, metric: str, expected: float, band: float, min_points: int = 3) -> Check | None:
    """Slope of log ``metric`` against log of the axis, passing within ``expected`` +- ``band``."""
    xs = [x for x in sweep.has(metric) if x and x > 0 and sweep.value(x, metric) > 0]
    if len(xs) < min_points:
        return None
    value = loglog_slope(xs, [sweep.value(x, metric) for x in xs])
    return Check(
        value,
        expected,
        abs(value - expected) <= band,
        f"slope of log {metric} against log of the axis, {xs[0]}..{xs[-1]}; passes within {expected} +- {band}",
    )
