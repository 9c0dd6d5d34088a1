"""Warm start (issue 14): a case forked from the template gives the record a fresh interpreter gives, except its
timings; a case that crashes its process leaves the template serving the next case; the template leaves when the
runner closes it, by itself (not killed after a timeout). Runs use the template task (``tests/template``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctbench.template import Template

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "template"
TIMING = ("_time_s", "_s")  # metric names that end so are timings or rates of time

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
def tiny_env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tasks")
    shutil.copytree(TEMPLATE, root, dirs_exist_ok=True)
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "CTBENCH_PATH": str(root), "CTBENCH_CACHE": str(cache), "PYTHONPATH": str(REPO)}


def run(out: Path, env: dict[str, str], *options: str) -> list[dict]:
    args = [sys.executable, "-m", "ctbench_cli", "run", "--task", "tiny", "--out", str(out), "--no-report", *options]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())["cases"], done


def untimed(record: dict) -> dict:
    """The record without what a second run may change: timings, rates, spreads, durations."""
    kept = {k: v for k, v in record.items() if k not in ("duration_s", "spread", "metrics")}
    kept["metrics"] = sorted(record["metrics"])  # the same metrics, whatever their values
    kept["untimed"] = {k: v for k, v in record["metrics"].items() if not k.endswith(TIMING) and "memory" not in k}
    return kept


def test_a_warm_case_records_what_a_cold_one_does(tmp_path, tiny_env):
    warm, done = run(tmp_path / "warm", tiny_env, "--start", "warm")
    assert done.returncode == 0, done.stdout + done.stderr
    cold, done = run(tmp_path / "cold", tiny_env, "--start", "cold")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(warm) == len(cold) > 1
    for w, c in zip(warm, cold, strict=True):
        assert untimed(w) == untimed(c)


def test_a_crash_in_a_warm_case_leaves_the_template_serving(tmp_path, tiny_env, write_module):
    sub = write_module("crashes.py", CRASHES)
    cases, done = run(tmp_path / "out", tiny_env, "--start", "warm", f"--impl={sub}:Segfaults", "--impl=direct")
    assert done.returncode == 1
    status = {c["impl"]: c for c in cases}
    assert status["segfaults"]["status"] == "failed" and "SIGSEGV" in status["segfaults"]["error"]
    assert {c["status"] for c in cases if c["impl"] == "direct"} == {"ok"}  # forked after the crash


def test_a_closed_template_leaves_by_itself():
    template = Template([])
    assert template.alive
    template.close()
    assert template.proc.returncode == 0  # it saw the end; a kill after the timeout reads -9
