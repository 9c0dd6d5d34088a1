"""ctbench.tuning: grids, who declares them, the equal budget, the held-apart search and what a case records."""

from __future__ import annotations

import json
import math

import pytest

from ctbench import Invalid
from suites.bilevel.tuning import Grid, Tuning, declared_grid, search

CRITERION = "final loss"


def test_a_grid_is_the_product_of_its_axes_in_declared_order():
    grid = Grid({"step_size": [0.1, 1.0], "outer_ratio": [1, 10, 100]})
    assert len(grid) == 6
    assert grid.points() == [
        {"step_size": 0.1, "outer_ratio": 1},
        {"step_size": 0.1, "outer_ratio": 10},
        {"step_size": 0.1, "outer_ratio": 100},
        {"step_size": 1.0, "outer_ratio": 1},
        {"step_size": 1.0, "outer_ratio": 10},
        {"step_size": 1.0, "outer_ratio": 100},
    ]
    assert Grid().points() == [{}] and len(Grid()) == 1
    assert grid.to_json() == {"step_size": [0.1, 1.0], "outer_ratio": [1, 10, 100]}


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        ({"step": []}, "has no values"),
        ({"step": "0.1"}, "needs a sequence"),
        ({"step": [float("nan")]}, "not a finite number"),
        ({"step": [[0.1]]}, "not a finite number or a name"),
        ({"step": [0.1, 0.1]}, "repeats a value"),
        ({"": [0.1]}, "non-empty strings"),
    ],
)
def test_bad_grids_are_refused(axes, message):
    with pytest.raises(ValueError, match=message):
        Grid(axes)


def test_fixed_axes_are_removed_and_multipliers_scale_an_implementations_values():
    grid = Grid({"step_size": [0.1, 1.0], "outer_ratio": [1, 10]})
    assert grid.without(["step_size"]).to_json() == {"outer_ratio": [1, 10]}
    scaled = Grid.scaled({"step_size": [0.25, 1, 4], "outer_ratio": [0.1, 1], "momentum": [1, 2]},
                         {"step_size": 0.1, "outer_ratio": 3.0, "name": "x"})  # fmt: skip
    assert scaled.to_json() == {"step_size": [0.025, 0.1, 0.4], "outer_ratio": [0.3, 3.0]}  # no momentum: not held


class Declares:
    tuning_grid = {"quadratic-benchopt": {"step_size": [1.0]}, "quadratic": {"step_size": [2.0]}, "default": {}}


class DeclaresNothing:
    pass


def test_an_implementation_declares_its_grid_by_problem_then_kind_then_default_else_the_tasks():
    task_grid = Grid({"step_size": [5.0, 6.0]})
    assert declared_grid(Declares(), ("quadratic-benchopt", "quadratic"), task_grid).to_json() == {"step_size": [1.0]}
    assert declared_grid(Declares(), ("quadratic-x", "quadratic"), task_grid).to_json() == {"step_size": [2.0]}
    assert declared_grid(Declares(), ("hyperparam",), task_grid) == Grid({})  # "default": no tuning
    assert declared_grid(DeclaresNothing(), ("quadratic",), task_grid) is task_grid

    class Bad:
        tuning_grid = [("step_size", [1.0])]

    with pytest.raises(ValueError, match="must map a problem name or kind"):
        declared_grid(Bad(), ("quadratic",), task_grid)


def test_search_scores_every_point_on_the_seed_and_keeps_the_lowest():
    seen = []

    def score(point):
        seen.append(point)
        return (point["step"] - 0.3) ** 2

    tuning = search(Grid({"step": [0.1, 0.3, 1.0]}), score, budget=4, seeds=(77, 78), criterion=CRITERION)
    assert seen == [{"step": 0.1}, {"step": 0.3}, {"step": 1.0}]
    assert tuning.chosen == {"step": 0.3} and tuning.seeds == (77, 78) and tuning.budget == 4
    assert tuning.scores == pytest.approx((0.04, 0.0, 0.49))


