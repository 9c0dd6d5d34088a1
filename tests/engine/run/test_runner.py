"""The runner and CLI end to end: failures contained and recorded, resume, exit codes, clear usage errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from runfiles import interruptible

from ctbench.boards.table import cases_frame, compare, task_specs
from ctbench.run import selection
from ctbench.store.results import load_runs

SUBMISSIONS = """
import os, time
import torch
from ctbench import Manifest
from suites.adjoint_resnet.interface import StageGradient

class Raises(StageGradient):
    manifest = Manifest(name="raises", authors=("test",))
    def forward(self, stage, x):
        raise RuntimeError("boom from the submission")

class Nan(StageGradient):
    manifest = Manifest(name="nan", authors=("test",))
    def forward(self, stage, x):
        return stage(x) * float("nan")

class Crashes(StageGradient):
    manifest = Manifest(name="crashes", authors=("test",))
    def forward(self, stage, x):
        os._exit(3)

class Hangs(StageGradient):
    manifest = Manifest(name="hangs", authors=("test",))
    def forward(self, stage, x):
        time.sleep(120)

class SlowOnce(StageGradient):
    '''Sleeps while the marker file named by $SLOW_MARKER exists.'''
    manifest = Manifest(name="slow_once", authors=("test",))
    def forward(self, stage, x):
        while os.path.exists(os.environ.get("SLOW_MARKER", "/nonexistent")):
            time.sleep(0.2)
        return stage(x)
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return {**os.environ, "CTBENCH_CACHE": str(cache)}


def smoke_run(out, *impls: str, options: tuple[str, ...] = ()) -> list[str]:
    """Arguments of ``ctbench run`` for adjoint_resnet at smoke scale, depth 8, seed 0 (unless ``options`` names
    seeds), into ``out``."""
    args = ["run", "--task", "adjoint_resnet", "--scale", "smoke", "--param", "depth=8", "--out", str(out)]
    args += [] if "--seed" in options else ["--seed", "0"]
    return [*args, "--no-report", *options, *(f"--impl={impl}" for impl in impls)]


def ctbench(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "ctbench_cli", *args], env=env, capture_output=True, text=True, **kw)


def test_failures_are_recorded_and_the_run_goes_on(tmp_path, write_module, env):
    sub = write_module("subs.py", SUBMISSIONS)
    out = tmp_path / "out"
    subs = [f"{sub}:{name}" for name in ("Raises", "Nan", "Crashes", "Hangs")]
    args = smoke_run(out, "backprop", *subs, options=("--timeout", "25"))
    result = ctbench(args, env, timeout=400)
    assert result.returncode == 1, result.stdout + result.stderr
    runs, skipped = load_runs([out])
    assert not skipped and len(runs) == 1
    status = {c["impl"]: c for c in runs[0]["cases"]}
    assert status["backprop"]["status"] == "ok"
    assert status["raises"]["status"] == "failed" and "boom from the submission" in status["raises"]["error"]
    assert status["nan"]["status"] == "failed" and "non-finite" in status["nan"]["error"]
    assert status["crashes"]["status"] == "failed" and "exited with code 3" in status["crashes"]["error"]
    assert status["hangs"]["status"] == "timeout"
    assert status["raises"]["submission"] == "raises"
    assert "run file:" in result.stdout and str(out) in result.stdout
    assert not list(out.glob("*-report"))  # --no-report


def test_interrupted_run_resumes(tmp_path, write_module, env):
    sub = write_module("subs.py", SUBMISSIONS)
    marker = tmp_path / "slow"
    marker.touch()
    out = tmp_path / "out"
    args = smoke_run(out, "backprop", f"{sub}:SlowOnce")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ctbench_cli", *args],
        env={**env, "SLOW_MARKER": str(marker)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=interruptible,
    )
    deadline = time.time() + 120
    journal = None
    while time.time() < deadline:
        found = list((out / ".partial").glob("*.jsonl")) if (out / ".partial").exists() else []
        if found and len(found[0].read_text().splitlines()) >= 2:  # header + the first finished case
            journal = found[0]
            break
        time.sleep(0.5)
    assert journal is not None, "the first case never finished"
    proc.send_signal(signal.SIGINT)
    text = proc.communicate(timeout=600)[0]
    assert "resume" in text
    assert not list(out.glob("*.json")), "an interrupted run must not write a run file"

    marker.unlink()
    result = ctbench(args, {**env, "SLOW_MARKER": str(marker)}, timeout=200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 2 cases already done" in result.stdout
    runs, _ = load_runs([out])
    assert [c["impl"] for c in runs[0]["cases"]] == ["backprop", "slow_once"]
    assert not journal.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--task", "nope"], "valid tasks: adjoint_resnet"),
        (["run", "--task", "adjoint_resnet", "--scale", "huge"], "valid: smoke, small, full"),
        (["run", "--task", "adjoint_resnet", "--param", "width=3"], "has no parameter width at scale smoke; valid:"),
        (["run", "--task", "adjoint_resnet", "--impl", "magic"], "references: adjoint_euler"),
    ],
)
def test_usage_errors_list_valid_choices(args, message, env):
    result = ctbench(args, env, timeout=300)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_submission_missing_a_method_is_named(write_module, env):
    sub = write_module(
        "incomplete.py",
        """
        from ctbench import Manifest
        class Incomplete:
            manifest = Manifest(name="incomplete")
        class NoManifest:
            def forward(self, stage, x):
                return x
    """,
    )
    result = ctbench(["run", "--task", "adjoint_resnet", "--impl", f"{sub}:Incomplete"], env, timeout=300)
    assert result.returncode == 2 and "missing forward" in result.stderr
    result = ctbench(["run", "--task", "adjoint_resnet", "--impl", f"{sub}:NoManifest"], env, timeout=300)
    assert result.returncode == 2 and "missing manifest" in result.stderr


