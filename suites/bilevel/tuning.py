"""Tuning as part of a protocol: a small grid of hyper-parameters searched on held-apart seeds, under one budget.

The rules, the same for every implementation of a task (references, peers and submissions alike):

- A grid is the product of a few axes (step sizes, a batch size...): ``Grid({"step_size": [0.01, 0.1],
  "outer_ratio": [1, 10]})`` has 4 points, in the order of the axes as declared (the last axis varies fastest).
- Who declares it. An implementation may declare its own grids as a class attribute ``tuning_grid``, a mapping
  from a key (a problem's name, its kind, or ``"default"``) to axes; ``declared_grid(impl, keys, fallback)``
  returns the first that matches, else the task's grid ``fallback`` (for instance the task's grid for the
  problem's kind, or multipliers of the implementation's own defaults, ``Grid.scaled``). An empty mapping
  declares "no tuning": a single point, the implementation's defaults.
- What is fixed is not searched: an implementation constructed with explicit values keeps them
  (``grid.without(names)`` removes those axes).
- The budget. ``search`` runs every point of the grid and refuses a grid of more than ``budget`` points
  (``ValueError``, never a silent truncation): the task sets one budget per scale, the same for every
  implementation, and runs each point under the same settings (data, samples, time).
- The held-apart seeds. Each point is scored by the task's ``score`` callable from runs on ``seeds``, seeds no
  case uses, so the chosen values are not fitted to the seeds that are then reported; a point must hold on every
  one of them (the task's ``score`` decides how they combine).
- The choice. Lower scores are better. A point whose run raises ``ctbench.Invalid`` (diverged, did not converge)
  or returns a score that is not finite scores +inf. The chosen point is the best finite score (ties: the first in
  grid order); when no point has a finite score nothing is chosen (``chosen`` is None) and the case runs at the
  implementation's defaults.

``Tuning`` (what ``search`` returns) is JSON-able (``to_json`` / ``from_json``, e.g. for ``ctbench.api.cache``) and says
what a case records about it: ``note()`` (the grid, the budget, the seeds, the criterion and the choice, for
``CaseResult.note``), ``metrics()`` (``tuned_<axis>`` for numeric chosen values and ``tuning_points``) and
``series()`` (``tuning_scores``: [point index, score] for the finite scores).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ctbench.api.task import Invalid

Point = dict[str, Any]
Scalar = (int, float, str, bool)


@dataclass(frozen=True)
class Grid:
    """The product of named axes, each a non-empty sequence of JSON scalars (numbers, strings, booleans)."""

    axes: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clean: dict[str, tuple[Any, ...]] = {}
        for name, values in self.axes.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"tuning grid: axis names are non-empty strings, got {name!r}")
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise ValueError(f"tuning grid: axis {name!r} needs a sequence of values, got {values!r}")
            values = tuple(values)
            if not values:
                raise ValueError(f"tuning grid: axis {name!r} has no values")
            for value in values:
                if not isinstance(value, Scalar) or (isinstance(value, float) and not math.isfinite(value)):
                    raise ValueError(f"tuning grid: axis {name!r} holds {value!r}, not a finite number or a name")
            if len(set(values)) != len(values):
                raise ValueError(f"tuning grid: axis {name!r} repeats a value: {values}")
            clean[name] = values
        object.__setattr__(self, "axes", clean)

    def __len__(self) -> int:
        return math.prod(len(values) for values in self.axes.values())

    def points(self) -> list[Point]:
        """Every point, the last axis varying fastest; one empty point for a grid without axes."""
        names = list(self.axes)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*self.axes.values())]

    def without(self, names: Iterable[str]) -> Grid:
        """The grid without the axes ``names`` (values fixed elsewhere are not searched)."""
        fixed = set(names)
        return Grid({name: values for name, values in self.axes.items() if name not in fixed})

    @classmethod
    def scaled(cls, multipliers: Mapping[str, Sequence[float]], base: Mapping[str, Any]) -> Grid:
        """Multiples of an implementation's own values: ``{axis: [m * base[axis] for m in multipliers[axis]]}``
        for the axes ``base`` holds as numbers (others are left out)."""
        axes = {}
        for name, factors in multipliers.items():
            value = base.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                axes[name] = [_round(f * value) for f in factors]
        return cls(axes)

    def to_json(self) -> dict[str, list[Any]]:
        return {name: list(values) for name, values in self.axes.items()}


def _round(value: float) -> float:
    """A product of floats to 12 significant digits, so 0.1 * 3 reads 0.3 in records and notes."""
    return float(f"{value:.12g}")


def declared_grid(impl: Any, keys: Sequence[str], fallback: Grid, attribute: str = "tuning_grid") -> Grid:
    """The grid ``impl`` declares for the first of ``keys`` it names in its class attribute ``attribute`` (a mapping
    key -> axes; ``"default"`` is tried last), else ``fallback`` (the task's grid)."""
    declared = getattr(impl, attribute, None) or {}
    if not isinstance(declared, Mapping):
        raise ValueError(f"{type(impl).__name__}.{attribute} must map a problem name or kind to axes")
    for key in (*keys, "default"):
        if key in declared:
            return Grid(declared[key])
    return fallback


@dataclass(frozen=True)
class Tuning:
    """The outcome of a search: the grid, every point's score (grid order; +inf where it failed), the chosen
    point (None when no score is finite), and how it was searched."""

    grid: Grid
    scores: tuple[float, ...]
    chosen: Point | None
    criterion: str
    seeds: tuple[int, ...]
    budget: int
    cached: bool = False

    @property
    def best_score(self) -> float:
        return min(self.scores, default=math.inf)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (an infinite score is written as null)."""
        return {
            "grid": self.grid.to_json(),
            "scores": [s if math.isfinite(s) else None for s in self.scores],
            "chosen": self.chosen,
            "criterion": self.criterion,
            "seeds": list(self.seeds),
            "budget": self.budget,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], cached: bool = False) -> Tuning:
        scores = tuple(math.inf if s is None else float(s) for s in data["scores"])
        return cls(Grid(data["grid"]), scores, data["chosen"], data["criterion"],
                   tuple(int(seed) for seed in data["seeds"]),
                   int(data["budget"]), cached)  # fmt: skip

    def metrics(self, prefix: str = "tuned_") -> dict[str, float]:
        """``<prefix><axis>`` for each numeric chosen value, and ``tuning_points`` (points run)."""
        out = {"tuning_points": float(len(self.scores))}
        for name, value in (self.chosen or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{prefix}{name}"] = float(value)
        return out

    def series(self, name: str = "tuning_scores") -> dict[str, list[list[float]]]:
        """[point index, score] for every finite score (the points are listed in ``note``)."""
        return {name: [[float(k), s] for k, s in enumerate(self.scores) if math.isfinite(s)]}

    def note(self) -> str:
        """One line for the case's page: what was searched, how, and what was chosen."""
        if not self.grid.axes:
            return "not tuned: its grid is empty (run at its defaults)"
        axes = ", ".join(f"{name} in {{{', '.join(map(_fmt, values))}}}" for name, values in self.grid.axes.items())
        failed = sum(not math.isfinite(s) for s in self.scores)
        head = (f"tuned over {len(self.scores)} points (budget {self.budget}) on held-apart seeds "
                f"{', '.join(map(str, self.seeds))}: {axes}; "
                f"criterion: {self.criterion}")  # fmt: skip
        tail = f"; {failed} of {len(self.scores)} points failed" if failed else ""
        source = " (cached search)" if self.cached else ""
        if self.chosen is None:
            return f"{head}; no point had a finite score: run at its defaults{tail}{source}"
        chosen = ", ".join(f"{k}={_fmt(v)}" for k, v in self.chosen.items())
        return f"{head}; chose {chosen} (score {_fmt(self.best_score)}){tail}{source}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def search(
    grid: Grid,
    score: Callable[[Point], float],
    *,
    budget: int,
    seeds: Sequence[int],
    criterion: str,
) -> Tuning:
    """Score every point of ``grid`` with ``score(point)`` (runs on the held-apart ``seeds``, lower is better) and
    keep the best (module docstring). A grid larger than ``budget`` is refused."""
    if budget < 1:
        raise ValueError(f"tuning budget must be at least 1 point, got {budget}")
    if len(grid) > budget:
        raise ValueError(
            f"tuning grid of {len(grid)} points ({grid.to_json()}) exceeds the budget of {budget} points that every "
            f"implementation gets: declare a smaller grid"
        )
    points = grid.points()
    if not grid.axes:
        return Tuning(grid, (), {}, criterion, tuple(seeds), budget)
    scores = []
    for point in points:
        try:
            value = float(score(dict(point)))
        except Invalid:
            value = math.inf
        scores.append(value if math.isfinite(value) else math.inf)
    finite = [k for k, s in enumerate(scores) if math.isfinite(s)]
    chosen = points[min(finite, key=lambda k: scores[k])] if finite else None
    return Tuning(grid, tuple(scores), chosen, criterion, tuple(seeds), budget)
