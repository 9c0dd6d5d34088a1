"""Checks decided by confidence intervals: pass, fail or inconclusive; the median's interval holds its coverage;
paired timings add pairs until the interval decides or the budget is spent. Clocks are injected: nothing here
depends on the machine's speed or load."""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ctbench import Check
from ctbench.api.measure import median_interval, paired_interval


def test_an_interval_check_has_three_outcomes():
    # "at most 1.8": the whole interval below passes, the whole interval above fails, one holding 1.8 is undecided
    assert Check.interval_at_most(1.5, (1.4, 1.7), 1.8).outcome == "pass"
    assert Check.interval_at_most(2.0, (1.9, 2.2), 1.8).outcome == "fail"
    undecided = Check.interval_at_most(1.88, (1.7, 2.0), 1.8)
    assert undecided.passed is None and undecided.outcome == "inconclusive" and undecided.interval == (1.7, 2.0)
    # the same value read as an exact number would have failed: the interval is what makes it undecided
    assert Check.at_most(1.88, 1.8).outcome == "fail"
    assert Check.interval_at_least(1.2, (1.1, 1.3), 1.0).outcome == "pass"
    assert Check.interval_at_least(0.89, (0.8, 0.95), 1.0).outcome == "fail"
    assert Check.interval_at_least(0.98, (0.9, 1.1), 1.0).outcome == "inconclusive"
    # nothing measured is no pass: a value or an interval that is not a number fails
    nan = float("nan")
    assert Check.interval_at_most(nan, (nan, nan), 1.8).outcome == "fail"
    assert Check.interval_at_least(1.2, (nan, 1.3), 1.0).outcome == "fail"
    assert Check.interval_at_least(2.0, (1.5, float("inf")), 1.0).outcome == "pass"  # unbounded above is a bound


def test_the_median_interval_holds_the_median_at_its_stated_confidence():
    rng = random.Random(0)
    trials, n, true_median = 2000, 15, 1.0  # lognormal(0, 0.5): median exp(0) = 1, skewed like timings
    covered = 0
    for _ in range(trials):
        low, high = median_interval([rng.lognormvariate(0.0, 0.5) for _ in range(n)])
        covered += low <= true_median <= high
    assert covered / trials >= 0.94  # sign-test intervals are conservative: at least the 95% asked for
    # the control: the interval is not the whole range (which would cover trivially)
    values = [float(v) for v in range(1, 16)]
    assert median_interval(values) == (4.0, 12.0)
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)  # too few values: their range


def ratios_clock(ratios: Iterator[float]) -> tuple[Callable[[Callable[[], Any]], tuple[Any, float]], list[str]]:
    """A clock on which ``fn`` takes the next ratio's seconds and the baseline one second."""
    calls: list[str] = []

    def clock(fn: Callable[[], Any]) -> tuple[Any, float]:
        calls.append(fn.__name__)
        return None, next(ratios) if fn.__name__ == "fn" else 1.0

    return clock, calls


def fn() -> None: ...


def baseline() -> None: ...


def test_paired_timing_adds_pairs_until_the_interval_decides():
    # ratios spread around 1.0, bound 1.0: the interval always holds it, so pairs are added up to the budget
    rng = random.Random(1)
    clock, calls = ratios_clock(iter(lambda: rng.uniform(0.9, 1.1), None))
    found = paired_interval(fn, baseline, clock, rounds=6, bound=1.0, max_rounds=24)
    assert found.pairs == 24 and found.interval[0] <= 1.0 <= found.interval[1]
    assert calls[:4] == ["fn", "baseline", "fn", "baseline"]  # interleaved
    assert Check.interval_at_most(found.median, found.interval, 1.0).outcome == "inconclusive"
    # ratios well away from the bound decide at once: no pair is added
    clock, calls = ratios_clock(iter(lambda: rng.uniform(1.4, 1.6), None))
    found = paired_interval(fn, baseline, clock, rounds=6, bound=1.0, max_rounds=24)
    assert found.pairs == 6 and found.interval[0] > 1.0
    assert found.median == pytest.approx(statistics.median([1.5] * 6), abs=0.1)
    assert Check.interval_at_most(found.median, found.interval, 1.0).outcome == "fail"
    # without a bound, exactly ``rounds`` pairs
    clock, _ = ratios_clock(iter(lambda: rng.uniform(0.9, 1.1), None))
    assert paired_interval(fn, baseline, clock, rounds=5).pairs == 5
