"""Hostile result files: loading never crashes, never hangs, never reads without bound.

A file malformed at the run level is named (with the field at fault) and skipped by ``load_runs``; a malformed
case record (a field of the wrong type, an unknown status, a manifest name that is not a string, thousands of
metrics, a negative time) is named and left out, and the file's other cases are read. A huge string is cut, never
the file lost. The report, ``show`` and ``compare`` go on with the rest. A failed report build leaves the previous
site; the CSVs carry no formula; a name with a right-to-left override is isolated on the pages; run files are
written 0644 less the umask.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from runfiles import METHODS, RLO, TASK, case, deadline, good_doc, run_doc, write

from ctbench.boards.table import cases_frame, leaderboard, task_specs
from ctbench.store import files, schema
from ctbench.store.results import ResultFileError, Run, load_runs
from report import build_report
from report.fmt import bdi

REPO = Path(__file__).resolve().parents[3]


def mutated(mutate) -> dict:
    doc = copy.deepcopy(good_doc("20250102T000000Z-bad", "2025-01-02T00:00:00+00:00"))
    mutate(doc)
    return doc


def _add_check(doc: dict, **check: Any) -> None:
    doc["checks"].append({"task": TASK, "name": "c", "value": 1.0, "threshold": 1.0, "passed": True, **check})


def _metric(**values: Any):
    return lambda d: d["cases"][0]["metrics"].update(values)


# (file name, its text, the field the reason names): the file is skipped
RUN_LEVEL = [
    ("gpus-text", mutated(lambda d: d["env"].update(gpus="A100")), "env.gpus"),
    ("gpu-memory-text", mutated(lambda d: d["env"].update(gpus=[{"name": "G", "memory_bytes": "32G"}])), "env.gpus"),
    ("scope-list", mutated(lambda d: _add_check(d, scope=[1, 2])), "checks[0].scope"),
    ("check-passed-text", mutated(lambda d: _add_check(d, passed="yes")), "checks[0].passed"),
    ("tasks-paper-3", mutated(lambda d: d["tasks"][TASK].update(paper=3)), f"tasks.{TASK}.paper"),
    ("tasks-plots-1", mutated(lambda d: d["tasks"][TASK].update(plots=[1])), f"tasks.{TASK}.plots[0]"),
    ("tasks-metric-spec", mutated(lambda d: d["tasks"][TASK]["metrics"].update(x="high")), f"tasks.{TASK}.metrics.x"),
    (
        "tasks-direction",
        mutated(lambda d: d["tasks"][TASK]["metrics"]["test_accuracy"].update(higher_is_better="y")),
        f"tasks.{TASK}.metrics.test_accuracy.higher_is_better",
    ),
    ("tasks-not-object", mutated(lambda d: d["tasks"].update(x=[])), "tasks.x"),
    ("cases-object", mutated(lambda d: d.update(cases={})), "cases"),
    ("settings-list", mutated(lambda d: d.update(settings=[])), "settings"),
]
# (file name, its text, the field the reason names): the first case (backprop's) is left out, the others read
CASE_LEVEL = [
    ("error-123", mutated(lambda d: d["cases"][0].update(error=123)), "cases[0].error"),
    ("manifest-x", mutated(lambda d: d["cases"][0].update(manifest="x")), "cases[0].manifest"),
    ("manifest-name-5", mutated(lambda d: d["cases"][0].update(manifest={"name": 5})), "cases[0].manifest.name"),
    ("status-unknown", mutated(lambda d: d["cases"][0].update(status="exploded")), "cases[0].status"),
    ("spread-list", mutated(lambda d: d["cases"][0].update(spread=[1, 2])), "cases[0].spread"),
    ("case-check-value", mutated(lambda d: d["cases"][0]["checks"]["loss_finite"].update(value="1")), "cases[0]"),
    ("series-not-pairs", mutated(lambda d: d["cases"][0].update(series={"loss": [[1, 2, 3]]})), "cases[0].series"),
    ("params-list", mutated(lambda d: d["cases"][0].update(params=[1])), "cases[0].params"),
    ("metrics-20000", mutated(_metric(**{f"m{i}": 1.0 for i in range(20_000)})), "cases[0].metrics"),
    ("time-negative", mutated(_metric(step_time_s=-0.5)), "cases[0].metrics.step_time_s"),
    ("time-zero", mutated(_metric(step_time_s=0)), "cases[0].metrics.step_time_s"),
    ("rate-zero", mutated(_metric(throughput_samples_s=0.0)), "cases[0].metrics.throughput_samples_s"),
    ("memory-negative", mutated(_metric(step_peak_memory_bytes=-1.0)), "cases[0].metrics.step_peak_memory_bytes"),
    ("spread-negative", mutated(lambda d: d["cases"][0].update(spread={"step_time_s": -1.0})), "cases[0].spread"),
]
MALFORMED = RUN_LEVEL + CASE_LEVEL
GOOD_TEXT = json.dumps(good_doc("20250103T000000Z-text", "2025-01-03T00:00:00+00:00"))
RAW = [  # files a json.dumps of a dict cannot produce
    ("huge-int", GOOD_TEXT.replace('"seed": 0', '"seed": ' + "9" * 5000, 1), "<file>"),
    ("deep", '{"schema": "ctbench.run/2", "x": ' + "[" * 200_000 + "]" * 200_000 + "}", "<file>"),
    ("deep-but-parsed", GOOD_TEXT[:-1] + ', "extra": ' + "[" * 100 + "]" * 100 + "}", "<root>"),
    ("nan", GOOD_TEXT.replace('"test_accuracy": 0.7,', '"test_accuracy": NaN,', 1), "<file>"),
    ("infinity", GOOD_TEXT.replace('"test_accuracy": 0.7,', '"test_accuracy": Infinity,', 1), "<file>"),
    ("minus-infinity", GOOD_TEXT.replace('"test_accuracy": 0.7,', '"test_accuracy": -Infinity,', 1), "<file>"),
    ("overflow", GOOD_TEXT.replace('"test_accuracy": 0.7,', '"test_accuracy": 1e999,', 1), "<file>"),
]


@pytest.fixture
def no_plots(monkeypatch):
    monkeypatch.setattr("report.build.start_drawing", lambda jobs: lambda: [([], "")] * len(jobs))


def assert_skipped(folder: Path, name: str, field: str) -> None:
    """``folder`` holds a good run and ``name``: the good run loads, ``name`` is skipped with ``field`` named."""
    with deadline(20):
        runs, skipped = load_runs([folder])
    assert [r["run_id"] for r in runs] == ["20250101T000000Z-good"]
    assert [Path(s.path).name for s in skipped] == [name]
    assert skipped[0].reason.startswith(f"{folder / name}: {field}"), skipped[0].reason


@pytest.mark.parametrize(("name", "doc", "field"), RUN_LEVEL + RAW, ids=[m[0] for m in RUN_LEVEL + RAW])
def test_malformed_file_is_named_and_skipped(tmp_path, name, doc, field):
    write(tmp_path, "good.json", good_doc())
    write(tmp_path, f"{name}.json", doc)
    assert_skipped(tmp_path, f"{name}.json", field)


@pytest.mark.parametrize(("name", "doc", "field"), CASE_LEVEL, ids=[m[0] for m in CASE_LEVEL])
def test_malformed_case_is_named_and_left_out(tmp_path, name, doc, field):
    """A bad record costs its own case only: the file's other cases are read, the case is named with the field."""
    write(tmp_path, "good.json", good_doc())
    write(tmp_path, f"{name}.json", doc)
    with deadline(60):
        runs, skipped = load_runs([tmp_path])
    cases = {r["run_id"]: [c["impl"] for c in r["cases"]] for r in runs}
    assert cases == {"20250101T000000Z-good": list(METHODS), "20250102T000000Z-bad": list(METHODS[1:])}
    assert [(Path(s.path).name, s.case) for s in skipped] == [(f"{name}.json", "cases[0] adjoint_resnet/backprop "
                                                               "smoke seed 0")]  # fmt: skip
    assert skipped[0].reason.startswith(f"{tmp_path / name}.json: {field}"), skipped[0].reason
    assert "this case is left out, the file's other cases are read" in skipped[0].reason


