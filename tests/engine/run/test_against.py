"""``ctbench run --impl mine.py:X --against RESULTS``: the submission alone, ranked against stored reference cases.

The matching is tested on records (no task needed); the command on the template task (``tests/template`` in a
temporary ``CTBENCH_PATH`` root, as ``test_template_task.py`` does): what matched and what is missing, the run file
holding only the submission, the stored references on the report and on the terminal, the warnings and banners
when the stored runs come from another machine and commit, and ``--retime-references``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctbench.catalog.registry import description
from ctbench.store.matching import dataset_mismatches, differences, match, not_reusable, point, reused_record

REPO = Path(__file__).resolve().parents[3]
SUBMISSION = """
import torch
from ctbench import Manifest
from suites.tiny.interface import Solver


class Chol(Solver):
    manifest = Manifest(name="chol", authors=("me",))

    def solve(self, a, b):
        return torch.cholesky_solve(b[:, None], torch.linalg.cholesky(a))[:, 0]
"""


def _case(impl: str, n: int, seed: int = 0, submission: str = "reference", **extra) -> dict:
    return {"task": "tiny", "impl": impl, "submission": submission, "scale": "smoke", "params": {"n": n},
            "seed": seed, "dataset": "random-spd", "status": "ok", **extra}  # fmt: skip


def _run(run_id: str, created: str, cases: list[dict], **env) -> dict:
    return {"run_id": run_id, "created": created, "env": {"cpu": "CPU A", "cpu_cores": 2, **env}, "cases": cases}


def test_match_takes_the_newest_stored_case_and_lists_what_is_missing():
    at8, at16 = point("tiny", "smoke", {"n": 8}, 0), point("tiny", "smoke", {"n": 16}, 0)
    old = _run("r1", "2025-01-01", [_case("direct", 8, metrics={"v": 1}), _case("lu", 8)])
    new = _run("r2", "2025-02-01", [_case("direct", 8, metrics={"v": 2}), _case("chol", 8, submission="chol")])
    other = _run("r3", "2025-03-01", [_case("direct", 8, seed=1), _case("direct", 64), _case("peer", 8)])
    m = match({at8: ["direct", "lu"], at16: ["direct"]}, [new, old, other])
    assert m.cases[at8]["peer"][1]["run_id"] == "r3"  # stored, though not installed here: compared all the same
    assert m.cases[at8]["direct"][0]["metrics"] == {"v": 2} and m.cases[at8]["direct"][1]["run_id"] == "r2"
    assert m.cases[at8]["lu"][1]["run_id"] == "r1"  # a submission's stored case never stands in for a reference
    assert m.missing == {at16: ["direct"]}
    assert [r["run_id"] for r in m.runs()] == ["r1", "r2", "r3"]  # (other seeds and points are not matches)
    narrowed = match({at8: ["direct", "lu"], at16: ["direct"]}, [old], only={"lu"})
    assert list(narrowed.cases[at8]) == ["lu"] and narrowed.missing == {}


def test_differences_name_other_hardware_and_other_commits():
    run = _run("r1", "2025-01-01", [], git_commit="a" * 40, git_dirty=False)
    same = [(_case("direct", 8), run)]
    assert differences(same, "a" * 40, "CPU A x2") == []
    on_gpu = [(_case("direct", 8, hardware="GPU Z (80 GiB)"), run)]
    (line,) = differences(on_gpu, "a" * 40, "CPU A x2")
    assert "other hardware (GPU Z (80 GiB))" in line and "CPU A x2" in line and "--retime-references" in line
    (line,) = differences(same, "b" * 40, "CPU A x2")
    assert "commit aaaaaaaaaaaa" in line and "bbbbbbbbbbbb" in line
    dirty = copy.deepcopy(run)
    dirty["env"]["git_dirty"] = True
    (line,) = differences([(_case("direct", 8), dirty)], "a" * 40, "CPU A x2")
    assert "uncommitted changes" in line


def test_a_task_ranked_by_a_whole_run_timing_is_never_carried_over():
    """Carrying a stored reference over re-times its step only: a task whose ranked metrics include another
    machine-dependent number (a time to target) has its references rerun whole. Every task of the suite ranks by
    what carries over or what the step re-measures (bilevel by samples to target, a count)."""
    for task in ("adjoint_resnet", "bilevel", "gan_ntk", "implicit_jfb", "iresnet", "neis"):
        assert not_reusable(description(task)) == [], task
    by_time = copy.deepcopy(description("bilevel"))
    by_time["primary_metric"] = "time_to_target_s"
    assert not_reusable(by_time) == ["time_to_target_s"]
    spec = {"primary_metric": "speedup", "metrics": {"speedup": {"unit": "x", "hardware": True}}}
    assert not_reusable(spec) == ["speedup"]  # a ratio of times says so; its unit alone would not


def test_a_carried_over_record_keeps_quality_and_leaves_out_what_the_machine_measured():
    spec = {"metrics": {"residual": {"unit": ""}, "setup_time_s": {"unit": "s"}, "vs_peer": {"unit": "x",
            "hardware": True}, "step_time_s": {"unit": "s"}}}  # fmt: skip
    stored = _case("direct", 8, metrics={"residual": 1e-7, "setup_time_s": 2.0, "vs_peer": 1.5, "step_time_s": 9.0,
                   "undeclared": 3.0}, spread={"residual": 0.0, "step_time_s": 1.0}, hardware="Old CPU x64",
                   checks={"c": {"value": 1, "threshold": 2, "passed": True}})  # fmt: skip
    run = _run("r1", "2025-01-01T00:00:00+00:00", [stored], git_commit="abc123")
    measured = _case("direct", 8, metrics={"step_time_s": 0.5, "probe_time_s": 0.01}, spread={"step_time_s": 0.1},
                     hardware="CPU B x2", dataset="unknown")  # fmt: skip
    record = reused_record(measured, stored, run, spec)
    assert record["metrics"] == {"residual": 1e-7, "step_time_s": 0.5, "probe_time_s": 0.01}
    assert record["spread"] == {"residual": 0.0, "step_time_s": 0.1}
    assert (
        record["dataset"] == "random-spd" and record["hardware"] == "CPU B x2" and record["checks"] == stored["checks"]
    )
    left_out = ["setup_time_s", "undeclared", "vs_peer"]
    assert record["reused"] == {"run_id": "r1", "commit": "abc123", "hardware": "Old CPU x64",
                                "metrics": ["residual"], "left_out": left_out}  # fmt: skip
    failed = {**measured, "status": "failed", "error": "boom"}
    assert reused_record(failed, stored, run, spec) == failed  # a step that failed here is not dressed as the stored


def test_a_stored_case_on_another_dataset_is_named():
    at8 = point("tiny", "smoke", {"n": 8}, 0)
    stored = _run("r1", "2025-01-01", [_case("direct", 8, dataset="real-spd")])
    m = match({at8: ["direct"]}, [stored])
    (line,) = dataset_mismatches([_case("chol", 8, submission="chol")], m)
    assert "chol ran on random-spd, the stored direct on real-spd" in line


def test_the_report_reads_each_stored_run_once_and_none_when_retimed(tmp_path):
    from ctbench.run.against import Against

    at8 = point("tiny", "smoke", {"n": 8}, 0)
    inside = {**_run("r1", "2025-01-01", [_case("direct", 8)]), "_path": str(tmp_path / "out" / "r1.json")}
    outside = {**_run("r2", "2025-02-01", [_case("lu", 8)]), "_path": str(tmp_path / "refs" / "r2.json")}
    m = match({at8: ["direct", "lu"]}, [inside, outside])
    new = tmp_path / "out" / "r3.json"  # the run's report reads its own file and the stored runs, wherever they are
    assert Against(["x"], m, False, ["chol"], [], []).report_inputs(new) == [inside["_path"], outside["_path"]]
    assert Against(["x"], m, False, ["chol"], [], []).report_inputs(inside["_path"]) == [outside["_path"]]
    assert Against(["x"], m, True, ["chol"], [], []).report_inputs(new) == []


# --- the command, on the template task ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_task) -> dict:
    """The template task in a temporary root, a stored reference run of it (n = 8 and 64), a submission."""
    root = tmp_path_factory.mktemp("against")
    (root / "chol.py").write_text(SUBMISSION)
    env = tiny_task(root / "tasks", root / "cache")
    made = ctbench(["run", "--task", "tiny", "--out", str(root / "refs"), "--no-report"], env)
    assert made.returncode == 0, made.stdout + made.stderr
    return {"root": root, "env": env, "refs": root / "refs", "sub": f"{root / 'chol.py'}:Chol"}


def ctbench(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ctbench_cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _against(tiny: dict, tmp_path: Path, stored: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    args = ["run", "--task", "tiny", "--impl", tiny["sub"], "--against", str(stored), "--out", str(tmp_path / "out")]
    done = ctbench([*args, "--report", str(tmp_path / "site"), *extra], tiny["env"])
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = (tmp_path / "out").glob("*.json")
    return done, json.loads(path.read_text())


def test_against_runs_only_the_submission_and_ranks_it_with_the_stored_references(tiny, tmp_path):
    done, doc = _against(tiny, tmp_path, tiny["refs"], "--param", "n=8,16")
    assert {(c["impl"], c["params"]["n"]) for c in doc["cases"]} == {("chol", 8), ("chol", 16)}
    out = done.stdout
    assert "1 stored reference cases match 1 of the submission's 2 points" in out
    assert "missing stored cases at tiny [smoke n=16 seed=0]: direct" in out
    assert "other hardware" not in out  # the stored run was made here
    board = out[out.index("against: the submission's boards, with the stored references") :]
    assert "direct" in board and "* chol" in board and "n=16" in board  # as `ctbench show` prints them
    page = (tmp_path / "site" / "index.html").read_text()
    assert 'class="banner warn against"' in page and "chol is ranked against 1 stored reference cases" in page
    assert ">direct<" in page and ">chol<" in page  # both rows on the leaderboard
    assert 'class="banner warn against"' in (tmp_path / "site" / "task-tiny.html").read_text()


def test_stored_references_from_another_machine_and_commit_are_said_so(tiny, tmp_path):
    (stored,) = tiny["refs"].glob("*.json")
    doc = json.loads(stored.read_text())
    doc["env"].update(git_commit="0123456789ab" + "0" * 28, git_dirty=False, cpu="Old CPU", gpus=[])
    for case in doc["cases"]:
        case["hardware"] = "Old CPU x64"
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / stored.name).write_text(json.dumps(doc))
    done, run = _against(tiny, tmp_path, tmp_path / "old", "--param", "n=8", "--keep-stored-references")
    assert [c["impl"] for c in run["cases"]] == ["chol"]
    assert "WARNING: against: the stored references ran on other hardware (Old CPU x64)" in done.stdout
    assert "WARNING: against: the stored references ran at commit 0123456789ab" in done.stdout
    page = (tmp_path / "site" / "index.html").read_text()
    assert "Not comparable: the stored references ran on other hardware (Old CPU x64)" in page
    assert "Not comparable: the stored references ran at commit 0123456789ab" in page
    assert "Old CPU x64" in page  # the stored reference's own board


def test_stored_references_from_other_hardware_are_rerun_here_by_default(tiny, tmp_path):
    """The submission lands on a board with the references it is compared with, whatever machine made them."""
    (stored,) = tiny["refs"].glob("*.json")
    doc = json.loads(stored.read_text())
    for case in doc["cases"]:
        case["hardware"] = "Old CPU x64"
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / stored.name).write_text(json.dumps(doc))
    done, run = _against(tiny, tmp_path, tmp_path / "old", "--param", "n=8")
    assert sorted((c["impl"], c["submission"]) for c in run["cases"]) == [("chol", "chol"), ("direct", "reference")]
    assert "they ran on other hardware (Old CPU x64): 1 carried over, their steps timed here" in done.stdout
    assert "WARNING: against: the stored references ran on other hardware" not in done.stdout
    page = (tmp_path / "site" / "index.html").read_text()
    assert "ran on other hardware (Old CPU x64), so that chol shares their boards" in page
    assert f"reused from run {doc['run_id']}" in page
    assert "tiny: residual" in page  # which numbers: the ranked ones by name
    # the reference's quality is the stored one, its step was timed here, on this machine's board
    (stored_case,) = [c for c in doc["cases"] if c["params"]["n"] == 8]
    (ref,) = [c for c in run["cases"] if c["impl"] == "direct"]
    assert ref["metrics"]["residual"] == stored_case["metrics"]["residual"]
    assert ref["reused"]["run_id"] == doc["run_id"] and ref["reused"]["hardware"] == "Old CPU x64"
    assert "residual" in ref["reused"]["metrics"] and "step_time_s" not in ref["reused"]["metrics"]
    assert ref["hardware"] == next(c for c in run["cases"] if c["impl"] == "chol")["hardware"] != "Old CPU x64"
    assert ref["metrics"]["step_time_s"] > 0 and "setup_time_s" not in ref["reused"]["metrics"]
    assert not any(c.get("scope", {}).get("impl") == "direct" for c in run["checks"])  # decided in the stored run


def test_retime_references_reruns_the_matching_references_here(tiny, tmp_path):
    done, doc = _against(tiny, tmp_path, tiny["refs"], "--param", "n=8", "--retime-references")
    assert sorted((c["impl"], c["submission"]) for c in doc["cases"]) == [("chol", "chol"), ("direct", "reference")]
    assert "they are rerun here (--retime-references)" in done.stdout
    page = (tmp_path / "site" / "index.html").read_text()
    assert "were rerun on this machine in the same run (--retime-references)" in page
    (stored,) = tiny["refs"].glob("*.json")
    assert stored.stem not in page  # the stored run is not read: the references' numbers are this run's


def test_against_needs_a_submission_and_retime_needs_against(tmp_path, capsys):
    """Usage errors before anything runs (in-process, on an installed task: they come before any case)."""
    from ctbench_cli.main import main

    example = str(REPO / "examples" / "neis" / "wide_gaussian.py") + ":WideGaussian"
    base = ["run", "--task", "neis", "--scale", "smoke", "--out", str(tmp_path / "out"), "--no-report"]
    assert main([*base, "--impl", "vanilla_is", "--against", str(tmp_path)]) == 2
    assert "--against ranks a submission" in capsys.readouterr().err
    assert main([*base, "--impl", example, "--retime-references"]) == 2
    assert "--retime-references needs --against" in capsys.readouterr().err
    assert main([*base, "--impl", example, "--keep-stored-references"]) == 2
    assert "--keep-stored-references needs --against" in capsys.readouterr().err
    both = ["--against", str(tmp_path), "--retime-references", "--keep-stored-references"]
    assert main([*base, "--impl", example, *both]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main([*base, "--impl", example, "--against", str(tmp_path / "empty")]) == 2
    assert "no readable run file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.browser
def test_the_banners_in_a_browser(tmp_path):
    """The page says where the stored references came from, above everything; a screenshot is kept."""
    from playwright.sync_api import sync_playwright

    from ctbench.run.against import Against
    from report import build_report
    from report.benchmark_build import synthetic_runs

    at8 = point("tiny", "smoke", {"n": 8}, 0)
    stored = _run("20250101T000000Z-stored", "2025-01-01", [_case("direct", 8)], git_commit="a" * 40)
    m = match({at8: ["direct"]}, [stored])
    against = Against(["results/reference"], m, False, ["chol"], [], [], differences(m.pairs(), "b" * 40, "CPU B x8"))
    synthetic_runs(10, tmp_path / "runs")
    build_report([tmp_path / "runs"], tmp_path / "site", **against.report_options())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto((tmp_path / "site" / "index.html").as_uri())
        banners = page.locator("p.banner.against")
        assert banners.count() == 3 and all(banners.nth(i).is_visible() for i in range(3))
        assert "chol is ranked against 1 stored reference cases" in banners.nth(0).inner_text()
        shot = tmp_path / "against-banner.png"
        page.screenshot(path=str(shot))
        browser.close()
    if os.environ.get("CTBENCH_SCREENSHOTS"):
        dest = REPO / ".ci" / "out" / "screenshots"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, dest / shot.name)
