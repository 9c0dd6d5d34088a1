"""``examples/``: one small worked submission per task, each run through its task's smoke protocol.

Each example is loaded as a submission is (``ctbench.api.implementation.resolve``: the task's interface checked, a
manifest required, no reference's name taken) and run in-process at the cheapest smoke point of its task through
the same engine as ``ctbench run`` (``ctbench.run.smoke.run_case``): it must complete as ``ok`` would (not invalid,
every metric finite) with every case check passing. One goes through the command line too.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctbench.api.implementation import load_class, reference_impls, resolve
from ctbench.catalog.registry import get_task, tasks
from ctbench.run import smoke

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
# task -> (file:Class, its cheapest smoke point)
CASES = {
    "adjoint_resnet": ("loop_backprop.py:LoopBackprop", {"depth": 8, "activation": "relu"}),
    "bilevel": ("constant_soba.py:ConstantSOBA", {"problem": "quadratic"}),
    "gan_ntk": ("witness.py:Witness", {"experiment": "dynamics", "dataset": "eight_gaussians", "width": None}),
    "implicit_jfb": ("hook_ift.py:HookIFT", {"solver": "fixed_point", "tol": 0.01}),
    "iresnet": (
        "power_series.py:PowerSeries",
        {"experiment": "density_2d", "dataset": "eight_gaussians", "c": 0.9, "terms": 4},
    ),
    "neis": ("wide_gaussian.py:WideGaussian", {"target": "eg1"}),
}


def test_every_task_has_one_example_and_the_readme_names_it():
    assert set(CASES) == set(tasks()) == {p.name for p in EXAMPLES.iterdir() if p.is_dir()}
    readme = (EXAMPLES / "README.md").read_text()
    for task, (spec, _) in CASES.items():
        files = [p.name for p in (EXAMPLES / task).glob("*.py")]
        assert files == [spec.split(":")[0]], f"{task}: one file per example, got {files}"
        assert f"{task}/{spec.split(':')[0]}" in readme


@pytest.mark.parametrize("task", sorted(CASES))
def test_the_example_runs_ok_at_smoke_scale(task, fashion_mnist_root):
    spec, params = CASES[task]
    interface = get_task(task).interface
    (ref,) = resolve(str(EXAMPLES / task / spec), interface)
    assert ref.submission not in {r.name for r in reference_impls(task, interface)}  # not a reference's name
    assert get_task(task).skip(ref.name, get_task(task).scales["smoke"], params) is None
    result = smoke.run_case(task, load_class(ref.spec)(), params, data_root=fashion_mnist_root)
    assert result.invalid_reason is None
    assert result.nonfinite_metrics() == [] and result.metrics
    failed = {name: (c.value, c.threshold) for name, c in result.checks.items() if not c.passed}
    assert failed == {}


def test_an_example_through_ctbench_run(tmp_path):
    spec = str(EXAMPLES / "neis" / CASES["neis"][0])
    args = ["run", "--task", "neis", "--impl", spec, "--skip-references", "--param", "target=eg1", "--seed", "0"]
    args += ["--scale", "smoke", "--out", str(tmp_path / "out"), "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CTBENCH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "ctbench_cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = (tmp_path / "out").glob("*.json")
    (case,) = json.loads(path.read_text())["cases"]
    assert (case["impl"], case["submission"], case["status"]) == ("wide_gaussian", "wide_gaussian", "ok")
    assert math.isfinite(case["metrics"]["rel_var"]) and case["impl_hash"]


def test_each_interface_says_what_it_hands_a_submission_and_points_to_its_example():
    for task in CASES:
        interface = get_task(task).interface
        text = (sys.modules[interface.__module__].__doc__ or "") + (interface.__doc__ or "")
        assert f"examples/{task}/" in text and ("receive" in text or "hands" in text), task
    stage = get_task("adjoint_resnet").interface.__doc__
    for name in ("blocks", "h", "depth", "scheme", "increment(n, x, h)", "step(n, x)"):
        assert f"``{name}``" in stage, name