@pytest.mark.parametrize(
    ("metric", "rule"),
    [("step_time_s", "> 0"), ("backward_time_s", "> 0"), ("throughput_samples_s", "> 0"),
     ("eval_throughput_samples_s", "> 0"), ("time_to_target_s", ">= 0"), ("step_peak_memory_bytes", ">= 0"),
     ("state_bytes", ">= 0"), ("test_accuracy", None), ("grad_rel_error", None), ("step_energy_j", None)],
)  # fmt: skip
def test_times_and_memory_by_name(metric, rule):
    """Durations and rates are > 0, other times and byte counts >= 0 (a step that allocated nothing beyond its
    baseline records 0 bytes), anything else any finite number."""
    bound = schema.lowest(metric)
    assert (None if bound is None else ">= 0" if bound[1] else "> 0") == rule
    record = good_doc()["cases"][0]
    record["metrics"][metric] = 0.0
    problems = []
    for value in (-1e-9, 0.0, 1e-9):
        record["metrics"][metric] = value
        try:
            schema.CASE(record, "case")
        except schema.Problem as exc:
            problems.append((value, exc.field))
    expected = {None: [], ">= 0": [-1e-9], "> 0": [-1e-9, 0.0]}[rule]
    assert problems == [(v, f"case.metrics.{metric}") for v in expected]