def test_ties_go_to_the_first_point_and_failures_score_infinity():
    def score(point):
        if point["step"] == 0.1:
            raise Invalid("diverged at iteration 3")
        return {0.2: math.nan, 0.3: 1.0, 0.4: 1.0}[point["step"]]

    tuning = search(Grid({"step": [0.1, 0.2, 0.3, 0.4]}), score, budget=4, seeds=(0,), criterion=CRITERION)
    assert tuning.scores == (math.inf, math.inf, 1.0, 1.0)
    assert tuning.chosen == {"step": 0.3}
    assert "2 of 4 points failed" in tuning.note()


def test_nothing_is_chosen_when_every_point_fails():
    def score(point):
        raise Invalid("diverged")

    tuning = search(Grid({"step": [1.0, 2.0]}), score, budget=2, seeds=(0,), criterion=CRITERION)
    assert tuning.chosen is None and tuning.best_score == math.inf
    assert "no point had a finite score: run at its defaults" in tuning.note()
    assert tuning.metrics() == {"tuning_points": 2.0}
    assert tuning.series() == {"tuning_scores": []}


def test_other_errors_are_bugs_and_propagate():
    def score(point):
        raise KeyError("step_size")

    with pytest.raises(KeyError):
        search(Grid({"step": [1.0]}), score, budget=1, seeds=(0,), criterion=CRITERION)


def test_the_budget_is_the_same_for_everyone_and_a_larger_grid_is_refused():
    """Two implementations under one budget: the one whose grid fits is searched, the larger one refused whole
    (never truncated to its first points)."""
    budget = 4
    fits = Grid({"step": [0.1, 1.0], "ratio": [1, 10]})
    too_big = Grid({"step": [0.01, 0.1, 1.0], "ratio": [1, 10]})
    assert len(search(fits, lambda p: p["step"], budget=budget, seeds=(0,), criterion=CRITERION).scores) == 4
    calls = []
    with pytest.raises(ValueError, match="6 points .* exceeds the budget of 4 points"):
        search(too_big, lambda p: calls.append(p) or 0.0, budget=budget, seeds=(0,), criterion=CRITERION)
    assert calls == []
    with pytest.raises(ValueError, match="at least 1 point"):
        search(fits, lambda p: 0.0, budget=0, seeds=(0,), criterion=CRITERION)


def test_an_empty_grid_runs_nothing_and_says_so():
    calls = []
    tuning = search(Grid({}), lambda p: calls.append(p) or 0.0, budget=3, seeds=(0,), criterion=CRITERION)
    assert calls == [] and tuning.chosen == {} and tuning.metrics() == {"tuning_points": 0.0}
    assert tuning.note().startswith("not tuned")


def test_a_tuning_is_json_and_says_what_a_case_records():
    tuning = search(Grid({"step_size": [0.1, 1.0], "method": ["a", "b"]}),
                    lambda p: math.inf if p["step_size"] == 1.0 and p["method"] == "b" else p["step_size"],
                    budget=9, seeds=(1000, 1001), criterion=CRITERION)  # fmt: skip
    data = json.loads(json.dumps(tuning.to_json()))
    assert data["scores"][-1] is None  # +inf written as null
    again = Tuning.from_json(data, cached=True)
    assert again.scores == tuning.scores and again.chosen == tuning.chosen == {"step_size": 0.1, "method": "a"}
    assert again.grid == tuning.grid and again.cached and not tuning.cached
    assert tuning.metrics() == {"tuning_points": 4.0, "tuned_step_size": 0.1}  # names are in the note only
    assert tuning.series() == {"tuning_scores": [[0.0, 0.1], [1.0, 0.1], [2.0, 1.0]]}
    note = tuning.note()
    for part in ("4 points (budget 9)", "seeds 1000, 1001", "step_size in {0.1, 1}", "method in {a, b}", CRITERION,
                 "chose step_size=0.1, method=a"):  # fmt: skip
        assert part in note, (part, note)
    assert "(cached search)" in again.note()
