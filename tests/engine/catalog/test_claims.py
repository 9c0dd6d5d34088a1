"""Every check a task records is declared as a claim with a failing control, and every control fails its check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ctbench import Check
from ctbench.api.claims import UNDECLARED, control_outcomes, declared_only
from ctbench.catalog.registry import tasks
from ctbench.store.results import Run

REFERENCE = Path(__file__).resolve().parents[3] / "results" / "reference"
CLAIMS = [(task, claim) for task in tasks().values() for claim in task.claims]


@pytest.mark.parametrize(("task", "claim"), CLAIMS, ids=[f"{t.name}.{c.name}" for t, c in CLAIMS])
def test_every_control_fails_its_check(task, claim):
    outcomes = control_outcomes(claim, task)
    assert outcomes, f"{task.name}.{claim.name}: its control produced no check"
    assert set(outcomes) == {"fail"}, f"{task.name}.{claim.name}: its control gave {outcomes}, not only fail"


@pytest.mark.parametrize("task", list(tasks().values()), ids=list(tasks()))
def test_claims_are_stated_once_with_their_source(task):
    names = [claim.name for claim in task.claims]
    assert len(names) == len(set(names)), names
    for claim in task.claims:
        assert claim.statement and claim.source and claim.over in ("case", "run"), claim
        assert (claim.control.__doc__ or "").strip(), f"{task.name}.{claim.name}: its control says not what it breaks"


def test_every_check_of_the_reference_runs_is_declared():
    """The checks the stored reference runs recorded, case by case and across cases, each have a claim."""
    declared = {(task.name, claim.name) for task in tasks().values() for claim in task.claims}
    seen: set[tuple[str, str]] = set()
    for path in sorted(REFERENCE.glob("*.json")):
        run = Run.load(path)
        seen |= {(c["task"], name) for c in run["cases"] for name in c.get("checks", {})}
        seen |= {(c["task"], c["name"]) for c in run.get("checks", [])}
    assert seen, "no reference run to read"
    assert sorted(seen - declared) == []


def test_an_undeclared_check_is_recorded_failed():
    checks = {"known": Check.at_most(1.0, 2.0), "unknown": Check.at_most(1.0, 2.0, "ratio")}
    kept = declared_only(["known"], checks)
    assert kept["known"].passed is True
    assert kept["unknown"].passed is False and kept["unknown"].description.startswith(UNDECLARED)


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ctbench_cli", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_list_checks_names_claim_and_control(cli_env):
    listed = json.loads(run_cli(cli_env, "list", "--checks", "--format", "json"))
    assert {(c["task"], c["name"]) for c in listed} == {(t.name, c.name) for t, c in CLAIMS}
    for item in listed:
        assert {"task", "name", "claim", "source", "control"} <= item.keys() and all(item.values()), item
    text = run_cli(cli_env, "list", "--checks")
    assert all(f"{t.name}.{c.name} " in text for t, c in CLAIMS)
