"""Every figure of a report built from run files (synthetic ``adjoint_resnet`` runs and the stored reference run's
``gan_ntk`` and ``neis`` cases, each with a second implementation of an existing name) draws each implementation in
the report's one colour for it, and two implementations of one name in two colours."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from ctbench.figures import audit
from ctbench_cli.commands.report import _custom_plots
from report import build_report
from report.benchmark_build import synthetic_runs

REFERENCE = sorted((Path(__file__).resolve().parents[2] / "results" / "reference").glob("*.json"))[-1]
TASKS = ("gan_ntk", "neis")  # tasks whose own hooks draw from the records, fast enough for a whole report


def _second_names(doc: dict, reference: str, versioned: str) -> dict:
    """``doc`` with ``reference``'s cases also as a folder submission of that name, and ``versioned``'s also as
    another version of its code."""
    doc = copy.deepcopy(doc)
    cases = doc["cases"]
    for c in [c for c in cases if c["impl"] == versioned]:
        c["impl_hash"] = "aaaa1111aaaa1111"
        cases.append({**copy.deepcopy(c), "impl_hash": "bbbb2222bbbb2222"})
    cases += [{**copy.deepcopy(c), "submission": "folder"} for c in cases if c["impl"] == reference]
    return doc


def test_every_figure_of_a_built_report_draws_each_implementation_in_one_colour(tmp_path, monkeypatch):
    import report.plots

    runs = tmp_path / "runs"
    first = synthetic_runs(300, runs)[0]
    first.write_text(json.dumps(_second_names(json.loads(first.read_text()), "backprop", "my_adjoint")))
    stored = json.loads(REFERENCE.read_text())
    stored["cases"] = [c for c in stored["cases"] if c["task"] in TASKS]
    stored = _second_names(stored, "ipm", "neis_gradient")
    (runs / REFERENCE.name).write_text(json.dumps(stored))

    drawn: list[tuple[str, dict[str, set[str]], list[str]]] = []
    task_figures = report.plots.task_figures

    def audited(task, spec, cases, records, custom, styles, boards, part=None):
        figures, errors = task_figures(task, spec, cases, records, custom, styles, boards, part)
        for name, figure in figures:
            drawn.append((f"{task}: {name}", audit.drawn_labels(figure), audit.style_mismatches(figure, styles)))
        return figures, errors

    monkeypatch.setattr(report.plots, "task_figures", audited)
    monkeypatch.setattr("report.build.start_drawing", lambda jobs: lambda: [report.plots.save_plots(**j) for j in jobs])
    built = build_report([runs], tmp_path / "site", custom_plots=_custom_plots)
    assert built.index is not None and built.problems == []

    assert {name.split(":")[0] for name, _, _ in drawn} == {"adjoint_resnet", *TASKS}
    assert [(name, problems) for name, _, problems in drawn if problems] == []
    pairs = [
        ("backprop", "backprop [folder]"),
        ("my_adjoint [synthetic-submission] @aaaa1111", "my_adjoint [synthetic-submission] @bbbb2222"),
        ("ipm", "ipm [folder]"),
        ("neis_gradient @aaaa1111", "neis_gradient @bbbb2222"),
    ]
    colours: dict[str, set[str]] = {}
    for name, labels, _ in drawn:
        for label, seen in labels.items():
            colours.setdefault(label, set()).update(seen)
        for a, b in pairs:  # the same cases twice: a figure draws both or neither
            assert (a in labels) == (b in labels), (name, a, b, sorted(labels))
    assert all(len(seen) == 1 for seen in colours.values()), colours
    for a, b in pairs:
        assert a in colours and b in colours and colours[a] != colours[b], (a, b, sorted(colours))
