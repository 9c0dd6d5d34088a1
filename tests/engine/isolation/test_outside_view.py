"""The runner's outside view of a case's step: a submission that slows the engine's clock (its steps look 1000x
faster) or hides its step memory is ``suspect``, unranked, and fails the run; honest cases and the references are
never suspect, also beside a CPU-bound loop; every record carries the outside figures. Plus the channel's framing
and the verdict's rule as functions. Runs use the template task (``tests/template``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctbench.boards.table import cases_frame, leaderboard, task_specs
from ctbench.isolation import outside
from ctbench.isolation.channel import NO_SECRET, Reader, Writer
from ctbench.store.results import load_runs

FAKERS = '''
import time
import torch
from ctbench import Manifest
from suites.tiny.interface import Solver


def slow_clocks(factor=1000.0):
    """The process's clocks run ``factor`` times slower than real time, from now on."""
    for name in ("perf_counter", "process_time"):  # the engine's clocks (ctbench.api.measure)
        real = getattr(time, name)
        start = real()
        setattr(time, name, lambda real=real, start=start: start + (real() - start) / factor)


class SlowClock(Solver):
    """Takes 0.1 s a solve, on a clock that makes it look like 0.1 ms."""
    manifest = Manifest(name="slow_clock")

    def solve(self, a, b):
        if not getattr(SlowClock, "patched", False):
            SlowClock.patched = True
            slow_clocks()
        end = time.perf_counter() + 0.1 / 1000
        while time.perf_counter() < end:
            pass
        return torch.linalg.solve(a, b)


class HidesMemory(Solver):
    """Touches 256 MiB a solve, and makes the engine read a peak of 4 KiB."""
    manifest = Manifest(name="hides_memory")

    def solve(self, a, b):
        import ctbench.api.measure as m
        m._proc_status_kb = lambda field: 4
        scratch = torch.ones(2**26)
        return torch.linalg.solve(a, b) + 0 * scratch[0]


class Honest(Solver):
    """Takes 30 ms a solve, and says so."""
    manifest = Manifest(name="honest")

    def solve(self, a, b):
        end = time.perf_counter() + 0.03
        while time.perf_counter() < end:
            pass
        return torch.linalg.solve(a, b)
