"""The engine owns measurement and process state: one measured step for every task, names from the engine,
phases declared, process state set by the worker and guarded, shared sweep helpers, atomic caches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ctbench import Metric, Phase, Step
from ctbench.api.cache import cached, key
from ctbench.api.measure import Memory, Meter, StepStats, Timing
from ctbench.api.sweeps import flat, grows, loglog_slope, ratio, settings, slope, sweeps
from ctbench.catalog.describe import all_metrics, engine_metrics
from ctbench.run import process

REPO = Path(__file__).resolve().parents[3]
CPU = torch.device("cpu")

SUBMISSIONS = """
import torch
from ctbench import Manifest
from suites.tiny.interface import Solver

class ChangesThreads(Solver):
    manifest = Manifest(name="changes_threads")
    def solve(self, a, b):
        torch.set_num_threads(2)
        return torch.linalg.solve(a, b)

class Diverges(Solver):
    manifest = Manifest(name="diverges")
    def solve(self, a, b):
        return 1e3 * b
"""


def record(impl: str, n: int, **metrics: float) -> dict:
    spread = {k[:-7]: v for k, v in metrics.items() if k.endswith("_spread")}
    metrics = {k: v for k, v in metrics.items() if not k.endswith("_spread")}
    return {"impl": impl, "status": "ok", "scale": "smoke", "dataset": "d", "seed": 0, "params": {"n": n},
            "metrics": metrics, "spread": spread}  # fmt: skip


def test_step_metrics_have_engine_names_and_derived_spreads():
    stats = StepStats(Timing((0.1, 0.2, 0.4)), Memory(5000, 1000, "cpu_rss_hwm", spread_bytes=300))
    metrics, spread = stats.metrics({"samples": 10})
    assert metrics == {"step_time_s": 0.2, "step_peak_memory_bytes": 4000.0, "throughput_samples_s": 50.0}
    assert spread["step_peak_memory_bytes"] == 300 and spread["throughput_samples_s"] == pytest.approx(37.5)
    assert "step_energy_j" not in metrics, "no energy counter: the metric is absent, never zero"


def test_meter_records_declared_phases_and_refuses_others():
    meter = Meter(CPU, {"train": Phase("training")})
    calls = []
    assert meter.phase("train", lambda: calls.append(1) or len(calls), repeat=3, warmup=1, work={"samples": 8}) == 4
    # on a CPU the phase's CPU time is recorded beside its wall time (it is not inflated by waiting for a core)
    assert set(meter.metrics) == {"train_time_s", "train_cpu_time_s", "train_throughput_samples_s"}
    assert len(calls) == 4 and set(meter.spread) >= {"train_time_s", "train_cpu_time_s"}
    with pytest.raises(KeyError, match="not declared"):
        meter.phase("typo", lambda: None)


def test_describe_adds_engine_metrics_and_refuses_redefinitions():
    metrics = engine_metrics(Step("a step", {"samples": "images"}), {"fit": Phase("fitting")})
    assert {"step_time_s", "step_peak_memory_bytes", "throughput_samples_s", "step_energy_j", "fit_time_s"} <= set(
        metrics
    )

    class Clashing:
        name, step, phases = "x", Step("s"), {}
        metrics = {"step_time_s": Metric("s", False, "mine")}

    with pytest.raises(ValueError, match="declares engine metric"):
        all_metrics(Clashing())


def test_process_state_is_applied_and_changes_are_caught():
    with process.applied(process.State(threads=1)) as state:
        process.verify(state, "now")
        torch.set_num_threads(2)
        with pytest.raises(process.StateChanged, match="threads 1 -> 2"):
            process.verify(state, "during the case")
        torch.set_default_dtype(torch.float64)
        with pytest.raises(process.StateChanged, match="default_dtype"):
            process.verify(state, "during the case")
    assert torch.get_default_dtype() == torch.float32


def test_sweep_helpers():
    cases = [record("a", n, t=t, t_spread=0.05) for n, t in ((8, 1.0), (64, 1.1), (512, 1.12))]
    cases += [record("b", n, t=n / 8) for n in (8, 64, 512)] + [{**record("c", 8, t=1.0), "status": "failed"}]
    by_impl = {s.impl: s for s in sweeps(cases, "n")}
    assert set(by_impl) == {"a", "b"} and by_impl["a"].xs == [8, 64, 512]
    assert flat(by_impl["a"], "t", 0.05).passed  # +12% within 5% + the two readings' 10% spread
    assert not flat(by_impl["b"], "t", 0.05).passed
    assert grows(by_impl["b"], "t", 10).passed and not grows(by_impl["a"], "t", 10).passed
    assert slope(by_impl["b"], "t", 1.0, 0.01).passed and loglog_slope([1, 10], [1, 100]) == pytest.approx(2)
    (scope, records), *_ = settings(cases, params=("n",))
    assert scope["n"] == 8 and set(records) == {"a", "b"}
    assert ratio(records, "t", "a", "b", 1.0).value == 1.0 and ratio(records, "t", "a", "zz", 1.0) is None


def test_cached_artefacts_are_built_once_and_written_atomically(tmp_path):
    built = []
    path = tmp_path / "sub" / f"h-{key({'a': 1}, 'data', 0)}.json"
    for _ in range(2):
        assert cached(path, lambda: built.append(1) or {"h": 0.5}) == {"h": 0.5}
    weights = cached(tmp_path / "w.pt", lambda: {"w": torch.ones(3)})
    assert built == [1] and torch.equal(cached(tmp_path / "w.pt", lambda: None)["w"], weights["w"])
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["sub", path.name, "w.pt"])  # no temporary file


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory, tiny_task) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tasks")
    env = tiny_task(root, tmp_path_factory.mktemp("cache"), {"subs.py": SUBMISSIONS})
    return {**env, "SUBS": str(root / "subs.py")}


def test_a_case_that_changes_threads_fails_and_invalid_keeps_its_metrics(tmp_path, tiny_env):
    subs = tiny_env["SUBS"]
    args = ["run", "--task", "tiny", "--param", "n=8", "--out", str(tmp_path), "--no-report", "--threads", "1"]
    args += ["--impl", "direct", "--impl", f"{subs}:ChangesThreads", "--impl", f"{subs}:Diverges"]
    done = subprocess.run([sys.executable, "-m", "ctbench_cli", *args], env=tiny_env, capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    (path,) = tmp_path.glob("*.json")
    cases = {c["impl"]: c for c in json.loads(path.read_text())["cases"]}
    assert cases["direct"]["status"] == "ok" and cases["direct"]["threads"] == 1
    changed = cases["changes_threads"]
    assert changed["status"] == "failed" and "process state changed during the case: threads 1 -> 2" in changed["error"]
    diverged = cases["diverges"]
    assert diverged["status"] == "invalid" and "the solver diverged" in diverged["error"]
    assert diverged["metrics"]["residual"] > 1 and "step_time_s" in diverged["metrics"]  # measured before it stopped


def _imports(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_report_never_imports_a_task_or_the_runner():
    """The report reads run files: no task, no command line, no registry, no case process (the engine's own layers
    are checked in ``tests/engine/test_layers.py``)."""
    for path in (REPO / "report").glob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[0] in ("suites", "reference_impls", "ctbench_cli")}
        bad |= {m for m in _imports(path) if m.startswith(("ctbench.catalog", "ctbench.run"))}
        assert not bad, f"{path} imports {bad}"


def test_no_import_circle_in_any_suite():
    for folder in sorted(p for p in (REPO / "suites").iterdir() if (p / "__init__.py").exists()):
        package = f"suites.{folder.name}"
        graph = {
            f"{package}.{p.stem}": {m for m in _imports(p) if m.startswith(package + ".")}
            for p in folder.glob("*.py")
            if p.stem != "__init__"
        }
        state: dict[str, int] = {}

        def visit(node: str, chain: tuple[str, ...], graph=graph, state=state) -> None:
            if state.get(node) == 1:
                raise AssertionError(f"import circle: {' -> '.join((*chain, node))}")
            if state.get(node) == 2:
                return
            state[node] = 1
            for nxt in graph.get(node, ()):
                visit(nxt, (*chain, node))
            state[node] = 2

        for node in graph:
            visit(node, ())


def test_a_report_renders_a_task_that_is_not_installed(tmp_path, tiny_env):
    """A run file of a task this installation lacks: ranked, with units and plots, from its description alone."""
    out = tmp_path / "out"
    args = ["run", "--task", "tiny", "--out", str(out), "--no-report"]
    done = subprocess.run([sys.executable, "-m", "ctbench_cli", *args], env=tiny_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    env = {k: v for k, v in tiny_env.items() if k != "CTBENCH_PATH"}  # the task is gone
    code = (
        "import sys; from report import build_report; "
        f"b = build_report([{str(out)!r}], {str(tmp_path / 'site')!r}); "
        "assert b.index is not None and not b.problems, b.problems; "
        "assert not [m for m in sys.modules if m.startswith(('suites.', 'reference_impls'))], 'imported a task'"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "site" / "task-tiny.html").read_text()
    assert "plots/tiny-time_vs_n" in page and "solves/s" in page
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'class="rank"' in index and ">direct<" in index  # on its board (alone there: no rank to show)
