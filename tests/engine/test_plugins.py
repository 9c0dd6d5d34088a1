"""Tasks are plugins: a task in its own package, installed with pip and registered in the ``ctbench.tasks``
entry-point group, appears in ``ctbench list`` and runs through ``run``, ``show`` and ``report`` with no edit of
this repository. The package is the template task (``tests/template``) renamed into a package of its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "tests" / "template"
PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "ctbench-tinyplug"
version = "1.0"

[project.entry-points."ctbench.tasks"]
tiny = "tinyplug:TASK"

[tool.setuptools.packages.find]
include = ["tinyplug*"]
"""


def _plugin_source(root: Path) -> Path:
    """The template task as the package ``tinyplug`` (its references in ``tinyplug.references``)."""
    package = root / "tinyplug"
    shutil.copytree(TEMPLATE / "suites" / "tiny", package)
    shutil.copytree(TEMPLATE / "reference_impls" / "tiny", package / "references")
    for path in package.rglob("*.py"):
        path.write_text(path.read_text().replace("suites.tiny", "tinyplug"))
    task = package / "task.py"
    task.write_text(
        task.read_text().replace('    name = "tiny"\n', '    name = "tiny"\n    references = "tinyplug.references"\n')
    )
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    source = _plugin_source(tmp_path_factory.mktemp("src"))
    site = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run([*pip, "--target", str(site), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(site.glob("ctbench_tinyplug-1.0.dist-info/entry_points.txt"))
    env = {k: v for k, v in os.environ.items() if k != "CTBENCH_PATH"}
    cache = tmp_path_factory.mktemp("cache")
    return {**env, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)]), "CTBENCH_CACHE": str(cache)}


def ctbench(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ctbench_cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_an_installed_task_is_listed_and_runs_shows_and_reports(tmp_path, plugin_env):
    listed = ctbench(["list"], plugin_env)
    assert listed.returncode == 0, listed.stderr
    assert "tiny:" in listed.stdout and "adjoint_resnet:" in listed.stdout
    out, site = tmp_path / "out", tmp_path / "site"
    ran = ctbench(["run", "--task", "tiny", "--out", str(out), "--report", str(site)], plugin_env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (path,) = out.glob("*.json")
    assert (site / "index.html").is_file() and not list(out.glob("*-report"))  # --report DIR, not beside the file
    assert ran.stdout.rstrip().splitlines()[-1] == f"report: {site / 'index.html'}"
    doc = json.loads(path.read_text())
    assert {c["impl"] for c in doc["cases"]} == {"direct"} and all(c["status"] == "ok" for c in doc["cases"])
    assert all(c["impl_spec"].startswith("tinyplug.references") for c in doc["cases"])
    shown = ctbench(["show", str(out)], plugin_env)
    assert shown.returncode == 0 and "direct" in shown.stdout, shown.stderr
    reported = ctbench(["report", str(out), "-o", str(tmp_path / "site2")], plugin_env)
    assert reported.returncode == 0, reported.stderr
    assert "one solve of A x = b" in (tmp_path / "site2" / "task-tiny.html").read_text()


def test_without_the_install_the_task_is_unknown(tmp_path):
    """The failing control: the same command with the plugin not installed exits 2 before anything runs."""
    env = {k: v for k, v in os.environ.items() if k != "CTBENCH_PATH"}
    ran = ctbench(["run", "--task", "tiny", "--out", str(tmp_path)], {**env, "PYTHONPATH": str(REPO)})
    assert ran.returncode == 2 and "unknown task 'tiny'" in ran.stderr
    assert not list(tmp_path.glob("*.json"))