def test_impossible_times_and_memory_never_reach_the_pareto_front(tmp_path):
    """A row claiming a negative time and memory would dominate every other row: it is left out, never layer 1."""
    doc = good_doc()
    doc["cases"][0]["metrics"].update(step_time_s=-1.0, step_peak_memory_bytes=-1e9, grad_rel_error=0.0)
    write(tmp_path, "cheat.json", doc)
    runs, skipped = load_runs([tmp_path])
    board = leaderboard(cases_frame(runs), TASK, task_specs(runs))
    assert METHODS[0] not in set(board["impl"]) and len(skipped) == 1
    front = board[board["pareto"] == 1]
    assert (
        len(front) and (front["metric.step_time_s"] > 0).all() and (front["metric.step_peak_memory_bytes"] >= 0).all()
    )


def test_nan_and_infinity_never_pass_validation_nor_rank(tmp_path):
    with pytest.raises(ResultFileError, match="not a number a run file may hold"):
        Run.load(write(tmp_path, "inf.json", RAW[4][1]))
    inf = good_doc()
    inf["cases"][0]["metrics"]["variance_reduction"] = float("inf")
    with pytest.raises(ResultFileError) as err:
        Run.validated(inf)
    assert err.value.field == "cases[0].metrics.variance_reduction"
    # written, a non-finite metric becomes null: the case is shown, never ranked on it
    inf["cases"][0]["metrics"]["test_accuracy"] = float("inf")
    path = Run(inf).write(tmp_path / "out")
    assert json.loads(path.read_text())["cases"][0]["metrics"]["test_accuracy"] is None
    runs, skipped = load_runs([path])
    board = leaderboard(cases_frame(runs), TASK, task_specs(runs))
    assert skipped == [] and board.loc[board["rank"] == 1, "impl"].tolist() == [METHODS[-1]]
    assert board.set_index("impl")["rank"].isna()[METHODS[0]]


def test_huge_integer_is_refused_in_memory_too():
    doc = good_doc()
    doc["cases"][0]["seed"] = 10**100
    with pytest.raises(ResultFileError) as err:
        Run.validated(doc)
    assert err.value.field == "cases[0].seed"


def test_symlink_to_dev_zero_is_not_read(tmp_path):
    write(tmp_path, "good.json", good_doc())
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    assert_skipped(tmp_path, "zero.json", "<file>")


def test_fifo_does_not_hang(tmp_path):
    write(tmp_path, "good.json", good_doc())
    os.mkfifo(tmp_path / "x.json")
    assert_skipped(tmp_path, "x.json", "<file>")
    with deadline(60):
        built = build_report([tmp_path], tmp_path / "site")
    assert built.index is not None and [Path(s.path).name for s in built.skipped] == ["x.json"]