TASKLESS = """
    from ctbench import Manifest
    from suites.adjoint_resnet.interface import StageGradient
    from suites.bilevel.interface import BilevelSolver

    class Subclass(StageGradient):
        manifest = Manifest(name="subclass")
        def forward(self, stage, x):
            return stage(x)

    class Duck:  # bilevel's abstract methods, no base class
        manifest = Manifest(name="duck")
        def init(self, problem, batch_size, seed): ...
        def step(self): ...
        def outer_variable(self): ...

    class Forward:  # the abstract method of three tasks' interfaces
        manifest = Manifest(name="forward")
        def forward(self, *args): ...

    class Nothing:  # a method no task's interface asks for
        manifest = Manifest(name="nothing")
        def unrelated(self): ...
"""


def test_impl_without_task_infers_the_task_its_class_implements(write_module):
    sub = write_module("taskless.py", TASKLESS)
    assert selection.tasks_for([f"{sub}:Subclass"], sandbox="off") == ["adjoint_resnet"]
    assert selection.tasks_for([f"{sub}:Duck"], sandbox="off") == ["bilevel"]
    assert selection.tasks_for(["soba"], sandbox="off") == ["bilevel"]  # a reference, by its name
    assert selection.tasks_for([f"{sub}:Subclass", "backprop"], sandbox="off") == ["adjoint_resnet"]


@pytest.mark.parametrize(
    ("impls", "message"),
    [
        (["{sub}:Forward"], "implements the interfaces of several tasks (adjoint_resnet, implicit_jfb, iresnet)"),
        (["{sub}:Nothing"], "implements none of the tasks' interfaces"),
        (["{sub}:Duck", "backprop"], "several tasks ({sub}:Duck -> bilevel, backprop -> adjoint_resnet)"),
        (["magic"], "--impl magic: cannot tell its task: no task has a reference of that name"),
    ],
)
def test_impl_without_task_asks_for_it_where_no_task_or_several_match(write_module, env, impls, message):
    sub = write_module("taskless.py", TASKLESS)
    args = ["run", "--no-report", *(f"--impl={i.format(sub=sub)}" for i in impls)]
    result = ctbench(args, env, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message.format(sub=sub) in result.stderr and "give --task" in result.stderr
    assert "cases on" not in result.stdout  # nothing ran


def test_show_and_compare(tmp_path, env):
    out = tmp_path / "out"
    args = smoke_run(out, "backprop", "adjoint_euler")
    # the run's exit status also carries its timing claims (step_time_vs_backprop), which a busy machine can fail:
    # this test is about show and compare, so either status is fine as long as every case ran
    first = ctbench(args, env, timeout=600)
    assert first.returncode in (0, 1) and "run file:" in first.stdout, first.stdout + first.stderr
    second = ctbench(args, env, timeout=600)
    assert second.returncode in (0, 1) and "run file:" in second.stdout
    files = sorted(out.glob("*.json"))
    assert len(files) == 2, "a second run writes a second file, never over the first"
    assert re.search(r"^\d+ ok$", first.stdout, re.MULTILINE) and "run file:" in first.stdout.splitlines()[-1]
    shown = ctbench(["show", str(out)], {**env, "COLUMNS": "80"}, timeout=300)
    assert shown.returncode == 0 and "adjoint_euler" in shown.stdout and "test_accuracy" in shown.stdout
    assert max(map(len, shown.stdout.splitlines())) <= 80 and "MiB" in shown.stdout
    assert "cases·seeds" in ctbench(["show", str(out), "--latest"], {**env, "COLUMNS": "200"}, timeout=300).stdout
    compared = ctbench(["compare", str(files[0]), str(files[1])], env, timeout=300)
    assert compared.returncode == 0
    assert "step_time_s" in compared.stdout
    assert any(v in compared.stdout for v in ("within noise", "better", "worse"))
    assert compared.stdout.strip().splitlines()[-1].startswith("summary: ")
    runs = [load_runs([f])[0] for f in files]
    changes, _ = compare(cases_frame(runs[0]), cases_frame(runs[1]), task_specs(runs[0] + runs[1]))
    verdict = changes.pivot(index=["impl", "params"], columns="metric", values="verdict")
    assert len(verdict) >= 2  # a rate and the timing it derives from never disagree
    assert (verdict["step_time_s"] == verdict["throughput_samples_s"]).all(), verdict
    doc = json.loads(files[0].read_text())
    assert doc["env"]["torch"] and doc["env"]["cpu_cores"] >= 1


def test_recorded_threads_are_those_the_step_ran_with(tmp_path, env):
    """bilevel used to set its own thread count inside the case; now its scales declare one thread, the worker sets
    it, and a `--threads 2` run records the 1 the step really ran with."""
    out = tmp_path / "out"
    args = ["run", "--task", "bilevel", "--scale", "smoke", "--param", "problem=quadratic", "--impl", "soba"]
    args += ["--seed", "0"]
    result = ctbench([*args, "--threads", "2", "--out", str(out), "--no-report"], env, timeout=600)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    (case,) = load_runs([out])[0][0]["cases"]
    assert case["status"] == "ok", case["error"]
    assert case["threads"] == 1 and case["process"]["threads"] == 1
