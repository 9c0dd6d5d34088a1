"""Tuning every solver's steps before its case, the same way for all (``suites.bilevel.tuning``).

The grid of a solver on a problem is, in this order:
1. the grid its class declares in ``tuning_grid`` (keyed by problem name, kind, or ``"default"``; at most the
   scale's budget of points, or the case fails);
2. the scale's grid for that problem, where it names one (``quadratic-benchopt``: benchopt's own grid,
   step_size in {0.01, 0.1} x outer_ratio in {0.1, 1, 10, 100});
3. else the scale's multipliers of the solver's own defaults for the problem (its published tuned values):
   step_size x {1/4, 1, 4} and outer_ratio x {1/10, 1, 10} at small and full scale.
Axes the solver does not have are left out, and values given to its constructor are kept, not searched.

Each point runs the case's race (same problem, batch size, sample budget and time cap: a point that diverges
after a shorter race would be chosen, and fail its case) on each held-apart seed of ``config["tuning"]["seeds"]``,
which no case uses, and scores the mean over those races of
    mean over the race's evaluations of log10(max(h(x) - h*, 1e-12)),
the area under its convergence curve against samples (lower is better: faster and deeper); a point whose race
diverges on any of the seeds scores +inf. Two seeds, not one: on hyperparameter selection at smoke, SABA at the
most aggressive corner of its grid (step 1, outer ratio 0.1) won on seed 1000 and diverged late (after 7,000
iterations) on 3 of 8 seeds, among them 1001. The search does not depend on the case's seed, so it is cached and
shared by the seeds of a scale.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ctbench import Context
from ctbench.api.cache import cached, key
from suites.bilevel.interface import BilevelSolver
from suites.bilevel.problem import BilevelProblem
from suites.bilevel.problems import fingerprint
from suites.bilevel.race import Evaluator, run_solver
from suites.bilevel.tuning import Grid, Tuning, declared_grid, search

FLOOR = 1e-12  # h - h* below this is float64 rounding: the criterion stops rewarding it
TUNED = ("step_size", "outer_ratio")  # axes recorded as metrics tuned_<axis> (any axis is in the note)
CRITERION = "mean log10(h - h*) over the race's evaluations (area under the curve against samples)"
VERSION = 1  # of the search's definition, in its cache key
SUITE = Path(__file__).parent


def grid_for(impl: BilevelSolver, problem: BilevelProblem, spec: Mapping[str, Any]) -> Grid:
    """The grid searched for ``impl`` on ``problem`` (module docstring), its fixed axes removed."""
    own = getattr(impl, "hyperparameters", None)  # a duck-typed solver without it declares its grid, or is not tuned
    defaults = own(problem) if callable(own) else {}
    if problem.name in spec.get("grids", {}):
        named = spec["grids"][problem.name]
        fallback = Grid({axis: values for axis, values in named.items() if axis in defaults})
    else:
        fallback = Grid.scaled(spec["multipliers"], defaults)
    return declared_grid(impl, (problem.name, problem.kind), fallback).without(fixed(impl))


def fixed(impl: BilevelSolver) -> dict[str, Any]:
    """The values given to the solver's constructor (kept, not searched)."""
    return dict(getattr(impl, "explicit", getattr(impl, "overrides", {})))


def score(trace_points: list[float]) -> float:
    """The criterion from the race's suboptimalities (module docstring)."""
    return sum(math.log10(max(s, FLOOR)) for s in trace_points) / len(trace_points)


def tune(
    impl: BilevelSolver,
    problem: BilevelProblem,
    evaluator: BilevelProblem,
    h_star: float,
    settings: Mapping[str, Any],
    spec: Mapping[str, Any],
    ctx: Context,
) -> Tuning:
    """Search ``impl``'s grid (cached), then leave ``impl`` set to the chosen values (its defaults where nothing
    was chosen) on top of its constructor's."""
    explicit = fixed(impl)
    impl.explicit = explicit
    grid = grid_for(impl, problem, spec)

    def run(point: Mapping[str, Any]) -> float:
        impl.overrides = {**explicit, **point}
        scores = []
        for seed in spec["seeds"]:
            trace = run_solver(impl, problem, Evaluator(evaluator, h_star), settings, ctx.meter.clock, seed)
            if trace.diverged_at is not None:
                return math.inf
            scores.append(score([p.suboptimality for p in trace.points]))
        return sum(scores) / len(scores)

    def build() -> dict[str, Any]:
        return search(grid, run, budget=spec["budget"], seeds=spec["seeds"], criterion=CRITERION).to_json()

    path = ctx.cache_dir / "bilevel" / f"tuning-{cache_key(impl, problem, settings, spec, grid, explicit, ctx)}.json"
    was_cached = path.exists()
    tuning = Tuning.from_json(cached(path, build), cached=was_cached)
    impl.overrides = {**explicit, **(tuning.chosen or {})}
    return tuning


def stored_choice(impl: BilevelSolver, stored: Mapping[str, float]) -> Tuning:
    """The choice a stored case's search made (its ``tuned_<axis>`` metrics for the axes in ``TUNED``), set on
    ``impl`` without searching again: the engine times that case's step here (``ctx.stored``), and a step's cost
    does not depend on where the search landed, only on which values it runs with."""
    explicit = fixed(impl)
    chosen = {axis: stored[f"tuned_{axis}"] for axis in TUNED if f"tuned_{axis}" in stored and axis not in explicit}
    impl.explicit = explicit
    impl.overrides = {**explicit, **chosen}
    return Tuning(Grid({}), (), chosen or None, "the stored case's choice", (), 0, cached=True)


def _sources(impl: BilevelSolver) -> str:
    """A hash of the modules beside the solver's classes (its whole class hierarchy, with the helper modules of
    their folders, e.g. ``reference_impls/bilevel/_scalar_table.py``) and of this suite's modules."""
    digest = hashlib.sha256()
    files = {inspect.getsourcefile(cls) for cls in type(impl).__mro__ if cls.__module__ not in ("builtins", "abc")}
    beside = {p for f in files if f for p in Path(f).parent.glob("*.py")}
    for path in sorted(str(f) for f in beside) + sorted(str(p) for p in SUITE.glob("*.py")):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def cache_key(
    impl: BilevelSolver,
    problem: BilevelProblem,
    settings: Mapping[str, Any],
    spec: Mapping[str, Any],
    grid: Grid,
    explicit: Mapping[str, Any],
    ctx: Context,
) -> str:
    """What the search depends on: the solver (class and sources), the problem's data, the race's settings, the
    grid, the constructor's values, the seeds, the budget, the device type and this module's version."""
    cls = type(impl)
    return key(VERSION, f"{cls.__module__}.{cls.__qualname__}", _sources(impl), fingerprint(problem, 0),
               dict(settings), grid.to_json(), dict(explicit), list(spec["seeds"]), spec["budget"], ctx.device.type,
               torch.__version__)  # fmt: skip