def test_file_over_the_size_limit_is_not_read(tmp_path, monkeypatch):
    """Over ``MAX_BYTES`` even with its long strings cut (its bulk is short strings): named and skipped."""
    write(tmp_path, "good.json", good_doc())
    write(tmp_path, "big.json", GOOD_TEXT[:-1] + ', "padding": ' + json.dumps(["x" * 50] * 100) + "}")
    monkeypatch.setattr(files, "MAX_BYTES", len(json.dumps(good_doc())) + 100)
    assert_skipped(tmp_path, "big.json", "<file>")
    assert "even with its long strings cut" in load_runs([tmp_path])[1][0].reason
    monkeypatch.setattr(files, "MAX_FILE_BYTES", len(json.dumps(good_doc())) + 100)  # never even opened
    assert_skipped(tmp_path, "big.json", "<file>")


# the JSON text of a huge note, repeated: plain, multi-byte characters, escapes (a cut never splits one), surrogates
NOTES = {
    "ascii": "x",
    "2-byte": "\u00e9",
    "3-byte": "\u20ac",
    "4-byte": "\U0001f600",
    "escaped-quote": r"\"",
    "escaped-backslash": r"\\",
    "unicode-escape": r"\u00e9",
    "surrogate-pair": r"\ud83d\ude00",
    "mixed": r"a\u00e9\\\"\ud800\u00e9",
}


