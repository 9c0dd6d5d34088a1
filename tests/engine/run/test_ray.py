"""The Ray executor on Ray's own multi-node simulator (``ray.cluster_utils.Cluster``), every node on 127.0.0.1: a
grid runs across nodes and matches the local executor case for case; a node lost mid-case costs a retry, never a
case; an interrupted driver resumes; an address where nothing listens is a usage error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402
from runfiles import interruptible  # noqa: E402

SLOW = '''
import os, time
from pathlib import Path
import torch
from ctbench import Manifest
from suites.tiny.interface import Solver


class Slow(Solver):
    """Says it is running (``<marker>.running``), then sleeps while the marker file exists."""
    manifest = Manifest(name="slow")

    def solve(self, a, b):
        Path(os.environ["CTBENCH_TEST_SLOW_MARK"] + ".running").touch()
        while Path(os.environ["CTBENCH_TEST_SLOW_MARK"]).exists():
            time.sleep(0.1)
        return torch.linalg.solve(a, b)
'''


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory, tiny_task) -> dict[str, str]:
    return tiny_task(tmp_path_factory.mktemp("tasks"), tmp_path_factory.mktemp("cache"), {"slow.py": SLOW})


@pytest.fixture(scope="module")
def roots(tiny_env) -> Path:
    return Path(tiny_env["CTBENCH_PATH"])


@pytest.fixture(scope="module")
def cluster(roots, tmp_path_factory):
    """A head node that runs no case and two one-CPU worker nodes, all on the loopback."""
    saved = os.environ.get("CTBENCH_PATH")
    os.environ["CTBENCH_PATH"] = str(roots)  # inherited by the nodes' workers
    try:
        loopback = {"node_ip_address": "127.0.0.1", "include_dashboard": False}
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **loopback})
        workers = [cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(2)]
        yield cluster, workers
        cluster.shutdown()
    finally:  # the template task must not leak into the tests that run after this module
        if saved is None:
            os.environ.pop("CTBENCH_PATH", None)
        else:
            os.environ["CTBENCH_PATH"] = saved


def env_for(tiny_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The template task's environment with this test's own cache and marker file."""
    return {**tiny_env, "CTBENCH_CACHE": str(tmp_path / "cache"), "CTBENCH_TEST_SLOW_MARK": str(tmp_path / "slow")}


def run_args(out: Path, *extra: str) -> list[str]:
    return ["run", "--task", "tiny", "--param", "n=8,16,32", "--seed", "0", "--seed", "1", "--out", str(out),
            "--no-report", *extra]  # fmt: skip


def ctbench(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ctbench_cli", *argv], env=env, capture_output=True, text=True, timeout=600
    )


def run_file(out: Path) -> dict:
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())


def test_a_grid_on_two_nodes_matches_the_local_run(tmp_path, tiny_env, cluster):
    env = env_for(tiny_env, tmp_path)
    local = ctbench(run_args(tmp_path / "local"), env)
    assert local.returncode == 0, local.stderr
    spread = ctbench(run_args(tmp_path / "ray", "--executor", "ray", "--ray-address", cluster[0].address), env)
    assert spread.returncode == 0, spread.stdout + spread.stderr
    by_ray, by_local = run_file(tmp_path / "ray"), run_file(tmp_path / "local")
    identity = ("task", "impl", "submission", "scale", "params", "seed", "status", "dataset")
    assert [{k: c[k] for k in identity} for c in by_ray["cases"]] == [
        {k: c[k] for k in identity} for c in by_local["cases"]
    ]
    assert all(c["host"] and c["hardware"] and c["beside"] == 0 for c in by_ray["cases"])
    assert len({c["node_id"] for c in by_ray["cases"]}) == 2, "the cases ran on both worker nodes"
    assert by_ray["settings"]["executor"] == "ray" and by_ray["nodes"]


def test_an_unreachable_address_is_a_usage_error(tmp_path, tiny_env):
    done = ctbench(
        run_args(tmp_path / "out", "--executor", "ray", "--ray-address", "127.0.0.1:9"), env_for(tiny_env, tmp_path)
    )
    assert done.returncode == 2 and "nothing answers there" in done.stderr
    assert not (tmp_path / "out").exists()


