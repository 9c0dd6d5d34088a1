"""Every figure of a report drawn from the stored reference run keeps each implementation's one style, has no text
that collides and no bar on a log axis; cases that are not ok are never drawn; a value a log axis cannot show is
drawn at its floor, bands over seeds span quantiles, a Pareto panel has two points at least, each said on the
figure; the audit itself catches each defect it looks for; a task's own figures say how many cases they left out."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from runfiles import METHODS, case, run_doc

from ctbench.api.task import Task
from ctbench.boards.groups import board_groups, board_title
from ctbench.boards.table import METRIC, cases_frame, leaderboard, task_specs
from ctbench.catalog.registry import description, tasks
from ctbench.figures import audit
from ctbench.figures.palette import Style, using
from ctbench.figures.pareto import pareto_figures
from ctbench.figures.plotting import draw_all, plain_text, report_styles
from ctbench.machine.env import hardware_label
from ctbench.store.results import Run
from report.plots import task_figures

REFERENCE = sorted((Path(__file__).resolve().parents[3] / "results" / "reference").glob("*.json"))[-1]


@pytest.fixture(scope="module")
def reference():
    run = Run.load(REFERENCE)
    frame = cases_frame([run])
    return run, frame, report_styles(frame), task_specs([run])


def _figures(run, frame, styles, specs, name):
    cases = frame[frame["task"] == name]
    records = [{**c, "run_id": run["run_id"], "hardware": hardware_label(run["env"])} for c in run["cases"]]
    records = [r for r in records if r["task"] == name]
    board = leaderboard(cases, name, specs, None)
    boards = [(board_title(key), group) for key, group in board_groups(board)]
    hook = lambda task, c, r: tasks()[task].plots(c, r)  # noqa: E731
    figures, errors = task_figures(name, specs.get(name), cases, records, hook, styles, boards)
    assert not errors, errors
    return figures


@pytest.mark.parametrize("name", sorted(tasks()))
def test_every_figure_keeps_styles_and_text_apart(reference, name):
    run, frame, styles, specs = reference
    with plain_text():
        figures = _figures(run, frame, styles, specs, name)
        assert figures, f"{name}: no figure drawn from {REFERENCE.name}"
        problems = []
        for title, figure in figures:
            problems += [f"{title}: {p}" for p in audit.style_mismatches(figure, styles)]
            problems += [f"{title}: text {a!r} overlaps {b!r}" for a, b in audit.overlapping_texts(figure)]
            problems += [f"{title}: bars on a log axis in {p!r}" for p in audit.bars_on_log_axes(figure)]
            plt.close(figure)
    assert problems == []


def test_a_case_that_is_not_ok_is_not_drawn_and_the_figure_says_so(reference):
    run, _, _, specs = reference
    plot = specs["adjoint_resnet"]["plots"][0]
    metric = plot["y"]
    broken = copy.deepcopy(run)
    victim = next(c for c in broken["cases"] if c["task"] == "adjoint_resnet" and metric in c["metrics"])
    victim["status"], victim["metrics"][metric] = "invalid", 1e30
    frame = cases_frame([broken])
    assert (frame[METRIC + metric] == 1e30).any()
    with plain_text():
        figures = draw_all(plot, frame[frame["task"] == "adjoint_resnet"])
        drawn = [y for f in figures for ax in f.axes for line in ax.get_lines() for y in line.get_ydata()]
        notes = [f.legends[0].get_title().get_text() for f in figures]
    assert drawn and max(drawn) < 1e29 * float(plot.get("scale_y", 1.0))
    assert all("1 case not ok" in note for note in notes), notes


@pytest.mark.parametrize("name", sorted(n for n, t in tasks().items() if type(t).plots is not Task.plots))
def test_own_figures_say_how_many_cases_they_left_out(reference, name):
    from matplotlib.text import Text

    run, _, _, _ = reference
    broken = copy.deepcopy(run)
    own = [c for c in broken["cases"] if c["task"] == name and c["status"] == "ok"]
    victim = max(own, key=lambda c: len(c.get("series") or {}))  # a case every figure of the task would draw
    victim["status"] = "invalid"
    frame = cases_frame([broken])
    records = [{**c, "run_id": run["run_id"], "hardware": hardware_label(run["env"])} for c in broken["cases"]]
    with plain_text(), using(report_styles(frame)):
        figures = tasks()[name].plots(frame[frame["task"] == name], [r for r in records if r["task"] == name])
    assert figures
    for title, figure in figures.items():
        texts = [t.get_text() for t in figure.findobj(Text)]
        assert any(re.search(r"\d+ cases? not ok .* not drawn", t) for t in texts), (title, texts)
        plt.close(figure)


def _frame(cases: list[dict]) -> pd.DataFrame:
    return cases_frame([run_doc("20250101T000000Z-aaaa", "2025-01-01T00:00:00+00:00", cases)])


def _adjoint_plot(name: str) -> dict:
    return next(p for p in description("adjoint_resnet")["plots"] if p["name"] == name)


def test_a_value_a_log_axis_cannot_show_is_drawn_at_its_floor_and_said_so():
    exact = ("backprop", "checkpoint")
    frame = _frame([case(m, d, grad_rel_error=0.0 if m in exact else 0.1 / d) for m in METHODS for d in (8, 64)])
    styles = report_styles(frame)
    with plain_text():
        (figure,) = draw_all(_adjoint_plot("grad_error_vs_depth"), frame, styles)
        figure.canvas.draw()
        ax = figure.axes[0]
        hollow = [line for line in ax.get_lines() if line.get_gid() and line.get_markerfacecolor() == "none"]
        ticks = {t.get_text() for t in ax.get_yticklabels()}
        note = figure.legends[0].get_title().get_text()
        problems = audit.style_mismatches(figure, styles)
    assert {line.get_gid() for line in ax.get_lines() if line.get_gid()} == set(METHODS)
    assert {line.get_gid() for line in hollow} == set(exact)
    floors = {float(y) for line in hollow for y in line.get_ydata()}
    assert len(floors) == 1 and 0 < floors.pop() < 0.1 / 64 and "≤ 0" in ticks
    assert "≤ 0" in note and "backprop, checkpoint" in note and problems == []
    # the two at the floor at one depth sit side by side, neither hiding the other
    at = {line.get_gid(): sorted(float(x) for x in line.get_xdata()) for line in hollow}
    assert all(a != b for a, b in zip(at["backprop"], at["checkpoint"], strict=True)), at
    assert all(abs(a / d - 1) < 0.1 for gid in exact for a, d in zip(at[gid], (8, 64), strict=True)), at
    plt.close(figure)


def test_a_line_per_case_floors_values_a_log_axis_cannot_show_unless_the_caller_asks_for_symlog():
    from ctbench.figures.plotting import line_figures

    frame = pd.DataFrame({
        "label": ["a"] * 6 + ["b"] * 3,
        "case": ["a0"] * 3 + ["a1"] * 3 + ["b0"] * 3,
        "x": [1, 2, 3] * 3,
        "y": [1.0, 0.1, 0.0, 2.0, 0.2, 0.02, 1.0, -0.5, 0.3],
        "panel": "p",
    })  # fmt: skip
    with plain_text():
        (floored,) = line_figures(frame, "x", "y", xlabel="x", ylabel="y", yscale="log", col="panel", units="case")
        (symlog,) = line_figures(frame, "x", "y", xlabel="x", ylabel="y", yscale="log", col="panel", units="case",
                                 linthresh=1e-3)  # fmt: skip
        for figure in (floored, symlog):
            figure.canvas.draw()
        ax, other = floored.axes[0], symlog.axes[0]
        hollow = [line for line in ax.get_lines() if line.get_gid() and line.get_markerfacecolor() == "none"]
        note = floored.legends[0].get_title().get_text()
        ticks = {t.get_text() for t in ax.get_yticklabels()}
    solid = [line for line in ax.get_lines() if line.get_gid() and line not in hollow]
    assert ax.get_yscale() == "log" and len(solid) == 3  # a line per case
    assert {line.get_gid() for line in hollow} == {"a", "b"}
    assert {float(y) for line in hollow for y in line.get_ydata()} == {1e-3}  # a decade below 0.02
    assert "≤ 0" in ticks and "values ≤ 0 of a, b" in note
    assert other.get_yscale() == "symlog" and "symmetric log" in other.get_ylabel()
    assert not [line for line in other.get_lines() if line.get_markerfacecolor() == "none"]
    assert "≤ 0" not in symlog.legends[0].get_title().get_text()
    assert -0.5 in {float(y) for line in other.get_lines() for y in line.get_ydata()}
    plt.close(floored)
    plt.close(symlog)


def test_the_curves_of_one_point_over_its_seeds_are_drawn_as_a_median_with_its_band():
    """As benchopt draws its runs: the k-th points of one point's curves over seeds are one point of a median curve,
    at the median of their x, with a band over the seeds. Curves of different points stay a line each (the
    control)."""
    from ctbench.figures.plotting import line_figures

    seeds = {"s0": ([1.0, 2.0, 3.0], [1.0, 0.5, 0.2]), "s1": ([1.2, 2.2, 3.2], [2.0, 1.0, 0.4]),
             "s2": ([0.8, 1.8, 2.8], [3.0, 1.5, 0.6])}  # fmt: skip
    frame = pd.DataFrame([
        {"label": "a", "case": c, "point": '{"n": 8}', "x": x, "y": y, "panel": "p"}
        for c, (xs, ys) in seeds.items()
        for x, y in zip(xs, ys, strict=True)
    ])  # fmt: skip
    mixed = frame.assign(point=frame["case"].map({"s0": '{"n": 8}', "s1": '{"n": 16}', "s2": '{"n": 16}'}))
    with plain_text():
        (one,) = line_figures(frame, "x", "y", xlabel="x", ylabel="y", col="panel", units="case")
        (two,) = line_figures(mixed, "x", "y", xlabel="x", ylabel="y", col="panel", units="case")
    (median,) = [line for line in one.axes[0].get_lines() if line.get_gid() == "a"]
    assert list(median.get_xdata()) == [1.0, 2.0, 3.0] and list(median.get_ydata()) == [2.0, 1.0, 0.4]
    assert len([c for c in one.axes[0].collections if c.get_gid() == "a"]) == 1  # the band over the seeds
    assert "medians over seeds" in one.legends[0].get_title().get_text()
    assert len([line for line in two.axes[0].get_lines() if line.get_gid() == "a"]) == 3
    assert not [c for c in two.axes[0].collections if c.get_gid() == "a"]
    plt.close(one)
    plt.close(two)


def test_a_band_spans_the_quantiles_from_five_seeds_and_all_seeds_below():
    times = {"backprop": [1.0, 2.0, 3.0, 4.0, 100.0], "checkpoint": [1.0, 2.0, 100.0]}
    frame = _frame([case(m, 8, seed=i, time_s=t) for m, ts in times.items() for i, t in enumerate(ts)])
    with plain_text():
        (figure,) = draw_all(_adjoint_plot("step_time_vs_depth"), frame)
        bands = {c.get_gid(): c.get_paths()[0].vertices[:, 1] for c in figure.axes[0].collections if c.get_gid()}
        note = figure.legends[0].get_title().get_text()
    assert np.isclose(bands["backprop"].min(), np.quantile(times["backprop"], 0.2))
    assert np.isclose(bands["backprop"].max(), np.quantile(times["backprop"], 0.8))
    assert (bands["checkpoint"].min(), bands["checkpoint"].max()) == (1.0, 100.0)
    assert "bands: 0.2-0.8 quantiles over seeds, lowest to highest seed where fewer than 5" in note
    plt.close(figure)


def test_a_pareto_panel_needs_two_points_and_the_legend_counts_what_is_left_out():
    cases = [case(m, 8) for m in METHODS[:3]] + [case("adjoint_heun", 8, status="failed", error="boom")]
    cases.append(case("backprop", 8, seed=1, status="invalid", error="diverged"))  # a drawn row's other seed
    cases.append(case("backprop", 64))  # a board of one row: no panel
    run = run_doc("20250101T000000Z-aaaa", "2025-01-01T00:00:00+00:00", cases)
    frame = cases_frame([run])
    board = leaderboard(frame, "adjoint_resnet", task_specs([run]))
    boards = [(board_title(key), group) for key, group in board_groups(board)]
    with plain_text():
        (figure,) = pareto_figures(boards, "grad_rel_error")
        note = figure.legends[0].get_title().get_text()
        lone = [b for b in boards if "depth=64" in b[0]]
        assert len(lone) == 1 and pareto_figures(lone, "grad_rel_error") == []
    assert len([ax for ax in figure.axes if ax.get_visible()]) == 1
    assert "2 cases not ok (failed, invalid or timed out) not drawn" in note
    assert "1 board with fewer than two rows to draw: no panel" in note
    plt.close(figure)


def test_the_audit_finds_each_defect():
    styles = {"a": Style("#1f77b4", "o"), "b": Style("#ff7f0e", "s")}
    figure, (left, right) = plt.subplots(1, 2)
    left.plot([1, 2], [1, 2], color="#ff7f0e", gid="a")  # a drawn in b's colour
    left.legend(left.plot([1], [1], color="#1f77b4", marker="^")[:1], ["a"])  # a's legend with another marker
    right.bar([0, 1], [10, 100])
    right.set_yscale("log")
    right.text(0.5, 0.5, "collides", transform=right.transAxes)
    right.text(0.5, 0.5, "with this", transform=right.transAxes)
    assert any("'a' drawn in" in p for p in audit.style_mismatches(figure, styles))
    assert any("marker '^'" in p for p in audit.style_mismatches(figure, styles))
    right.scatter([1], [1], color="#ff7f0e", marker="D", gid="b")  # b's points in another marker than its own
    right.scatter([2], [2], color="#ff7f0e", marker="s", gid="b")  # and in its own
    right.plot([1, 2], [1, 2], color="#ff7f0e", marker="v", gid="b")
    assert any("'b' drawn with markers ['other', 's', 'v']" in p for p in audit.style_mismatches(figure, styles))
    assert audit.bars_on_log_axes(figure)
    assert ("collides", "with this") in audit.overlapping_texts(figure)
    plt.close(figure)


@pytest.mark.parametrize("name", sorted(tasks()))
def test_memory_is_drawn_in_mib_as_on_the_boards(name):
    for plot in tasks()[name].line_plots:
        if plot.y.endswith("_bytes"):
            assert plot.scale_y == 2**-20 and "(MiB)" in (plot.ylabel or ""), plot


def test_symlog_ticks_are_sorted_and_never_fewer_than_two():
    from ctbench.figures.plotting import _symlog_ticks

    wide = _symlog_ticks(-1e-3, 0.1, 1e-12, 300)
    assert wide == sorted(wide) and 0.0 in wide and min(wide) < 0 < max(wide)
    assert all(abs(t) > 5e-12 for t in wide if t)  # none inside the linear part, where labels would pile up
    assert _symlog_ticks(-3, 3, 1, 300) == [-3, 0.0, 3]  # within a few times the linear part: its ends and 0