@pytest.mark.parametrize("unit", NOTES.values(), ids=NOTES.keys())
def test_a_huge_string_never_costs_the_file(tmp_path, monkeypatch, unit):
    """A file over the size limit because of huge strings: every case is read, each huge string cut to
    ``MAX_TEXT`` with a warning naming the file and the case (the loader bounds records, not the file)."""
    monkeypatch.setattr(files, "MAX_TEXT", 2000)
    monkeypatch.setattr(files, "MAX_BYTES", 60_000)
    body = unit * (300_000 // len(unit))
    text = json.dumps(good_doc()).replace('"error": null', '"error": null, "note": "' + body + '"', 2)  # cases 0, 1
    assert len(text) > 2 * files.MAX_BYTES
    path = tmp_path / "big.json"
    path.write_bytes(text.encode("utf-8"))
    with deadline(60):
        runs, skipped = load_runs([tmp_path])
    assert [len(r["cases"]) for r in runs] == [len(METHODS)]
    assert [s.case for s in skipped] == ["cases[0]", "cases[1]"]
    assert all(s.reason.startswith(f"{path}: cases[") and "the case is kept" in s.reason for s in skipped)
    assert "adjoint_resnet/backprop smoke seed 0" in skipped[0].reason
    start = json.loads('"' + unit * 4 + '"').encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    for record in runs[0]["cases"][:2]:
        note = record["note"]
        assert len(note) <= files.MAX_TEXT and note.endswith(" bytes in all]") and note.startswith(start[:4])


def test_a_huge_string_is_cut_when_written(tmp_path, monkeypatch):
    """The writer never stores a string over ``MAX_TEXT`` characters; what it stores reads back with the cut."""
    monkeypatch.setattr(files, "MAX_TEXT", 2000)
    doc = good_doc()
    doc["cases"][0]["note"] = "n" * 50_000
    path = Run(doc).write(tmp_path)
    assert len(doc["cases"][0]["note"]) == 50_000  # the caller's document is not changed
    assert path.stat().st_size < 20_000
    loaded, skipped = load_runs([path])
    assert loaded[0]["cases"][0]["note"].endswith("[cut by ctbench: 50000 characters in all]")
    assert [s.case for s in skipped] == ["cases[0]"]


def test_thousands_of_metrics_cost_seconds_not_minutes(tmp_path, no_plots):
    """A case of 20,000 metrics is left out by name; cases of 1,000 metrics each, under other names, still show."""
    doc = good_doc()
    doc["cases"][0]["metrics"].update({f"m{i}": float(i) for i in range(20_000)})
    for k, c in enumerate(doc["cases"][1:]):
        c["metrics"].update({f"k{k}_{i}": float(i) for i in range(schema.MAX_METRICS - len(c["metrics"]))})
    write(tmp_path / "runs", "many.json", doc)
    with deadline(120):  # 408 s before metrics were capped and the frames built column-wise
        runs, skipped = load_runs([tmp_path / "runs"])
        frame = cases_frame(runs)
        board = leaderboard(frame, TASK, task_specs(runs))
        built = build_report([tmp_path / "runs"], tmp_path / "site")
    assert [s.case for s in skipped] == ["cases[0] adjoint_resnet/backprop smoke seed 0"]
    assert "20005 entries (at most 1000)" in skipped[0].reason
    assert set(board["impl"]) == set(METHODS[1:]) and built.index is not None
    assert len([c for c in board.columns if c.startswith("metric.")]) > 3 * schema.MAX_METRICS


def test_empty_run_is_valid(tmp_path, no_plots):
    empty = write(tmp_path / "runs", "empty.json", {**good_doc("20250104T000000Z-empty"), "cases": []})
    assert Run.load(empty)["cases"] == []
    built = build_report([empty], tmp_path / "only-empty")
    assert built.index is not None and built.skipped == []
    assert "0 cases from 1 run" in built.index.read_text()
    write(tmp_path / "runs", "good.json", good_doc())
    built = build_report([tmp_path / "runs"], tmp_path / "site")
    assert built.skipped == [] and "20250104T000000Z-empty" in (tmp_path / "site" / "env.html").read_text()


def hostile_folder(folder: Path) -> list[str]:
    """A good run, an empty run and every hostile file; the names of the files that must be skipped."""
    write(folder, "good.json", good_doc())
    write(folder, "empty.json", {**good_doc("20250104T000000Z-empty", "2025-01-04T00:00:00+00:00"), "cases": []})
    for name, doc, _ in MALFORMED + RAW:
        write(folder, f"{name}.json", doc)
    (folder / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.json")
    return sorted([f"{name}.json" for name, _, _ in MALFORMED + RAW] + ["zero.json", "fifo.json"])


def test_report_builds_from_the_good_files(tmp_path, no_plots):
    bad = hostile_folder(tmp_path / "runs")
    with deadline(120):
        built = build_report([tmp_path / "runs"], tmp_path / "site")
    assert built.index == tmp_path / "site" / "index.html"
    assert sorted(Path(s.path).name for s in built.skipped) == bad
    index = built.index.read_text()
    assert "20250101T000000Z-good" in index and "20250104T000000Z-empty" in index
    for page in ("task-adjoint_resnet.html", "compare.html", "env.html", "benchmarks.html", "cases.csv.gz"):
        assert (tmp_path / "site" / page).is_file()
    assert not list(tmp_path.glob(".site.building-*"))


def test_show_and_compare_skip_bad_files_without_a_traceback(tmp_path, cli_env):
    bad = hostile_folder(tmp_path / "runs")

    def cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "ctbench_cli", *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=cli_env, timeout=300)

    shown = cli("show", tmp_path / "runs")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr and "adjoint_resnet" in shown.stdout
    assert all(f"skipped {tmp_path / 'runs' / name}: " in shown.stderr for name in bad), shown.stderr
    compared = cli("compare", tmp_path / "runs" / "empty.json", tmp_path / "runs" / "good.json")
    assert compared.returncode == 0 and "Traceback" not in compared.stderr
    compared = cli("compare", tmp_path / "runs" / "scope-list.json", tmp_path / "runs" / "good.json")
    assert compared.returncode == 1 and "Traceback" not in compared.stderr
    assert "scope-list.json: checks[0].scope" in compared.stderr
    shown = cli("show", tmp_path / "runs" / "zero.json", tmp_path / "runs" / "deep.json")
    assert shown.returncode == 1 and "Traceback" not in shown.stderr and "no readable run file" in shown.stderr


def test_failed_build_keeps_the_previous_site(tmp_path, no_plots, monkeypatch):
    runs, out = tmp_path / "runs", tmp_path / "site"
    write(runs, "good.json", good_doc())
    build_report([runs], out)
    (out / "mine.txt").write_text("not the report's")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # a file whose scope crashed the old build after it had emptied the output folder
    write(runs, "scope.json", dict((m[0], m[1]) for m in RUN_LEVEL)["scope-list"])
    built = build_report([runs], out)
    assert [Path(s.path).name for s in built.skipped] == ["scope.json"]
    assert (out / "index.html").is_file() and (out / "mine.txt").is_file()

    def broken(*args, **kwargs):
        raise RuntimeError("render failed midway")

    monkeypatch.setattr("report.build.environments", broken)  # after the task pages and CSVs are written
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError, match="midway"):
        build_report([runs], out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and {"index.html", "cases.csv.gz", "leaderboard.csv", "mine.txt"} <= {str(p) for p in after}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


def test_csv_cells_are_never_formulas(tmp_path, no_plots):
    cases = [
        case(impl, 8, submission=sub, dataset=f"=d{i}", accuracy=0.5 + 0.01 * i, grad_rel_error=-0.5)
        for i, (impl, sub) in enumerate(zip(FORMULAS, reversed(FORMULAS), strict=True))
    ]
    for c in cases:
        c["params"] = {"depth": 8, "mode": "@x"}
    write(tmp_path / "runs", "a.json", run_doc("a", "2025-01-01T00:00:00+00:00", cases))
    write(tmp_path / "runs", "b.json", run_doc("b", "2025-01-02T00:00:00+00:00", copy.deepcopy(cases)))
    build_report([tmp_path / "runs"], tmp_path / "site")
    for name in ("cases.csv.gz", "leaderboard.csv", "compare.csv"):
        table = pd.read_csv(tmp_path / "site" / name, keep_default_na=False, dtype=str)
        assert len(table) == {"cases.csv.gz": 12, "leaderboard.csv": 6}.get(name, len(table)), name  # no row split
        cells = [v for column in table.columns for v in table[column]] + list(table.columns)
        assert not [v for v in cells if v.startswith(("=", "+", "@", "\t", "\r"))], name
        assert not [v for v in cells if v.startswith("-") and not re.fullmatch(r"-[0-9.e+-]+", v)], name
    table = pd.read_csv(tmp_path / "site" / "cases.csv.gz", keep_default_na=False, dtype=str)
    assert set(table["impl"]) == {"'" + f for f in FORMULAS}
    assert set(table["param.mode"]) == {"'@x"}
    assert set(table["metric.grad_rel_error"]) == {"-0.5"}  # a negative number stays a number


def test_bdi_isolates_what_can_reorder_text():
    assert bdi(f"a{RLO}b<") == f"<bdi>a{RLO}b&lt;</bdi>"
    assert bdi("\u05e9\u05dc\u05d5\u05dd") == "<bdi>\u05e9\u05dc\u05d5\u05dd</bdi>"  # right-to-left letters
    assert bdi("adjoint_heun <x>") == "adjoint_heun &lt;x&gt;" and bdi("d\u00e9j\u00e0") == "d\u00e9j\u00e0"


def test_names_with_a_right_to_left_override_are_isolated(tmp_path, no_plots):
    evil = f"evil{RLO}gnp.exe"
    cases = [case(m, 8) for m in METHODS] + [case(evil, 8, submission=f"team{RLO}x", dataset=f"d{RLO}")]
    for c in cases:
        c["params"] = {"depth": 8, f"k{RLO}": f"v{RLO}"}
    write(tmp_path / "runs", "a.json", run_doc("a", "2025-01-01T00:00:00+00:00", cases))
    write(tmp_path / "runs", "b.json", run_doc("b", "2025-01-02T00:00:00+00:00", copy.deepcopy(cases)))
    build_report([tmp_path / "runs"], tmp_path / "site")
    for page in ("index.html", "task-adjoint_resnet.html", "task-adjoint_resnet-cases-1.html", "compare.html"):
        html = (tmp_path / "site" / page).read_text()
        assert f"<bdi>{evil}</bdi>" in html and f"<bdi>team{RLO}x</bdi>" in html, page
        isolated = sum(m.count(RLO) for m in re.findall(r"<bdi>[^<]*</bdi>", html))
        assert isolated == html.count(RLO) > 0, page  # no override outside an isolate
    assert "<bdi>" not in (tmp_path / "site" / "env.html").read_text()  # plain names stay plain


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_run_files_are_0644_less_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = Run(good_doc()).write(tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