def _driver(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ctbench_cli", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, preexec_fn=interruptible,
    )  # fmt: skip


def _until(proc: subprocess.Popen, text: str, lines: list[str], deadline: float = 600) -> str:
    end = time.time() + deadline
    while time.time() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return line
    raise AssertionError(f"never saw {text!r}:\n{''.join(lines)}")


def test_an_interrupted_driver_resumes(tmp_path, roots, tiny_env, cluster):
    env = env_for(tiny_env, tmp_path)
    Path(env["CTBENCH_TEST_SLOW_MARK"]).touch()
    argv = ["run", "--task", "tiny", "--param", "n=8", "--out", str(tmp_path / "out"), "--no-report",
            "--executor", "ray", "--ray-address", cluster[0].address, "--impl", "direct",
            "--impl", f"{roots / 'slow.py'}:Slow", "--sandbox", "off"]  # fmt: skip
    driver, lines = _driver(argv, env), []
    _until(driver, "tiny/direct [smoke n=8 seed=0]: ok", lines)
    driver.send_signal(signal.SIGINT)
    driver.wait(timeout=600)
    Path(env["CTBENCH_TEST_SLOW_MARK"]).unlink()
    again = ctbench(argv, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 of 2 cases already done" in again.stdout
    assert [c["status"] for c in run_file(tmp_path / "out")["cases"]] == ["ok", "ok"]


def test_a_node_lost_mid_case_costs_a_retry_not_a_case(tmp_path, roots, tiny_env, cluster):
    head, workers = cluster
    env = env_for(tiny_env, tmp_path)
    Path(env["CTBENCH_TEST_SLOW_MARK"]).touch()
    argv = ["run", "--task", "tiny", "--param", "n=8", "--out", str(tmp_path / "out"), "--no-report",
            "--executor", "ray", "--ray-address", head.address, "--impl", "direct",
            "--impl", f"{roots / 'slow.py'}:Slow", "--sandbox", "off"]  # fmt: skip
    driver, lines = _driver(argv, env), []
    placed = _until(driver, "tiny/slow", lines)
    prefix = placed.rsplit("node ", 1)[1].strip()
    running, end = Path(env["CTBENCH_TEST_SLOW_MARK"] + ".running"), time.time() + 600
    while not running.exists() and time.time() < end:  # the slow case is running on that node
        time.sleep(0.2)
    assert running.exists(), "the slow case never started"
    (victim,) = [w for w in workers if w.node_id.startswith(prefix)]
    head.remove_node(victim, allow_graceful=False)
    _until(driver, "retrying elsewhere", lines)
    Path(env["CTBENCH_TEST_SLOW_MARK"]).unlink()
    assert driver.wait(timeout=900) == 0, "".join(lines) + driver.stdout.read()
    cases = run_file(tmp_path / "out")["cases"]
    assert [(c["impl"], c["status"]) for c in cases] == [("direct", "ok"), ("slow", "ok")]
    assert cases[1]["node_id"] != victim.node_id


@pytest.mark.parametrize("driver_value", [None, "3"])
def test_a_case_on_a_ray_node_gets_the_drivers_thread_variables(monkeypatch, driver_value):
    """Ray sets OMP_NUM_THREADS=1 in a worker whose task asks no CPU (a GPU case); the case's process must see the
    driver's value instead (unset, or what the driver set), so that torch's default thread count is the same as in a
    local run."""
    from ctbench.run import ray_executor

    for name in ray_executor.THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    if driver_value is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", driver_value)
    forwarded = ray_executor._forwarded_env()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray puts in its worker
    monkeypatch.setenv(ray_executor.THREAD_ENV, forwarded[ray_executor.THREAD_ENV])
    ray_executor.restore_thread_env()
    assert os.environ.get("OMP_NUM_THREADS") == driver_value
    assert "MKL_NUM_THREADS" not in os.environ
