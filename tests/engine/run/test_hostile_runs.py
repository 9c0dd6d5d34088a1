"""A hostile submission, a killed runner, concurrent runs, a damaged journal: each gets its documented outcome,
and no other case, run file or journal is lost. Runs use the template task (``tests/template``: a linear solve)
so that each case costs a process start, not a training."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from runfiles import interruptible

from ctbench.run.launch import PREFIX

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

HOSTILE = '''
import json, os, subprocess, sys, time
from pathlib import Path
import torch
from ctbench import Manifest
from suites.tiny.interface import Solver

MARK = os.environ.get("HOSTILE_MARK", "/nonexistent")


class Forger(Solver):
    """Looks for the run's --out on its parent's command line and forges a journal line and a file there."""
    manifest = Manifest(name="forger")

    def solve(self, a, b):
        for pid in (os.getppid(), *map(int, filter(str.isdigit, os.listdir("/proc")))):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\\0")
            except OSError:
                continue
            if b"--out" in argv:
                out = Path(argv[argv.index(b"--out") + 1].decode())
                forged = {"key": "x", "record": {"task": "tiny", "impl": "direct", "metrics": {"residual": 0.0}}}
                try:
                    for journal in out.glob(".partial/*.jsonl"):
                        with open(journal, "a") as f:
                            f.write(json.dumps(forged) + "\\n")
                    (out / "forged.json").write_text(json.dumps({"schema": "ctbench.run/2", "cases": 5}))
                    Path(MARK).write_text("wrote into --out")
                except OSError as exc:
                    Path(os.environ["TMPDIR"], "refused").write_text(str(exc))
        return torch.linalg.solve(a, b)


class PosesAsReference(Solver):
    """Writes a record claiming to be the reference ``direct`` on its own pipe, before its real one."""
    manifest = Manifest(name="poser")

    def solve(self, a, b):
        forged = b"0" * 32 + b"\\n" + json.dumps({"task": "tiny", "impl": "direct"}).encode()
        for fd in os.listdir("/proc/self/fd"):  # every pipe this process holds: the record's is one of them
            if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                try:
                    os.write(int(fd), forged)
                except OSError:
                    pass
        return torch.linalg.solve(a, b)


class Escapes(Solver):
    """Starts a busy child in a new session (out of the case's group) that would outlive the case."""
    manifest = Manifest(name="escapes")

    def solve(self, a, b):
        if not Path(MARK).exists():
            child = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            Path(MARK).write_text(str(child.pid))
        return torch.linalg.solve(a, b)


class Hog(Solver):
    """Grows its memory until something stops it."""
    manifest = Manifest(name="hog")

    def solve(self, a, b):
        hoard = []
        while True:
            hoard.append(torch.ones(2**26))  # 256 MiB a step


class Chatty(Solver):
    """Prints 60 MB, then crashes."""
    manifest = Manifest(name="chatty")

    def solve(self, a, b):
        line = "x" * 999 + "\\n"
        for _ in range(60_000):
            sys.stdout.write(line)
        sys.stdout.flush()
        os._exit(7)


class Slow(Solver):
    """Says it is running (``<marker>.running``), then sleeps while the marker file exists."""
    manifest = Manifest(name="slow")

    def solve(self, a, b):
        Path(MARK + ".running").touch()
        while Path(MARK).exists():
            time.sleep(0.1)
        return torch.linalg.solve(a, b)


class ClaimsAnotherMachine(Solver):
    """Makes its own record claim to have run on an H200, and to be an expected negative control."""
    manifest = Manifest(name="claims")

    def solve(self, a, b):
        import ctbench.run.worker as w
        w.host_facts = lambda: {"host": "gpu-box", "hardware": "NVIDIA H200 (141 GiB)", "expected_invalid": "yes"}
        return torch.linalg.solve(a, b)


class Malformed(Solver):
    """Makes its own record malformed (a curve whose points are not numbers)."""
    manifest = Manifest(name="malformed")

    def solve(self, a, b):
        import ctbench.run.worker as w
        w.host_facts = lambda: {"series": {"curve": [[1, "a"]]}}
        return torch.linalg.solve(a, b)


class Reference(Solver):
    manifest = Manifest(name="reference")

    def solve(self, a, b):
        return torch.linalg.solve(a, b)


class Direct(Solver):
    manifest = Manifest(name="direct")

    def solve(self, a, b):
        return torch.linalg.solve(a, b)
'''


@pytest.fixture
def env(tmp_path, tiny_task) -> dict[str, str]:
    root = tmp_path / "tasks"
    env = tiny_task(root, tmp_path / "cache", {"hostile.py": HOSTILE})
    return {**env, "HOSTILE": str(root / "hostile.py"), "HOSTILE_MARK": str(tmp_path / "mark")}


def args(out: Path, *impls: str, extra: tuple[str, ...] = ()) -> list[str]:
    base = ["run", "--task", "tiny", "--param", "n=8", "--out", str(out), "--no-report", *extra]
    return [*base, *(f"--impl={i}" for i in impls)]


def ctbench(argv: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ctbench_cli", *argv], env=env, capture_output=True, text=True, timeout=timeout
    )


def run_file(out: Path) -> dict:
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())


@needs_bwrap
def test_a_sandboxed_submission_cannot_forge_or_drop_files(tmp_path, env):
    out = tmp_path / "out"
    done = ctbench(args(out, "direct", f"{env['HOSTILE']}:Forger"), env)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = run_file(out)
    assert [c["impl"] for c in doc["cases"]] == ["direct", "forger"]
    assert doc["cases"][1]["sandboxed"] is True and doc["cases"][0]["sandboxed"] is False
    assert not Path(env["HOSTILE_MARK"]).exists(), "the sandboxed case wrote into --out"
    assert sorted(p.name for p in out.iterdir()) == [f"{doc['run_id']}.json"]


def test_a_record_for_another_case_is_refused(tmp_path, env):
    out = tmp_path / "out"
    done = ctbench(args(out, "direct", f"{env['HOSTILE']}:PosesAsReference", extra=("--sandbox", "off")), env)
    assert done.returncode == 1
    cases = {c["impl"]: c for c in run_file(out)["cases"]}
    assert cases["direct"]["status"] == "ok" and cases["direct"]["metrics"]["residual"] < 1e-6
    poser = cases["poser"]
    assert poser["status"] == "failed" and poser["submission"] != "reference"
    assert poser["error"].startswith("worker exited with code 0; a record without the case's secret was refused")


@pytest.mark.parametrize("name", ["Reference", "Direct"])
def test_reserved_names_are_refused(tmp_path, env, name):
    done = ctbench(args(tmp_path / "out", f"{env['HOSTILE']}:{name}"), env)
    assert done.returncode == 2 and "is reserved for tiny's reference implementations" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_child_that_escapes_its_case_is_ended_with_it(tmp_path, env):
    out = tmp_path / "out"
    done = ctbench(args(out, f"{env['HOSTILE']}:Escapes", "direct", extra=("--sandbox", "off")), env)
    assert done.returncode == 0, done.stdout + done.stderr
    pid = int(Path(env["HOSTILE_MARK"]).read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_memory_hog_is_ended_as_oom_and_the_run_goes_on(tmp_path, env):
    out = tmp_path / "out"
    done = ctbench(args(out, f"{env['HOSTILE']}:Hog", "direct", extra=("--max-memory", "700M")), env)
    assert done.returncode == 1
    cases = {c["impl"]: c for c in run_file(out)["cases"]}
    assert cases["hog"]["status"] == "oom" and "exceeded the memory limit of 0.68 GiB" in cases["hog"]["error"]
    assert cases["direct"]["status"] == "ok"
    assert {"duration_s", "device", "threads"} <= set(cases["hog"])


def test_a_long_log_is_read_by_its_tail_and_the_exit_status_comes_first(tmp_path, env):
    out = tmp_path / "out"
    done = ctbench(args(out, f"{env['HOSTILE']}:Chatty"), env)
    assert done.returncode == 1
    case = {c["impl"]: c for c in run_file(out)["cases"]}["chatty"]
    assert case["error"].startswith("worker exited with code 7") and len(case["error"]) <= 4000
    assert {"duration_s", "device", "threads"} <= set(case)


def _wait_for_journal(out: Path, lines: int, deadline: float = 600) -> Path:
    end = time.time() + deadline
    while time.time() < end:
        found = list(out.glob(".partial/*.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= lines:
            return found[0]
        time.sleep(0.2)
    raise AssertionError("the journal never reached the expected length")


def _wait_for(path: Path, deadline: float = 600) -> None:
    end = time.time() + deadline
    while not path.exists():
        if time.time() > end:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.2)


def test_a_second_identical_run_is_refused_while_the_first_runs(tmp_path, env):
    out, mark = tmp_path / "out", Path(env["HOSTILE_MARK"])
    mark.touch()
    # unsandboxed: the sandbox hides /tmp, where the marker that holds the case lives
    argv = args(out, "direct", f"{env['HOSTILE']}:Slow", extra=("--sandbox", "off"))
    first = subprocess.Popen([sys.executable, "-m", "ctbench_cli", *argv], env=env, stdout=subprocess.PIPE, text=True)
    _wait_for_journal(out, 2)
    second = ctbench(argv, env)
    assert second.returncode == 2 and f"another ctbench run (pid {first.pid})" in second.stderr
    mark.unlink()
    assert first.wait(timeout=600) == 0
    assert [c["status"] for c in run_file(out)["cases"]] == ["ok", "ok"]


def test_a_killed_runner_leaves_no_worker_and_its_folder_is_cleaned(tmp_path, env):
    out, mark = tmp_path / "out", Path(env["HOSTILE_MARK"])
    mark.touch()
    argv = args(out, "direct", f"{env['HOSTILE']}:Slow", extra=("--sandbox", "off"))
    running = Path(env["HOSTILE_MARK"] + ".running")
    running.unlink(missing_ok=True)
    runner = subprocess.Popen([sys.executable, "-m", "ctbench_cli", *argv], env=env, stdout=subprocess.DEVNULL)
    _wait_for_journal(out, 2)
    _wait_for(running)  # the slow case is running (however long a loaded machine takes to start it)
    workers = [p for p in psutil.Process(runner.pid).children(recursive=True)]
    assert workers, "the slow case should be running"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    psutil.wait_procs(workers, timeout=10)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)
    mark.unlink()
    resumed = ctbench(argv, env)
    assert resumed.returncode == 0 and "1 of 2 cases already done" in resumed.stdout
    leftovers = [p for p in Path("/tmp").glob(f"{PREFIX}*") if (p / "runner.pid").exists()]
    assert all(psutil.pid_exists(int((p / "runner.pid").read_text())) for p in leftovers)


def test_a_damaged_journal_line_is_skipped_and_the_run_resumes(tmp_path, env):
    out, mark = tmp_path / "out", Path(env["HOSTILE_MARK"])
    mark.touch()
    argv = args(out, "direct", f"{env['HOSTILE']}:Slow", extra=("--sandbox", "off"))
    runner = subprocess.Popen([sys.executable, "-m", "ctbench_cli", *argv], env=env, stdout=subprocess.DEVNULL,
                              preexec_fn=interruptible)  # fmt: skip
    journal = _wait_for_journal(out, 2)
    runner.send_signal(signal.SIGINT)
    runner.wait(timeout=600)
    with open(journal, "a") as f:
        f.write('{"key": "half a line\n\n[1, 2]\n')
    mark.unlink()
    resumed = ctbench(argv, env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "damaged line skipped" in resumed.stdout and "1 of 2 cases already done" in resumed.stdout
    assert [c["status"] for c in run_file(out)["cases"]] == ["ok", "ok"]


def test_an_empty_journal_is_started_again(tmp_path, env):
    out = tmp_path / "out"
    first = ctbench(args(out, "direct"), env)
    assert first.returncode == 0
    (out / ".partial").mkdir()
    for path in out.glob("*.json"):
        path.unlink()
    key = json.loads(first.stdout.split("run file: ")[1].split(".json")[0].rsplit("-", 1)[1].join(['"', '"']))
    (out / ".partial" / f"{key}.jsonl").write_text("")
    again = ctbench(args(out, "direct"), env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert run_file(out)["cases"][0]["status"] == "ok"


@pytest.mark.parametrize(
    "flag, message",
    [
        (("--timeout", "0"), "expected a finite number of seconds > 0"),
        (("--timeout", "nan"), "expected a finite number of seconds > 0"),
        (("--timeout", "-1"), "expected a finite number of seconds > 0"),
        (("--threads", "-3"), "expected an integer >= 1 or auto"),
        (("--seed", "-1"), "seeds are integers in [0, 2^32)"),
        (("--seed", str(2**32)), "seeds are integers in [0, 2^32)"),
        (("--param", "n=-5"), "n=-5 must be positive"),
        (("--param", "n=abc"), "n takes numbers"),
        (("--param", "n=2.5"), "n=2.5 must be an integer"),
        (("--max-memory", "lots"), "expected a size like 8G"),
    ],
)
def test_bad_flags_are_usage_errors_before_anything_runs(tmp_path, env, flag, message):
    out = tmp_path / "out"
    done = ctbench(["run", "--task", "tiny", "--out", str(out), *flag], env, timeout=300)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_what_a_case_says_of_where_it_ran_is_the_runners_to_say(tmp_path, env):
    out = tmp_path / "out"
    done = ctbench(args(out, "direct", f"{env['HOSTILE']}:ClaimsAnotherMachine", extra=("--sandbox", "off")), env)
    assert done.returncode == 0, done.stdout + done.stderr
    cases = {c["impl"]: c for c in run_file(out)["cases"]}
    assert cases["claims"]["hardware"] == cases["direct"]["hardware"] != "NVIDIA H200 (141 GiB)"
    assert cases["claims"]["expected_invalid"] is None


def test_a_malformed_record_is_refused_and_the_run_file_still_written(tmp_path, env):
    out = tmp_path / "out"
    done = ctbench(args(out, "direct", f"{env['HOSTILE']}:Malformed", extra=("--sandbox", "off")), env)
    assert done.returncode == 1, done.stdout + done.stderr
    cases = {c["impl"]: c for c in run_file(out)["cases"]}
    assert cases["direct"]["status"] == "ok"
    assert cases["malformed"]["status"] == "failed" and "record.series.curve" in cases["malformed"]["error"]


def test_repeated_cases_run_once_and_a_spent_budget_is_recorded_not_journalled(tmp_path, env):
    out = tmp_path / "out"
    argv = [
        "run",
        "--task",
        "tiny",
        "--param",
        "n=8,8,16",
        "--seed",
        "0",
        "--seed",
        "0",
        "--out",
        str(out),
        "--no-report",
        "--max-run-time",
        "0.001",
        "--timeout",
        "600",
    ]  # fmt: skip  (no timeout under load)
    done = ctbench(argv, env, timeout=900)
    assert done.returncode == 1, done.stdout + done.stderr
    cases = run_file(out)["cases"]
    assert [c["params"]["n"] for c in cases] == [8, 16]
    assert cases[0]["status"] == "ok" and cases[1]["error"].startswith("not run: the run's time budget")
    assert not (out / ".partial").exists()


def test_the_run_key_changes_with_the_settings():
    from ctbench.run.cases import run_key

    assert run_key([], {"device": "cpu"}) != run_key([], {"device": "cuda"}) and run_key([], {}) == run_key([])
