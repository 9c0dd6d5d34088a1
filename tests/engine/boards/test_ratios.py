"""Headline ratios measured from case records: common ok points only, the deepest point, growth along the axis."""

from __future__ import annotations

from ctbench import Ratio
from ctbench.boards import ratios


def _case(impl: str, depth: int, memory: float, status: str = "ok") -> dict:
    return {"impl": impl, "params": {"depth": depth}, "status": status, "metrics": {"step_peak_memory_bytes": memory}}


CASES = [
    _case("adjoint", 8, 10.0),
    _case("adjoint", 64, 11.0),
    _case("backprop", 8, 20.0),
    _case("backprop", 64, 160.0),
    _case("checkpoint", 64, 40.0, status="failed"),
]


def test_a_ratio_is_measured_where_both_ended_ok_and_at_the_deepest_point():
    everywhere = ratios.measure(Ratio("memory", "adjoint", ("backprop", "checkpoint")), CASES)
    assert [(m.params["depth"], m.value) for m in everywhere["backprop"]] == [(8, 0.5), (64, 11 / 160)]
    assert everywhere["checkpoint"] == []  # its only case failed: not measured
    deepest = ratios.measure(Ratio("memory", "adjoint", ("backprop",), deepest="depth"), CASES)
    assert [(m.params, m.numerator, m.denominator) for m in deepest["backprop"]] == [({"depth": 64}, 11.0, 160.0)]


def test_growth_runs_from_the_smallest_to_the_largest_point_of_the_axis():
    grown = ratios.growth(Ratio("memory", "adjoint", ("backprop",), deepest="depth"), CASES)
    assert [(g.impl, g.first, g.last) for g in grown] == [
        ("adjoint", (8, 10.0), (64, 11.0)),
        ("backprop", (8, 20.0), (64, 160.0)),
    ]
    assert ratios.growth(Ratio("memory", "adjoint", ("backprop",)), CASES) == []


def test_declared_ratios_come_from_the_newest_description_of_each_task():
    old = {"tasks": {"a": {"headline_ratios": [{"title": "old", "impl": "x", "against": ["y"]}]}}}
    new = {"tasks": {"a": {"headline_ratios": [{"title": "new", "impl": "x", "against": ["y"], "metric": "t"}]}}}
    assert ratios.declared([old, new]) == [("a", Ratio("new", "x", ("y",), "t"))]
