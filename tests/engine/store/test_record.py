"""The store's two types: a case ``Record`` built, filled and checked in one place, and a ``Run`` that builds,
validates, writes and reads its file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from ctbench.store import schema
from ctbench.store.files import ResultFileError
from ctbench.store.record import ERROR_TAIL, IDENTITY, Record
from ctbench.store.results import SCHEMA, Run, load_runs

CASE = {
    "task": "tiny",
    "impl": {
        "manifest": {"name": "mine", "authors": ["a"], "url": None},
        "spec": "subs.py:Mine",
        "submission": "mine",
        "content_hash": "abc",
    },
    "scale": "smoke",
    "params": {"n": 8},
    "seed": 1,
}


@dataclass
class Check:
    value: float
    threshold: float
    passed: bool | None
    description: str = ""
    interval: tuple[float, float] | None = None


@dataclass
class Result:
    metrics: dict[str, float]
    dataset: str = "synthetic"
    checks: dict[str, Check] = field(default_factory=dict)
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    invalid_reason: str | None = None
    note: str | None = None


def filled(result: Result) -> Record:
    record = Record.blank(CASE).fill(result)
    record.update(duration_s=1.0, device="cpu", threads=1)
    return record


def test_a_blank_record_holds_the_launched_identity_and_passes_the_schema():
    record = Record.blank(CASE)
    assert {k: record[k] for k in ("task", "impl", "submission", "impl_hash")} == {
        "task": "tiny",
        "impl": "mine",
        "submission": "mine",
        "impl_hash": "abc",
    }
    assert set(IDENTITY) <= set(record) and record["status"] == "failed"
    assert Record.validated(record) == record


def test_fill_sets_the_status_from_what_the_protocol_returned():
    ok = filled(Result({"acc": 0.9}, checks={"c": Check(1.0, 2.0, True, "x", (0.5, float("inf")))}))
    assert ok["status"] == "ok" and ok["checks"]["c"]["interval"] is None  # a non-finite interval is not kept
    assert filled(Result({"acc": float("nan")}))["status"] == "failed"
    assert "acc" in filled(Result({"acc": float("inf")}))["error"]
    invalid = filled(Result({"acc": 0.1}, invalid_reason="diverged"))
    assert (invalid["status"], invalid["error"]) == ("invalid", "diverged")
    assert json.loads(filled(Result({"acc": float("nan")})).to_json())["metrics"]["acc"] is None


def test_a_stopped_record_keeps_the_tail_of_its_reason():
    record = Record.stopped(CASE, "timeout", "x" * (ERROR_TAIL + 10) + "end", duration_s=3.0, device="cpu")
    assert record["status"] == "timeout" and len(record["error"]) == ERROR_TAIL and record["error"].endswith("end")
    Record.validated(record)


def test_a_record_with_an_unknown_status_or_a_negative_time_is_refused_by_name():
    with pytest.raises(schema.Problem, match="status"):
        Record.validated({**filled(Result({"acc": 1.0})), "status": "great"})
    with pytest.raises(schema.Problem, match="step_time_s"):
        Record.validated(filled(Result({"step_time_s": -1.0})))


def _run(**changes) -> Run:
    fields = dict(run_id="20260101T000000Z-abcdef012345", created="2026-01-01T00:00:00+00:00",
                  env={"python": "3", "torch": "2", "platform": "linux", "cpu": "x", "gpus": [], "commit": None},
                  nodes={}, settings={}, tasks={}, cases=[filled(Result({"acc": 0.5}))], checks=[])  # fmt: skip
    return Run.new(**{**fields, **changes})


def test_a_run_is_written_once_and_read_back_as_it_was(tmp_path):
    run = _run()
    path = run.write(tmp_path)
    loaded = Run.load(path)
    assert loaded["schema"] == SCHEMA and loaded.version == int(SCHEMA.rsplit("/", 1)[1])
    assert loaded == run and all(isinstance(c, Record) for c in loaded.cases)
    with pytest.raises(FileExistsError):
        run.write(tmp_path)  # results are never overwritten
    runs, skipped = load_runs([tmp_path])
    assert not skipped and runs[0]["_path"] == str(path) and isinstance(runs[0], Run)


def test_a_run_that_fails_the_schema_is_not_written(tmp_path):
    with pytest.raises(ResultFileError, match="created"):
        _run(created=3).write(tmp_path)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ResultFileError, match="newer than this ctbench reads"):
        Run.validated({**_run(), "schema": "ctbench.run/99"})
