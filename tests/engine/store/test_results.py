"""The results store: atomic, never overwritten, validated on read, a bad file skipped and named."""

from __future__ import annotations

import json

import pytest

from ctbench.store.results import SCHEMA, ResultFileError, Run, load_runs


def _case(**over):
    case = {
        "task": "adjoint_resnet",
        "impl": "backprop",
        "submission": "reference",
        "scale": "smoke",
        "params": {"depth": 8},
        "seed": 0,
        "dataset": "synthetic",
        "status": "ok",
        "metrics": {"test_accuracy": 0.5},
        "checks": {},
        "series": {},
        "error": None,
    }
    return {**case, **over}


def _run(run_id="r1", cases=None):
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "created": "2026-11-21T00:00:00+00:00",
        "env": {},
        "cases": cases if cases is not None else [_case()],
    }


def test_write_then_load_round_trips(tmp_path):
    path = Run(_run()).write(tmp_path)
    assert path.name == "r1.json"
    assert Run.load(path)["cases"][0]["metrics"] == {"test_accuracy": 0.5}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_never_overwrites(tmp_path):
    Run(_run()).write(tmp_path)
    with pytest.raises(FileExistsError):
        Run(_run()).write(tmp_path)
    assert Run.load(tmp_path / "r1.json")["run_id"] == "r1"


def test_nan_metric_is_stored_as_null(tmp_path):
    path = Run(_run(cases=[_case(status="failed", metrics={"test_accuracy": float("nan")})])).write(tmp_path)
    assert json.loads(path.read_text())["cases"][0]["metrics"]["test_accuracy"] is None


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("run_id"), "run_id"),
        (lambda d: d["cases"][0].pop("dataset"), "cases[0].dataset"),
        (lambda d: d["cases"][0].update(status="great"), "cases[0].status"),
        (lambda d: d["cases"][0].update(metrics={"acc": "high"}), "cases[0].metrics.acc"),
        (lambda d: d["cases"][0].update(seed=True), "cases[0].seed"),
        (lambda d: d.update(schema="ctbench.run/99"), "schema"),
        (lambda d: d.update(schema="something/else"), "schema"),
        (lambda d: d["cases"][0].update(error=123), "cases[0].error"),
        (lambda d: d["cases"][0].update(series={"loss": [[0, "x"]]}), "cases[0].series.loss[0]"),
        (
            lambda d: d["cases"][0].update(checks={"c": {"value": 1, "threshold": 1, "passed": 1}}),
            "cases[0].checks.c.passed",
        ),
        (lambda d: d["cases"][0].update(metrics={"acc": float("inf")}), "cases[0].metrics.acc"),
        (lambda d: d["env"].update(gpus="A100"), "env.gpus"),
        (lambda d: d.update(tasks={"t": {"summary": "s", "paper": 3, "metrics": {}}}), "tasks.t.paper"),
    ],
)
def test_validation_names_the_field(mutate, field):
    doc = _run()
    mutate(doc)
    with pytest.raises(ResultFileError) as err:
        Run.validated(doc, "x.json")
    assert err.value.field == field and "x.json" in str(err.value)


def test_corrupt_and_foreign_files_are_skipped_and_named(tmp_path):
    Run(_run("good")).write(tmp_path)
    (tmp_path / "corrupt.json").write_text('{"schema": "ctbench.run/1", "cases": [')
    (tmp_path / "foreign.json").write_text(json.dumps({"benchmarks": []}))
    (tmp_path / "newer.json").write_text(json.dumps({**_run("newer"), "schema": "ctbench.run/3"}))
    runs, skipped = load_runs([tmp_path])
    assert [r["run_id"] for r in runs] == ["good"]
    reasons = {s.path.rsplit("/", 1)[1]: s.reason for s in skipped}
    assert "not valid JSON" in reasons["corrupt.json"]
    assert "not a ctbench run file" in reasons["foreign.json"]
    assert "newer" in reasons["newer.json"]
