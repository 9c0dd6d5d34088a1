"""Checks: a measured or exact value against a bound, with three outcomes (pass, fail, inconclusive), per case
(``CaseResult.checks``) or across a run's cases (``RunCheck``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    """A check: ``value`` compared with ``threshold``. ``passed`` is True or False, or None when the check cannot
    decide: a measured value whose confidence ``interval`` (low, high) holds the threshold is *inconclusive*.

    An exact value (a count, a deterministic error) is decided by itself (``at_most``, ``at_least``). A measured one
    (a timing, a ratio of timings) is decided by its interval (``interval_at_most``, ``interval_at_least``): it
    passes when the whole interval is on the right side of the threshold, fails when the whole interval is on the
    wrong side, and is inconclusive otherwise. An inconclusive check is shown and counted, and never fails a run.
    """

    value: float
    threshold: float
    passed: bool | None
    description: str = ""
    interval: tuple[float, float] | None = None

    @property
    def outcome(self) -> str:
        """``pass``, ``fail`` or ``inconclusive``."""
        return {True: "pass", False: "fail", None: "inconclusive"}[self.passed]

    @classmethod
    def at_most(cls, value: float, threshold: float, description: str = "") -> Check:
        return cls(float(value), float(threshold), bool(value <= threshold), description)

    @classmethod
    def at_least(cls, value: float, threshold: float, description: str = "") -> Check:
        return cls(float(value), float(threshold), bool(value >= threshold), description)

    @classmethod
    def interval_at_most(
        cls, value: float, interval: tuple[float, float], threshold: float, description: str = ""
    ) -> Check:
        """Pass when the interval's upper end is at most ``threshold``, fail when its lower end is above it (or when
        the value or the interval is not a number: nothing measured is no pass)."""
        low, high = float(interval[0]), float(interval[1])
        passed = True if high <= threshold else False if low > threshold else None
        passed = False if not all(math.isfinite(v) or math.isinf(v) for v in (value, low, high)) else passed
        return cls(float(value), float(threshold), passed, description, (low, high))

    @classmethod
    def interval_at_least(
        cls, value: float, interval: tuple[float, float], threshold: float, description: str = ""
    ) -> Check:
        """Pass when the interval's lower end is at least ``threshold``, fail when its upper end is below it (or when
        the value or the interval is not a number)."""
        low, high = float(interval[0]), float(interval[1])
        passed = True if low >= threshold else False if high < threshold else None
        passed = False if not all(math.isfinite(v) or math.isinf(v) for v in (value, low, high)) else passed
        return cls(float(value), float(threshold), passed, description, (low, high))


@dataclass(frozen=True)
class RunCheck:
    """A check over several cases of a run (e.g. memory flat in depth), recorded at run level."""

    task: str
    name: str
    check: Check
    scope: Mapping[str, Any] = field(default_factory=dict)  # what it is about, e.g. {"impl": ..., "scale": ...}