'''


@pytest.fixture
def env(tmp_path, tiny_task) -> dict[str, str]:
    root = tmp_path / "tasks"
    env = tiny_task(root, tmp_path / "cache", {"fakers.py": FAKERS})
    return {**env, "FAKERS": str(root / "fakers.py")}


def ctbench(out: Path, env: dict[str, str], params: str, *impls: str) -> subprocess.CompletedProcess:
    argv = ["run", "--task", "tiny", "--param", f"n={params}", "--out", str(out), "--no-report", "--sandbox", "off"]
    argv += [f"--impl={i}" if "." not in i else f"--impl={env['FAKERS']}:{i.split('.')[1]}" for i in impls]
    return subprocess.run([sys.executable, "-m", "ctbench_cli", *argv], env=env, capture_output=True, text=True,
                          timeout=400)  # fmt: skip


def records(out: Path) -> list[dict]:
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())["cases"]


def test_a_case_that_fakes_its_clock_or_memory_is_suspect_unranked_and_fails_the_run(tmp_path, env):
    out = tmp_path / "out"
    done = ctbench(out, env, "8", "direct", "fakers.SlowClock", "fakers.HidesMemory")
    assert done.returncode == 1, done.stdout + done.stderr
    cases = {c["impl"]: c for c in records(out)}
    assert cases["direct"]["status"] == "ok"
    clock, memory = cases["slow_clock"], cases["hides_memory"]
    assert clock["status"] == "suspect" and "the runner's clock saw" in clock["error"], clock["error"]
    assert clock["metrics"]["step_time_s"] * 3 < 0.01 < 0.2 < clock["outside"]["window_s"]
    assert memory["status"] == "suspect" and "MiB in the engine's memory readings" in memory["error"], memory["error"]
    assert memory["outside"]["memory_growth_bytes"] > 64 * 2**20  # of the 256 MiB it touched
    assert "suspect" in done.stdout
    runs, _ = load_runs([out])
    board = leaderboard(cases_frame(runs), "tiny", task_specs(runs)).set_index("impl")
    assert board.loc[["direct", "slow_clock", "hides_memory"], "rank"].isna().all()  # direct: the only ok row
    assert board.loc["direct", "status"] == "ok"
    assert set(board.loc[["slow_clock", "hides_memory"], "status"]) == {"suspect"}


def test_honest_cases_beside_a_busy_loop_are_never_suspect(tmp_path, env):
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]  # both cores
    try:
        out = tmp_path / "out"
        done = ctbench(out, env, "8,64,256", "direct", "fakers.Honest")
    finally:
        for loop in busy:
            loop.kill()
            loop.wait()
    assert done.returncode == 0, done.stdout + done.stderr
    found = records(out)
    assert len(found) == 6 and {c["status"] for c in found} == {"ok"}
    for case in found:
        seen = case["outside"]
        assert seen["marks"] == "complete" and seen["timed_calls"] == 3
        assert set(seen) == {"window_s", "call_median_s", "cpu_s", "timed_calls", "peak_rss_bytes",
                             "memory_growth_bytes", "marks"}  # fmt: skip
        assert seen["window_s"] >= 0 and seen["call_median_s"] >= 0 and seen["cpu_s"] >= 0
        assert seen["peak_rss_bytes"] is None or seen["peak_rss_bytes"] > 0  # None: the case ended before a look
        assert case["containment"] in ("watch", "cgroup2")


def test_a_stop_record_carries_outside_figures_too(tmp_path, env):
    from ctbench.api.implementation import ImplRef, Manifest
    from ctbench.run.cases import Case
    from ctbench.run.records import stop_record
    from ctbench.run.settings import RunSettings
    from ctbench.store.schema import CASE

    impl = ImplRef(Manifest("direct", ("ctbench",)), "reference_impls.tiny.direct:Direct", "reference")
    settings = RunSettings(tmp_path, tmp_path, tmp_path, "cpu")
    record = stop_record(Case("tiny", impl, "smoke", {"n": 8}), "timeout", "not run", settings, 0.0)
    CASE(record, "record")
    assert record["outside"]["marks"] == "missing" and record["outside"]["window_s"] is None


# -- the channel and the verdict, as functions ---------------------------------------------------------------------
SECRET = "s" * 32


def _channel(data: bytes) -> tuple[Reader, list[dict]]:
    marks: list[dict] = []
    reader = Reader(SECRET, marks.append, 1000)
    for i in range(0, len(data), 7):  # in small pieces, as a pipe may deliver them
        reader.feed(data[i : i + 7])
    reader.finish()
    return reader, marks


def test_the_channel_reads_marks_in_order_then_one_record():
    read_fd, write_fd = os.pipe()
    writer = Writer(write_fd, SECRET)
    writer.mark("timing", {"calls": 3})
    writer.mark("timed", {})
    writer.record(json.dumps({"a": 1}).encode())
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    reader, marks = _channel(data)
    assert [m["mark"] for m in marks] == ["timing", "timed"] and json.loads(reader.record) == {"a": 1}
    assert not reader.problem


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"0" * 32 + b"\n" + b'{"task": "tiny"}', NO_SECRET),  # a forged record without the frame's header
        (b"t" * 32 + b" record 2\n{}", NO_SECRET),  # another secret
        (b"s" * 32 + b" record 5000\n{}", "exceeds 1000 bytes"),
        (b"s" * 32 + b" record 2\n{}" + b"s" * 32 + b" record 2\n{}", "more than one record came back"),
        (b"s" * 32 + b" record 9\n{}", "cut short"),
        (b"s" * 32 + b" shout 2\n{}", "does not know"),
        (b"x" * 500, NO_SECRET),  # no header line at all
    ],
)
def test_the_channel_refuses_what_is_not_the_engines(data, problem):
    reader, _ = _channel(data)
    assert problem in reader.problem


def _figures(
    window: float, calls: int = 3, growth: int | None = None, marks: str = "complete", call: float | None = None
) -> dict:
    typical = window / calls if call is None else call
    return {"window_s": window, "call_median_s": typical, "timed_calls": calls, "memory_growth_bytes": growth,
            "marks": marks}  # fmt: skip


def test_the_verdict_is_one_sided_with_a_stated_tolerance():
    record = {"metrics": {"step_time_s": 0.01, "step_peak_memory_bytes": 1000.0}}
    assert outside.verdict(record, _figures(0.03), 3, "cpu") == ""  # the window holds the steps: fine
    assert outside.verdict(record, _figures(0.03 / outside.TIME_FRACTION * 0.99), 3, "cpu") == ""  # within slack
    assert outside.verdict(record, _figures(10.0), 3, "cpu").startswith("suspect: 3 timed calls")
    assert outside.verdict(record, _figures(10.0, call=0.01), 3, "cpu") == ""  # one late mark, typical calls fine
    assert outside.verdict({"metrics": {"step_time_s": 1e-5}}, _figures(0.04), 3, "cpu") == ""  # under the slack
    assert "announced 3 timed calls, its scale times 5" in outside.verdict(record, _figures(0.03), 5, "cpu")
    assert "did not come back" in outside.verdict(record, _figures(0.03, marks="missing"), 3, "cpu")
    assert "out of order" in outside.verdict(record, _figures(0.03, marks="mark 'timed' after None"), 3, "cpu")
    hidden = _figures(0.03, growth=256 * 2**20)
    assert "MiB in the engine's memory readings" in outside.verdict(record, hidden, 3, "cpu")
    assert outside.verdict(record, hidden, 3, "cuda") == ""  # on a GPU the step memory is the allocator's
    honest = {"metrics": {"step_time_s": 0.01, "step_peak_memory_bytes": 200.0 * 2**20}}
    assert outside.verdict(honest, _figures(0.03, growth=256 * 2**20), 3, "cpu") == ""
    assert outside.verdict({"metrics": {"residual": 0.0}}, _figures(10.0, marks="missing"), 3, "cpu") == ""


def test_marks_out_of_order_are_named():
    observer = outside.Observer(lambda: [], lambda: None, clock=iter([1.0, 2.0, 3.0]).__next__)
    observer.mark({"mark": "timed"})
    figures = observer.figures()
    assert figures["marks"] == "mark 'timed' after None" and figures["window_s"] is None
    observer = outside.Observer(lambda: [], lambda: None, clock=iter([1.0, 2.5]).__next__)
    observer.mark({"mark": "timing", "calls": 3})
    observer.mark({"mark": "timed"})
    assert observer.figures()["window_s"] == 1.5 and observer.figures()["marks"] == "complete"
