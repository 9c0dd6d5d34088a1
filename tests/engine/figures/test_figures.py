"""Every figure of a report drawn from the stored reference run keeps each implementation's one style, has no text
that collides and no bar on a log axis; cases that are not ok are never drawn; the audit itself catches each
defect it looks for; a task's own figures say how many cases they left out."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from ctbench.api.task import Task
from ctbench.boards.groups import board_groups, board_title
from ctbench.boards.table import METRIC, cases_frame, leaderboard, task_specs
from ctbench.catalog.registry import tasks
from ctbench.figures import audit
from ctbench.figures.palette import Style, using
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
