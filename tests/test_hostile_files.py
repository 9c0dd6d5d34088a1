"""Hostile result files (issue 13): loading never crashes, never hangs, never reads without bound.

Each malformed file is named (with the field at fault) and skipped by ``load_runs``; the report, ``show`` and
``compare`` go on with the good files. A failed report build leaves the previous site; the CSVs carry no formula;
a name with a right-to-left override is isolated on the pages; run files are written 0644 less the umask.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_report import METHODS, case, run_doc

from ctbench import results
from ctbench.results import ResultFileError, load_run, load_runs, validate, write_run
from ctbench.table import cases_frame, leaderboard, task_specs
from report import build_report
from report.fmt import bdi

REPO = Path(__file__).resolve().parent.parent
TASK = "adjoint_resnet"
RLO = "\u202e"


def good_doc(run_id: str = "20250101T000000Z-good", created: str = "2025-01-01T00:00:00+00:00", **over: Any) -> dict:
    cases = [case(impl, 8, accuracy=0.70 + 0.04 * i, **over) for i, impl in enumerate(METHODS)]
    return run_doc(run_id, created, cases)


def write(folder: Path, name: str, doc: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def mutated(mutate) -> dict:
    doc = copy.deepcopy(good_doc("20250102T000000Z-bad", "2025-01-02T00:00:00+00:00"))
    mutate(doc)
    return doc


def _add_check(doc: dict, **check: Any) -> None:
    doc["checks"].append({"task": TASK, "name": "c", "value": 1.0, "threshold": 1.0, "passed": True, **check})


# (file name, its text, the field the skip reason names)
MALFORMED = [
    ("error-123", mutated(lambda d: d["cases"][0].update(error=123)), "cases[0].error"),
    ("manifest-x", mutated(lambda d: d["cases"][0].update(manifest="x")), "cases[0].manifest"),
    ("spread-list", mutated(lambda d: d["cases"][0].update(spread=[1, 2])), "cases[0].spread"),
    ("gpus-text", mutated(lambda d: d["env"].update(gpus="A100")), "env.gpus"),
    ("gpu-memory-text", mutated(lambda d: d["env"].update(gpus=[{"name": "G", "memory_bytes": "32G"}])), "env.gpus"),
    ("scope-list", mutated(lambda d: _add_check(d, scope=[1, 2])), "checks[0].scope"),
    ("check-passed-text", mutated(lambda d: _add_check(d, passed="yes")), "checks[0].passed"),
    ("case-check-value", mutated(lambda d: d["cases"][0]["checks"]["loss_finite"].update(value="1")), "cases[0]"),
    ("series-not-pairs", mutated(lambda d: d["cases"][0].update(series={"loss": [[1, 2, 3]]})), "cases[0].series"),
    ("params-list", mutated(lambda d: d["cases"][0].update(params=[1])), "cases[0].params"),
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


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) if the block takes longer than ``seconds``."""

    def expire(*_):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def no_plots(monkeypatch):
    monkeypatch.setattr("report.build.save_all", lambda jobs: [([], "")] * len(jobs))


def assert_skipped(folder: Path, name: str, field: str) -> None:
    """``folder`` holds a good run and ``name``: the good run loads, ``name`` is skipped with ``field`` named."""
    with deadline(20):
        runs, skipped = load_runs([folder])
    assert [r["run_id"] for r in runs] == ["20250101T000000Z-good"]
    assert [Path(s.path).name for s in skipped] == [name]
    assert skipped[0].reason.startswith(f"{folder / name}: {field}"), skipped[0].reason


@pytest.mark.parametrize(("name", "doc", "field"), MALFORMED + RAW, ids=[m[0] for m in MALFORMED + RAW])
def test_malformed_file_is_named_and_skipped(tmp_path, name, doc, field):
    write(tmp_path, "good.json", good_doc())
    write(tmp_path, f"{name}.json", doc)
    assert_skipped(tmp_path, f"{name}.json", field)


def test_nan_and_infinity_never_pass_validation_nor_rank(tmp_path):
    with pytest.raises(ResultFileError, match="not a number a run file may hold"):
        load_run(write(tmp_path, "inf.json", RAW[4][1]))
    inf = good_doc()
    inf["cases"][0]["metrics"]["variance_reduction"] = float("inf")
    with pytest.raises(ResultFileError) as err:
        validate(inf)
    assert err.value.field == "cases[0].metrics.variance_reduction"
    # written, a non-finite metric becomes null: the case is shown, never ranked on it
    inf["cases"][0]["metrics"]["test_accuracy"] = float("inf")
    path = write_run(inf, tmp_path / "out")
    assert json.loads(path.read_text())["cases"][0]["metrics"]["test_accuracy"] is None
    runs, skipped = load_runs([path])
    board = leaderboard(cases_frame(runs), TASK, task_specs(runs))
    assert skipped == [] and board.loc[board["rank"] == 1, "impl"].tolist() == [METHODS[-1]]
    assert board.set_index("impl")["rank"].isna()[METHODS[0]]


def test_huge_integer_is_refused_in_memory_too():
    doc = good_doc()
    doc["cases"][0]["seed"] = 10**100
    with pytest.raises(ResultFileError) as err:
        validate(doc)
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
    write(tmp_path, "good.json", good_doc())
    write(tmp_path, "big.json", GOOD_TEXT[:-1] + ', "padding": "' + "x" * 5000 + '"}')
    monkeypatch.setattr(results, "MAX_BYTES", len(json.dumps(good_doc())) + 100)
    assert_skipped(tmp_path, "big.json", "<file>")


def test_empty_run_is_valid(tmp_path, no_plots):
    empty = write(tmp_path / "runs", "empty.json", {**good_doc("20250104T000000Z-empty"), "cases": []})
    assert load_run(empty)["cases"] == []
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
    for page in ("task-adjoint_resnet.html", "compare.html", "env.html", "benchmarks.html", "cases.csv"):
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
    write(runs, "scope.json", MALFORMED[5][1])
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
    assert after == before and {"index.html", "cases.csv", "leaderboard.csv", "mine.txt"} <= {str(p) for p in after}
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
    for name in ("cases.csv", "leaderboard.csv", "compare.csv"):
        table = pd.read_csv(tmp_path / "site" / name, keep_default_na=False, dtype=str)
        assert len(table) == {"cases.csv": 12, "leaderboard.csv": 6}.get(name, len(table)), name  # no row split
        cells = [v for column in table.columns for v in table[column]] + list(table.columns)
        assert not [v for v in cells if v.startswith(("=", "+", "@", "\t", "\r"))], name
        assert not [v for v in cells if v.startswith("-") and not re.fullmatch(r"-[0-9.e+-]+", v)], name
    table = pd.read_csv(tmp_path / "site" / "cases.csv", keep_default_na=False, dtype=str)
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
    for page in ("index.html", "task-adjoint_resnet.html", "compare.html"):
        html = (tmp_path / "site" / page).read_text()
        assert f"<bdi>{evil}</bdi>" in html and f"<bdi>team{RLO}x</bdi>" in html, page
        isolated = sum(m.count(RLO) for m in re.findall(r"<bdi>[^<]*</bdi>", html))
        assert isolated == html.count(RLO) > 0, page  # no override outside an isolate
    assert "<bdi>" not in (tmp_path / "site" / "env.html").read_text()  # plain names stay plain


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_run_files_are_0644_less_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = write_run(good_doc(), tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
