"""The headline ratios a task declares (``ctbench.Ratio``), measured from the cases of run files.

A ratio is ``impl``'s metric over each of ``against``'s at the param points where both cases ended ok; with
``deepest``, only at the largest value of that grid axis, beside each implementation's growth from the smallest to the
largest value of it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ctbench.api.task import Ratio

Point = tuple[dict[str, Any], float]  # a case's params and its metric's value


@dataclass(frozen=True)
class Measured:
    """``numerator`` (``impl``'s value) over ``denominator`` (``against``'s) at ``params``."""

    against: str
    params: dict[str, Any]
    numerator: float
    denominator: float

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True)
class Growth:
    """``impl``'s metric at the smallest and the largest value of the ratio's ``deepest`` axis."""

    impl: str
    first: tuple[float, float]  # (axis value, metric value)
    last: tuple[float, float]


def declared(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, Ratio]]:
    """(task, ratio) for the headline ratios the tasks of ``runs`` declare, from the descriptions the run files carry
    (the newest run's description of a task wins)."""
    found: dict[str, list[Ratio]] = {}
    for run in runs:
        for task, spec in (run.get("tasks") or {}).items():
            found[task] = [
                Ratio(
                    r["title"],
                    r["impl"],
                    tuple(r["against"]),
                    r.get("metric") or "step_peak_memory_bytes",
                    r.get("deepest"),
                )  # fmt: skip
                for r in spec.get("headline_ratios") or []
            ]
    return [(task, ratio) for task, ratios in found.items() for ratio in ratios]


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def ok_points(cases: Sequence[Mapping[str, Any]], impl: str, metric: str) -> dict[str, Point]:
    """Param point (as JSON) -> (params, value) of ``impl``'s ok cases that measured ``metric``."""
    out = {}
    for c in cases:
        value = _number((c.get("metrics") or {}).get(metric))
        if c["impl"] == impl and c["status"] == "ok" and value is not None:
            out[json.dumps(c["params"], sort_keys=True)] = (dict(c["params"]), value)
    return out


def measure(ratio: Ratio, cases: Sequence[Mapping[str, Any]]) -> dict[str, list[Measured]]:
    """Each of ``against`` -> the ratio at the points where both ended ok (an empty list: no such point)."""
    mine = ok_points(cases, ratio.impl, ratio.metric)
    out: dict[str, list[Measured]] = {}
    for other in ratio.against:
        theirs = ok_points(cases, other, ratio.metric)
        common = [k for k in mine if k in theirs]
        if ratio.deepest and common:
            axis = ratio.deepest
            common = [max(common, key=lambda k: _number(mine[k][0].get(axis)) or -math.inf)]
        out[other] = [Measured(other, mine[k][0], mine[k][1], theirs[k][1]) for k in common]
    return out


def growth(ratio: Ratio, cases: Sequence[Mapping[str, Any]]) -> list[Growth]:
    """Each implementation's metric from the smallest to the largest value of ``ratio.deepest`` (none without it)."""
    if not ratio.deepest:
        return []
    out = []
    for impl in (ratio.impl, *ratio.against):
        found = ((_number(p.get(ratio.deepest)), v) for p, v in ok_points(cases, impl, ratio.metric).values())
        points = sorted((d, v) for d, v in found if d is not None)
        if len(points) >= 2:
            out.append(Growth(impl, points[0], points[-1]))
    return out
