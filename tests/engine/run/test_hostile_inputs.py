"""Hostile text and flags, as a new user meets them: ``show``, ``compare``, ``report`` and ``run``'s summary never
crash on text UTF-8 cannot encode, never print an escape sequence or a line break from a run file, never let a CSV
cell start a formula row; names that are invalid mathtext keep their plots; a flag a run file could not hold is a
usage error (exit 2) before anything runs; a journal line that is not a valid case record is skipped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from runfiles import METHODS, REPO, TASK, case, deadline, good_doc, run_doc, write

from ctbench.catalog.registry import UsageError
from ctbench.run.cases import parse_param
from ctbench.run.journal import Journal
from ctbench.store.results import Run
from ctbench.store.text import printable
from ctbench_cli.summary import summarise
from report import build_report

SURROGATE = "x\ud800y"
ESCAPES = "evil\x1b[31mRED\x1b]0;title\x07\n[9/9] fake/progress: ok\rX"


def cli(*args: Any, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    """``ctbench ARGS`` in a subprocess; stdout and stderr as bytes (a bare CR stays a CR)."""
    command = [sys.executable, "-m", "ctbench_cli", *(os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in args)]
    return subprocess.run(command, capture_output=True, cwd=REPO, env=env, timeout=timeout)


def clean(done: subprocess.CompletedProcess, code: int = 0) -> str:
    """The command exited with ``code``, wrote valid UTF-8 with no traceback and no raw escape; its stdout."""
    out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    assert done.returncode == code, err[-3000:]
    assert "Traceback" not in err and "\x1b" not in out + err, err[-3000:]
    return out


def hostile_doc(name: str, error: str) -> dict[str, Any]:
    """A good run whose first case carries ``name`` everywhere a name goes and whose second failed with ``error``."""
    doc = good_doc()
    first = doc["cases"][0]
    first.update(impl=name, submission=name, dataset=f"d-{name}", manifest={"name": name, "url": None})
    first["params"] = {"depth": 8, f"k{name}": name}
    first["metrics"][f"m{name}"] = 1.0
    doc["cases"][1].update(status="failed", error=f"RuntimeError: {error}\nsecond line")
    doc["checks"] = [{"task": TASK, "name": name, "scope": {"impl": name}, "value": 1.0, "threshold": 2.0,
                      "passed": False, "description": error}]  # fmt: skip
    return doc


def test_printable_escapes_what_moves_the_cursor():
    assert printable(ESCAPES) == "evil\\x1b[31mRED\\x1b]0;title\\x07\\n[9/9] fake/progress: ok\\rX"
    assert printable("a\u202eb\u2028c\x9bd\udcffe\ud800") == "a\\u202eb\\u2028c\\x9bd\\xffe\\ud800"
    assert printable("déjà vu 😀 \t") == "déjà vu 😀 \\t"
    for text in (ESCAPES, SURROGATE, "plain"):
        assert printable(printable(text)) == printable(text)  # idempotent
        printable(text).encode("utf-8")


@pytest.fixture
def surrogate_folder(tmp_path) -> Path:
    """A run file named with a byte that is not UTF-8, whose strings hold lone surrogates (``\\ud800`` escapes)."""
    folder = tmp_path / "runs"
    folder.mkdir()
    text = json.dumps(hostile_doc(SURROGATE, "bad \ud800 message"))  # ensure_ascii: written as \ud800 escapes
    (Path(os.fsdecode(bytes(folder) + b"/run-\xff.json"))).write_text(text)
    (Path(os.fsdecode(bytes(folder) + b"/bad-\xfe.json"))).write_text("{")
    return folder


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_show_never_crashes_on_surrogates(surrogate_folder, cli_env, fmt):
    done = cli("show", surrogate_folder, "--format", fmt, env=cli_env)
    out = clean(done)
    assert "x\ufffdy" in out and "skipped " + str(surrogate_folder / "bad-\\xfe.json") in done.stderr.decode()
    if fmt == "json":
        assert {r["impl"] for r in json.loads(out)} >= {"x\ufffdy", *METHODS[2:]}


def test_compare_and_report_never_crash_on_surrogates(surrogate_folder, cli_env, tmp_path):
    run = next(p for p in surrogate_folder.iterdir() if p.name.startswith("run-"))
    out = clean(cli("compare", run, run, env={**cli_env, "COLUMNS": "1000"}))
    assert "run-\\xff.json" in out and "x\ufffdy" in out
    out = clean(cli("report", surrogate_folder, "-o", tmp_path / "site", env=cli_env))
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "run-\\xff.json" in index and "bad-\\xfe.json" in index
    assert "x\ufffdy" in (tmp_path / "site" / f"task-{TASK}.html").read_text(encoding="utf-8")


def test_a_run_file_with_surrogates_is_written_and_read(tmp_path):
    doc = hostile_doc(SURROGATE, "bad \ud800 message")
    path = Run(doc).write(tmp_path)
    assert "\\ud800" in path.read_text(encoding="ascii")  # escaped: the file is exact and ASCII
    loaded = Run.load(path)
    assert loaded["cases"][0]["impl"] == "x\ufffdy" and "\ufffd" in loaded["cases"][1]["error"]


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """What ``summarise`` prints for ``doc``, through a strict UTF-8 stream (a surrogate would raise)."""
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", newline="")
    lines: list[str] = []

    def say(line: str) -> None:
        stream.write(line + "\n")
        lines.append(line)

    summarise(doc, say=say)
    stream.flush()
    return lines


def test_run_summary_never_crashes_and_never_prints_an_escape():
    lines = summary_lines(hostile_doc(SURROGATE, "bad \ud800 message"))
    assert any("x\\ud800y" in line for line in lines)
    lines = summary_lines(hostile_doc(ESCAPES, ESCAPES))
    assert lines and not [line for line in lines if set(line) & {"\x1b", "\n", "\r", "\x07"}]
    assert any("evil\\x1b[31mRED" in line for line in lines)


def test_show_and_compare_print_names_escaped(tmp_path, cli_env):
    folder = tmp_path / "runs"
    run = write(folder, "run.json", hostile_doc(ESCAPES, ESCAPES))
    write(folder, "skip\x1b[2J.json", "{")
    for args in (("show", folder), ("compare", run, run)):
        done = cli(*args, env=cli_env)
        out = clean(done)
        assert "evil\\x1b[31mRED" in out and "\r" not in out
        assert not [line for line in out.splitlines() if line.startswith("[9/9]")]  # no fake progress line
    assert "skip\\x1b[2J.json" in cli("show", folder, env=cli_env).stderr.decode()


def test_csv_cell_with_a_bare_cr_never_starts_a_formula_row(tmp_path, cli_env):
    cases = [case(m, 8, accuracy=0.7 + 0.01 * i) for i, m in enumerate(METHODS)]
    cases[0]["impl"] = "honest\r=2+5*cos(0)"
    cases[1]["impl"] = "honest\n@SUM(A1)"
    write(tmp_path, "run.json", run_doc("a", "2025-01-01T00:00:00+00:00", cases))
    out = clean(cli("show", tmp_path, "--format", "csv", env=cli_env))
    rows = list(csv.reader(io.StringIO(out, newline="")))  # a bare CR ends a row where it is not quoted
    assert len(rows) == 1 + len(METHODS)
    cells = [cell for row in rows for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r"))]
    assert {"honest\r=2+5*cos(0)", "honest\n@SUM(A1)"} <= set(cells)


MATHTEXT = r"$\undefinedcommand{x}$"


def test_names_that_are_invalid_mathtext_keep_their_plots(tmp_path):
    cases = [case(m, d, accuracy=0.7 + 0.01 * i) for i, m in enumerate(METHODS) for d in (8, 64)]
    cases += [case(MATHTEXT, d, submission=MATHTEXT, dataset="synthetic-cifar10-shape") for d in (8, 64)]
    cases += [case(m, 8, dataset=MATHTEXT) for m in METHODS[:2]]
    write(tmp_path / "runs", "a.json", run_doc("a", "2025-01-01T00:00:00+00:00", cases))
    with deadline(300):
        built = build_report([tmp_path / "runs"], tmp_path / "site")
    assert built.problems == []
    page = (tmp_path / "site" / f"task-{TASK}.html").read_text()
    plots = sorted(p.name for p in (tmp_path / "site" / "plots").iterdir())
    assert any(p.startswith(f"{TASK}-Pareto") for p in plots) and len(plots) >= 4
    assert all(f"plots/{p}" in page for p in plots)


@pytest.mark.parametrize(
    "value",
    ["9" * 43, "-" + "9" * 41, "9" * 5000, "NaN", "Infinity", "-Infinity", "1e999", "[" * 70 + "]" * 70],
    ids=["43-digits", "negative-41-digits", "5000-digits", "nan", "inf", "-inf", "overflow", "deep"],
)
def test_param_values_a_run_file_cannot_hold_are_usage_errors(value):
    with pytest.raises(UsageError, match="--param"):
        parse_param(f"depth=8,{value}")
    assert parse_param("depth=8,64,x") == ("depth", [8, 64, "x"])
    assert parse_param("n=" + "9" * 40) == ("n", [10**40 - 1])


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--device", "tpu"], "expected cpu, cuda or cuda:N"), (["--param", "depth=" + "9" * 43], "43 digits")],
    ids=["device-tpu", "param-43-digits"],
)
def test_run_refuses_bad_flags_before_anything_runs(tmp_path, cli_env, args, message):
    done = cli("run", "--task", TASK, "--out", tmp_path / "out", "--no-report", *args, env=cli_env)
    assert done.returncode == 2 and message in done.stderr.decode(), done.stderr.decode()[-2000:]
    assert b"Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_journal_lines_that_are_not_case_records_are_skipped(tmp_path):
    """Each line below would make the run file unwritable (a traceback after the cases ran): skipped, named."""
    journal = Journal(tmp_path, "k")
    journal.path.parent.mkdir(parents=True)
    good = good_doc()["cases"]
    bad = {
        "status": {**good[0], "status": "exploded"},
        "manifest": {**good[1], "manifest": {"name": 5}},
        "time": {**good[2], "metrics": {"step_time_s": -1.0}},
        "metrics": {**good[3], "metrics": {f"m{i}": 1.0 for i in range(20_000)}},
    }
    lines = [{"run_id": "../../escape", "created": "2025-01-01"}]
    lines += [{"key": k, "record": r} for k, r in bad.items()] + [{"key": "ok", "record": good[4]}]
    journal.path.write_text("\n".join(map(json.dumps, lines)) + "\n")
    journal.load({*bad, "ok"})
    assert list(journal.records) == ["ok"] and journal.header == {}
    assert [w.split(": ", 1)[0].rsplit(":", 1)[1] for w in journal.warnings[:-1]] == ["1", "2", "3", "4", "5"]
    assert "not a case of this run" in journal.warnings[0]  # the header's run id is not a plain file name
    assert "record.status" in journal.warnings[1] and "record.manifest.name" in journal.warnings[2]
    assert "no readable header" in journal.warnings[-1]
