"""Adding a task is adding two folders: the template task of ``suites/README.md`` (``tests/template``: one
``suites/tiny`` and one ``reference_impls/tiny``), put in a temporary root named by ``CTBENCH_PATH``, runs through
``ctbench run``, ``show`` and ``report``, the generic pytest-benchmark module and the generic asv module, with no
edit of the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory, tiny_task) -> dict[str, str]:
    return tiny_task(tmp_path_factory.mktemp("tasks"), tmp_path_factory.mktemp("cache"))


def ctbench(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ctbench_cli", *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_the_template_task_runs_shows_and_reports(tmp_path, tiny_env):
    out = tmp_path / "out"
    elsewhere = tmp_path / "report" / "site" / "index.html"  # where every run wrote its report, whatever its --out
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_text("the report of another run")
    ran = ctbench(["run", "--task", "tiny", "--out", str(out)], tiny_env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (path,) = out.glob("*.json")
    report = out / f"{path.stem}-report" / "index.html"  # the run's own report, beside its run file
    last = ran.stdout.rstrip().splitlines()[-1]
    assert last.startswith("report: ") and Path(last.removeprefix("report: ")).resolve() == report.resolve(), last
    assert path.stem in report.read_text() and (report.parent / "task-tiny.html").is_file()
    assert elsewhere.read_text() == "the report of another run"
    doc = json.loads(path.read_text())
    assert doc["tasks"]["tiny"]["metrics"]["throughput_solves_s"]["unit"] == "solves/s"
    for case in doc["cases"]:
        assert case["status"] == "ok"
        assert {"residual", "step_time_s", "step_peak_memory_bytes", "throughput_solves_s", "setup_time_s"} <= set(
            case["metrics"]
        )
        assert case["threads"] == 1 and case["process"]["default_dtype"] == "float32"
    assert [(c["name"], c["passed"]) for c in doc["checks"]] == [("solved_at_every_n", True)]
    shown = ctbench(["show", str(out)], tiny_env)
    assert shown.returncode == 0 and "tiny" in shown.stdout and "direct" in shown.stdout
    reported = ctbench(["report", str(out), "-o", str(tmp_path / "site2")], tiny_env)
    assert reported.returncode == 0, reported.stderr
    page = (tmp_path / "site2" / "task-tiny.html").read_text()
    assert "one solve of A x = b" in page and '<img src="plots/tiny-time_vs_n' in page
    runs = (tmp_path / "site2" / "index.html").read_text().split('<section id="runs">')[1]
    assert f"<code>{path.stem}</code>" in runs and f'<td class="num">{len(doc["cases"])}</td>' in runs


def test_the_generic_pytest_benchmark_module_times_the_new_task(tmp_path, tiny_env):
    result = tmp_path / "bench.json"
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "tests" / "test_bench.py")]
    args += ["-k", "tiny", f"--benchmark-json={result}"]
    done = subprocess.run([sys.executable, *args], env=tiny_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    names = [b["name"] for b in json.loads(result.read_text())["benchmarks"]]
    assert names == ["test_step[tiny:direct[n=8]]"]


def test_the_generic_asv_module_times_the_new_task(tmp_path, tiny_env):
    conf = json.loads((REPO / "asv.conf.json").read_text())
    conf.update(repo=str(REPO), benchmark_dir=str(REPO / "benchmarks"), results_dir=str(tmp_path / "results"))
    conf.update(env_dir=str(tmp_path / "env"), html_dir=str(tmp_path / "html"))
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    env = {**tiny_env, "HOME": str(tmp_path), "CTBENCH_TASKS": "tiny"}
    asv = [sys.executable, "-m", "asv"]
    common = ["--config", str(tmp_path / "asv.conf.json")]
    subprocess.run([*asv, "machine", "--yes", "--machine", "ci", *common], env=env, capture_output=True, timeout=120)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    args = ["run", "--quick", "-E", f"existing:{sys.executable}", "--bench", "bench_tasks.Step", "--machine", "ci"]
    done = subprocess.run(
        [*asv, *args, "--set-commit-hash", commit, *common], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = (tmp_path / "results" / "ci").glob(f"{commit[:8]}*.json")
    results = json.loads(result.read_text())["results"]
    assert set(results) == {"bench_tasks.Step.peakmem_step", "bench_tasks.Step.time_step"}
    assert all(r[0] == [r[0][0]] and r[0][0] is not None for r in results.values())  # tiny's one case measured


def test_a_check_no_claim_declares_is_recorded_failed(tmp_path, tiny_task):
    """A case check and a run check the task does not declare (no claim, no control): both recorded failed, and the
    run exits 1 (they are a reference's)."""
    template = REPO / "tests" / "template" / "suites" / "tiny"
    protocol = (
        (template / "protocol.py")
        .read_text()
        .replace('checks = {"solved":', 'checks = {"undeclared_case": Check.at_most(0.0, 1.0), "solved":')
    )
    task = (
        (template / "task.py")
        .read_text()
        .replace(
            "        return checks\n",
            '        return [*checks, RunCheck(self.name, "undeclared_run", Check.at_most(0.0, 1.0))]\n',
        )
    )
    assert "undeclared_case" in protocol and "undeclared_run" in task
    env = tiny_task(
        tmp_path / "tasks", tmp_path / "cache", {"suites/tiny/protocol.py": protocol, "suites/tiny/task.py": task}
    )
    ran = ctbench(["run", "--task", "tiny", "--param", "n=8", "--out", str(tmp_path / "out"), "--no-report"], env)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    (path,) = (tmp_path / "out").glob("*.json")
    doc = json.loads(path.read_text())
    (case,) = doc["cases"]
    assert case["checks"]["solved"]["passed"] is True
    assert case["checks"]["undeclared_case"]["passed"] is False
    assert case["checks"]["undeclared_case"]["description"].startswith("undeclared check")
    (run_check,) = [c for c in doc["checks"] if c["name"] == "undeclared_run"]
    assert run_check["passed"] is False and run_check["description"].startswith("undeclared check")
