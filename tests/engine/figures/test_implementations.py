"""Two implementations of one name (a folder submission beside the reference, two versions of one file) are two
implementations in every figure of a report: each in its own colour, the same in every figure, as the boards name
it; the audit reports a legend entry that is no implementation of the report or that is drawn in another style."""

from __future__ import annotations

import copy
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from ctbench.api.task import Task
from ctbench.boards.groups import board_groups, board_title
from ctbench.boards.table import cases_frame, leaderboard, task_specs
from ctbench.catalog.registry import tasks
from ctbench.figures import audit
from ctbench.figures.palette import GUIDE, Style
from ctbench.figures.plotting import plain_text, report_styles
from ctbench.machine.env import hardware_label
from ctbench.store.results import Run
from report.plots import task_figures

REFERENCE = sorted((Path(__file__).resolve().parents[3] / "results" / "reference").glob("*.json"))[-1]
HOOKED = sorted(name for name, task in tasks().items() if type(task).plots is not Task.plots)  # tasks' own figures


def _doubled(run: dict, task: str) -> tuple[dict, list[tuple[str, str]]]:
    """``run`` with the implementation of ``task`` whose ok cases carry the most series also run as a folder
    submission of the same name, and the next also run as another version of its file; those two impl names."""
    doc = copy.deepcopy(run)
    own = [c for c in doc["cases"] if c["task"] == task]
    series = {c["impl"]: set() for c in own}
    for c in own:
        series[c["impl"]] |= set(c.get("series") or {}) if c["status"] == "ok" else set()
    first, second = sorted(series, key=lambda impl: (-len(series[impl]), impl))[:2]
    for c in [c for c in own if c["impl"] == first]:
        doc["cases"].append({**copy.deepcopy(c), "submission": "folder", "impl_hash": "f01de7000000000a"})
    for c in [c for c in own if c["impl"] == second]:
        doc["cases"].append({**copy.deepcopy(c), "impl_hash": "0e1d0000000000bb"})
    return doc, [first, second]


def _figures(run: dict, task: str) -> tuple:
    """The task's figures as the report draws them (Pareto, line plots, the task's own), with the names of its
    own, the task's cases and the report's styles."""
    frame = cases_frame([run])
    cases = frame[frame["task"] == task]
    hardware = hardware_label(run["env"])
    records = [{**c, "run_id": run["run_id"], "hardware": hardware} for c in run["cases"] if c["task"] == task]
    specs = task_specs([run])
    board = leaderboard(cases, task, specs, None)
    boards = [(board_title(key), group) for key, group in board_groups(board)]
    styles = report_styles(frame)
    own: list[str] = []

    def hook(name, c, r):
        drawn = tasks()[name].plots(c, r)
        own.extend(drawn)
        return drawn

    figures, errors = task_figures(task, specs.get(task), cases, records, hook, styles, boards)
    assert not errors, errors
    return cases, styles, figures, own


@pytest.mark.parametrize("task", HOOKED)
def test_one_name_twice_is_two_implementations_in_every_figure(task):
    run, impls = _doubled(Run.load(REFERENCE), task)
    with plain_text():
        cases, styles, figures, own = _figures(run, task)
        pairs = [sorted(set(cases.loc[cases["impl"] == impl, "label"])) for impl in impls]
        assert all(len(pair) == 2 for pair in pairs), pairs  # e.g. ``ipm`` and ``ipm [folder]``, ``a @0e1d0000``
        colours: dict[str, set[str]] = {}
        shown_by_own: set[str] = set()
        for name, figure in figures:
            assert audit.style_mismatches(figure, styles) == [], name
            drawn = audit.drawn_labels(figure)
            for pair in pairs:
                shown = [label for label in pair if label in drawn]
                assert len(shown) in (0, 2), (name, pair, sorted(drawn))
                if shown:
                    assert drawn[shown[0]].isdisjoint(drawn[shown[1]]), (name, shown)
            for label, seen in drawn.items():
                colours.setdefault(label, set()).update(seen)
            shown_by_own |= set(drawn) if name in own else set()
            plt.close(figure)
    assert own and all(set(pair) <= shown_by_own for pair in pairs), (own, pairs, sorted(shown_by_own))
    assert all(len(seen) == 1 for seen in colours.values()), colours  # one colour per implementation, every figure


def test_the_audit_reports_a_legend_entry_of_no_implementation_or_in_another_style():
    styles = {"a": Style("#1f77b4", "o"), "b": Style("#ff7f0e", "s")}
    figure, ax = plt.subplots()
    (a,) = ax.plot([1, 2], [1, 2], color="#1f77b4", marker="o")
    (b,) = ax.plot([1, 2], [2, 1], color="#1f77b4", marker="s")  # b in a's colour
    (stranger,) = ax.plot([1, 2], [1, 1], color="#2ca02c")
    (data,) = ax.plot([1, 2], [0, 0], color=GUIDE.colour, linestyle="--")
    ax.scatter([1], [1], color="#d62728", gid="c")  # a tagged artist of no implementation
    ax.legend([a, b, stranger, data], ["a", "b (submission)", "stranger", "data"])
    problems = audit.style_mismatches(figure, styles)
    plt.close(figure)
    assert any("legend 'b': colour #1f77b4, not #ff7f0e" in p for p in problems), problems
    assert any("legend 'stranger'" in p for p in problems) and any("'c'" in p for p in problems), problems
    assert not any("'a'" in p or "'data'" in p for p in problems), problems
