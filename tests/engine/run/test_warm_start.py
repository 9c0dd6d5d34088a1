"""Warm start: a case forked from the template gives the record a fresh interpreter gives, except its
timings; a case that crashes its process leaves the same template serving the next case; the template leaves when
the runner closes it, by itself (not killed after a timeout). Cases are the template task's (``tests/template``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ctbench.api.implementation import ImplRef, Manifest
from ctbench.run.cases import Case
from ctbench.run.launch import Limits, launch
from ctbench.run.records import exit_reason
from ctbench.run.settings import default_threads, warm_start
from ctbench.run.template import Template

CRASHES = """
import os, signal
from ctbench import Manifest
from suites.tiny.interface import Solver

class Segfaults(Solver):
    manifest = Manifest(name="segfaults", authors=("test",))
    def solve(self, a, b):
        os.kill(os.getpid(), signal.SIGSEGV)
"""


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory, tiny_task) -> dict[str, str]:
    return tiny_task(tmp_path_factory.mktemp("tasks"), tmp_path_factory.mktemp("cache"), {"crashes.py": CRASHES})


def run(out: Path, env: dict[str, str], *options: str) -> tuple[list[dict], subprocess.CompletedProcess]:
    """``ctbench run --task tiny`` (no sandbox: a sandboxed case always starts cold): its records, and the run."""
    args = [sys.executable, "-m", "ctbench_cli", "run", "--task", "tiny", "--out", str(out), "--no-report"]
    done = subprocess.run([*args, "--sandbox", "off", *options], env=env, capture_output=True, text=True, timeout=300)
    found = list(out.glob("*.json"))
    assert len(found) == 1, done.stdout + done.stderr
    return json.loads(found[0].read_text())["cases"], done


def untimed(record: dict) -> dict:
    """The record without what a second run may change (timings, rates, memory, spreads, how it started, the
    runner's outside view of its step)."""
    kept = {k: v for k, v in record.items() if k not in ("duration_s", "spread", "metrics", "start", "outside")}
    kept["metrics"] = sorted(record["metrics"])  # the same metrics, whatever their values
    kept["untimed"] = {k: v for k, v in record["metrics"].items() if not k.endswith("_s") and "memory" not in k}
    return kept


def test_a_warm_case_records_what_a_cold_one_does(tmp_path, tiny_env):
    warm, done = run(tmp_path / "warm", tiny_env, "--start", "warm")
    assert done.returncode == 0, done.stdout + done.stderr
    cold, done = run(tmp_path / "cold", tiny_env, "--start", "cold")
    assert done.returncode == 0, done.stdout + done.stderr
    assert {c["start"] for c in warm} == {"warm"} and {c["start"] for c in cold} == {"cold"}
    assert len(warm) == len(cold) > 1
    for w, c in zip(warm, cold, strict=True):
        assert untimed(w) == untimed(c)


def case(impl: ImplRef) -> dict:
    return Case("tiny", impl, "smoke", {"n": 8}, 0).to_json()


def test_a_crash_in_a_forked_case_leaves_the_template_serving(tmp_path, tiny_env, monkeypatch):
    tiny_root = Path(tiny_env["CTBENCH_PATH"])
    monkeypatch.setenv("CTBENCH_PATH", str(tiny_root))  # what the template's imports find
    crash = ImplRef(Manifest("segfaults", ("test",)), f"{tiny_root / 'crashes.py'}:Segfaults", "segfaults")
    direct = ImplRef(Manifest("direct", ("ctbench",)), "reference_impls.tiny.direct:Direct", "reference")
    worker_args = ["cpu", str(tmp_path / "data"), str(tmp_path / "cache"), "1"]
    template = Template(["tiny"])
    try:
        pid = template.proc.pid
        crashed = launch(case(crash), worker_args, Limits(60, 2**33), sandbox=False, hidden=[], device="cpu",
                         template=template)  # fmt: skip
        assert crashed.start == "warm" and crashed.record is None and crashed.returncode != 0
        assert "SIG" in exit_reason(crashed.returncode)  # killed by its signal (or 128 + it)
        assert template.alive and template.proc.pid == pid
        served = launch(case(direct), worker_args, Limits(60, 2**33), sandbox=False, hidden=[], device="cpu",
                        template=template)  # fmt: skip
        assert served.start == "warm" and served.record["status"] == "ok", served.log_tail
    finally:
        template.close()
    assert template.proc.returncode == 0


def test_a_closed_template_leaves_by_itself():
    template = Template([])
    try:
        assert template.alive
    finally:
        template.close()
    assert template.proc.returncode == 0  # it saw the end; a kill after the timeout reads -9


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (None, "exited with code None"),
        (0, "exited with code 0"),
        (3, "exited with code 3"),
        (128, "exited with code 128"),
        (139, "exited with code 139 (SIGSEGV)"),
        (255, "exited with code 255"),
        (-9, "was killed by SIGKILL"),
        (-11, "was killed by SIGSEGV"),
        (-200, "exited with code -200"),
    ],
)
def test_a_worker_killed_by_a_signal_is_named_by_it(code, reason):
    assert exit_reason(code) == reason


def test_cases_start_warm_and_single_threaded_on_a_cpu_by_default():
    assert warm_start("auto", "cpu") and not warm_start("auto", "cuda")
    assert warm_start("warm", "cuda") and not warm_start("cold", "cpu")
    with pytest.raises(ValueError, match="start must be one of"):
        warm_start("hot", "cpu")
    assert (default_threads("cpu"), default_threads("cuda"), default_threads("cpu", 4)) == (1, 0, 4)
