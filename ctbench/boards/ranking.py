"""Ranks that mean something: the Pareto layer of each leaderboard row over its task's objectives, and the rank by
one metric with ties declared where two rows differ by no more than their measured spread.

Plain functions over numbers; ``ctbench.boards.table.leaderboard`` applies them per board. Nothing here imports a task:
a task's objectives come from its description (``objectives`` there, else ``default_objectives``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

OBJECTIVE_KINDS = ("quality", "memory", "time")
# the boards' caption where a row has an objective without spread, through which no row dominates it
PARETO_NO_SPREAD = "layers shared where a row has no spread on an objective (one seed, one process)"
STEP_OBJECTIVES = {"step_peak_memory_bytes": "memory", "step_time_s": "time"}


def _kind(spec: Any) -> str:
    """What a metric measures, from its unit (a ``Metric`` or its description as a dict)."""
    unit: Any = spec.get("unit") if isinstance(spec, Mapping) else getattr(spec, "unit", "")
    return {"s": "time", "bytes": "memory"}.get(unit, "quality")


def default_objectives(primary: str | None, metrics: Mapping[str, Any]) -> dict[str, str]:
    """The primary metric (a quality, or a time or memory by its unit), and the engine's step memory and step time
    where ``metrics`` has them."""
    found = {primary: _kind(metrics.get(primary))} if primary else {}
    for name, kind in STEP_OBJECTIVES.items():
        if name in metrics and name not in found:
            found[name] = kind
    return found


def objectives(spec: Mapping[str, Any] | None) -> dict[str, str]:
    """A task's objectives from its description: metric -> kind, only metrics it declares with a direction.

    A description without ``objectives`` (older run files), or with none usable, gets ``default_objectives``.
    """
    if not isinstance(spec, Mapping):
        return {}
    declared_metrics = spec.get("metrics")
    metrics: Mapping[str, Any] = declared_metrics if isinstance(declared_metrics, Mapping) else {}

    def ranked(name: Any) -> bool:
        m = metrics.get(name) if isinstance(name, str) else None
        return isinstance(m, Mapping) and isinstance(m.get("higher_is_better"), bool)

    declared = spec.get("objectives")
    if isinstance(declared, Mapping):
        found = {k: v for k, v in declared.items() if ranked(k) and v in OBJECTIVE_KINDS}
        if found:
            return found
    primary = spec.get("primary_metric") if isinstance(spec.get("primary_metric"), str) else None
    return {k: v for k, v in default_objectives(primary, metrics).items() if ranked(k)}


def known(noise: float | None) -> bool:
    """A spread was measured (a number, not None or NaN): zero is a spread, missing is not."""
    return noise is not None and not math.isnan(noise)


def tolerance(x: float | None, y: float | None) -> float | None:
    """The larger of two rows' spreads, or None where either row has none (its difference cannot be judged)."""
    return max(abs(float(x)), abs(float(y))) if known(x) and known(y) else None  # type: ignore[arg-type]


def beats(a: float, b: float, noise: float | None, higher: bool) -> bool:
    """``a`` better than ``b`` by more than ``noise``; never where the noise is unknown (None or NaN)."""
    if not known(noise):
        return False
    return (a - b if higher else b - a) > abs(noise)  # type: ignore[arg-type]


def tied_ranks(values: Sequence[float], noise: Sequence[float | None], higher: bool) -> list[int]:
    """Competition ranks (1 = best) over groups of rows that cannot be told apart.

    Sorted best first, two rows are tied when their difference does not exceed the larger of their spreads (or
    either has none), and so is every row between them in value: each group is a run of the sorted rows, and its
    rows share the rank 1 + the number of rows in better groups. Two rows with different ranks therefore always
    differ by more than the larger of their two spreads; tied rows may not (a noisy row ties the rows within its
    spread of it, and the rows between them)."""
    n = len(values)
    order = sorted(range(n), key=lambda i: -values[i] if higher else values[i])
    reach = list(range(n))  # reach[p]: the furthest sorted position tied with position p
    for p, i in enumerate(order):
        for q in range(p + 1, n):
            j = order[q]
            if not beats(values[i], values[j], tolerance(noise[i], noise[j]), higher):
                reach[p] = q
    ranks = [0] * n
    start, end = 0, -1
    for p, i in enumerate(order):
        if p > end:  # no row above reaches this one: a new group
            start = p
        end = max(end, reach[p])
        ranks[i] = start + 1
    return ranks


def dominates(
    a: Sequence[float], b: Sequence[float], tolerances: Sequence[float | None], higher: Sequence[bool]
) -> bool:
    """``a`` no worse than ``b`` beyond the tolerance on every objective, and better beyond it on one. An objective
    whose tolerance is unknown (a row without spread) establishes nothing: unless the two values are equal there,
    ``a`` does not dominate."""
    better = False
    for va, vb, tol, up in zip(a, b, tolerances, higher, strict=True):
        if not known(tol):
            if va != vb:
                return False
            continue
        if beats(vb, va, tol, up):
            return False
        better = better or beats(va, vb, tol, up)
    return better


def pareto_layers(
    values: Sequence[Sequence[float]], noise: Sequence[Sequence[float | None]], higher: Sequence[bool]
) -> list[int]:
    """The Pareto layer of each row (1: no other row dominates it; 2: only rows of layer 1 do; ...).

    ``values[i][k]`` is row i's objective k and ``noise[i][k]`` its spread (None or NaN: none measured);
    differences within the larger spread of two rows are no difference, and a difference where either row has no
    spread is not judged. Rows caught in a cycle of domination (possible only through the tolerance) share a
    layer.
    """
    layers = [0] * len(values)
    remaining = set(range(len(values)))
    layer = 1
    while remaining:

        def tolerances(i: int, j: int) -> list[float | None]:
            return [tolerance(x, y) for x, y in zip(noise[i], noise[j], strict=True)]

        front = {
            i
            for i in remaining
            if not any(dominates(values[j], values[i], tolerances(i, j), higher) for j in remaining if j != i)
        } or set(remaining)
        for i in front:
            layers[i] = layer
        remaining -= front
        layer += 1
    return layers


def rank_text(rank: Any, tied: Any) -> str:
    """``1``, ``1=`` for a rank shared within noise, ``—`` for no rank."""
    if rank is None or (isinstance(rank, float) and math.isnan(rank)):
        return "—"
    return f"{int(rank)}{'=' if tied else ''}"
