"""``scripts/gpu_check.sh`` and its summary (``ctbench_cli.gpu_summary``), on a CPU: the script says there is no GPU
and exits 0 in seconds; the summary of a synthetic CUDA run states the calibration, the memory ratios,
the energy and the failed checks; and a rehearsal runs the script's whole logic on a CPU with the template task."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from ctbench.catalog.registry import description
from ctbench.store.results import SCHEMA, Run
from ctbench_cli import gpu_summary

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
TEMPLATE = REPO / "tests" / "template"
MIB, GIB = 2**20, 2**30


def run_script(out: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), str(out)], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_script_says_so_and_exits_0_before_running_anything(tmp_path):
    """The timeouts guard against a hang only: a loaded machine may take its time."""
    env = {**os.environ, "PYTHON": sys.executable}
    done = run_script(tmp_path / "out", env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no GPU here" in done.stdout and "sees no CUDA device" in done.stdout
    assert not (tmp_path / "out").exists()  # nothing written
    missing = run_script(tmp_path / "out", {**os.environ, "PYTHON": str(tmp_path / "no-python")}, timeout=600)
    assert missing.returncode == 0 and "cannot import torch" in missing.stdout


def _case(task: str, impl: str, params: dict, status: str = "ok", **metrics: float) -> dict:
    return {
        "task": task,
        "impl": impl,
        "submission": "reference",
        "scale": "gpu-smoke",
        "params": params,
        "seed": 0,
        "dataset": "synthetic",
        "status": status,
        "metrics": metrics,
        "checks": {},
        "duration_s": 2.0,
        "device": "cuda",
        "error": "not run: the run's time budget of 360 s was spent" if status == "timeout" else None,
    }


def _mem(nbytes: float, time_s: float = 0.01, energy_j: float = 1.5) -> dict[str, float]:
    used = nbytes + 600 * MIB
    return dict(step_peak_memory_bytes=nbytes, step_time_s=time_s, step_energy_j=energy_j, device_used_bytes=used)


def synthetic_cuda_run(out: Path) -> None:
    """A calibration and a run file with what a CUDA run records: energy, NVML's used bytes, the GPU's facts."""
    reading = dict(device="cuda:0", ratio=1.0, tolerance=0.01, source="cuda_allocator", energy_j_per_step=0.02)
    calibration = [
        dict(reading, allocated_bytes=n * MIB, measured_bytes=n * MIB, nvml_delta_bytes=(n + 2) * MIB, passed=True)
        for n in (64, 256)
    ]
    out.mkdir(parents=True)
    (out / "calibration.json").write_text(json.dumps(calibration))
    memory = {"backprop": {8: 0.25 * GIB, 1024: 32 * GIB}, "adjoint_euler": {8: 0.8 * GIB, 1024: 0.8 * GIB}}
    adjoint = [
        _case("adjoint_resnet", impl, {"depth": d}, **_mem(m))
        for impl, by_depth in memory.items()
        for d, m in by_depth.items()
    ]
    adjoint.append(_case("adjoint_resnet", "adjoint_heun", {"depth": 1024}, "failed", step_time_s=1.0))
    adjoint[-1]["error"] = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\nTraceback..."
    phases = {"ift": dict(epoch_time_s=6.0, backward_time_s=0.02), "jfb": dict(epoch_time_s=2.5, backward_time_s=0.004)}
    jfb = [
        _case("implicit_jfb", "ift", {"solver": "anderson", "tol": 0.01}, **_mem(300 * MIB, 0.03), **phases["ift"]),
        _case("implicit_jfb", "jfb", {"solver": "anderson", "tol": 0.01}, **_mem(100 * MIB), **phases["jfb"]),
        _case("implicit_jfb", "jfb", {"solver": "fixed_point", "tol": 0.01}, "timeout"),
    ]
    clocks = {"sm_mhz": 1980, "memory_mhz": 3201, "sm_max_mhz": 1980, "memory_max_mhz": 3201}
    gpu = dict(index=0, name="NVIDIA H200", driver="580.95", memory_bytes=143771336704, power_limit_w=700.0)
    gpu |= dict(compute_capability="9.0", clocks=clocks, other_processes=[])
    doc = {
        "schema": SCHEMA,
        "run_id": "20261201T000000Z-000000000000",
        "created": "2026-12-01T00:00:00+00:00",
        "env": {"torch": "2.11.0+cu130", "cuda": "13.0", "cuda_runtime": "13.0", "gpus": [gpu], "python": "3.12.3"},
        "settings": {"device": "cuda", "left_out": ["iresnet/freia_iresnet: needs FrEIA, which is not installed"]},
        "cases": adjoint + jfb,  # no iresnet at all
        "tasks": {name: description(name) for name in ("adjoint_resnet", "implicit_jfb", "iresnet")},
        "checks": [
            dict(task="adjoint_resnet", name="memory_flat_in_depth", scope={"impl": "backprop"}, value=127.0)
            | dict(threshold=0.15, passed=False, description="step memory growth")
        ],
    }
    Run(doc).write(out / "runs")


def test_the_summary_states_calibration_ratios_energy_and_failures(tmp_path, capsys):
    out = tmp_path / "out"
    synthetic_cuda_run(out)
    assert gpu_summary.main([str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == (out / "summary.txt").read_text()
    lines = printed.splitlines()
    assert len(lines) < 60
    # calibration, with NVML's view and the energy per step
    assert "calibration cuda:0: 64.0 MiB allocated -> 64.0 MiB measured (cuda_allocator, ratio 1.0000" in printed
    assert "ratio 1.0000 within 1%, NVML +66.0 MiB" in printed
    assert "NVML +66.0 MiB, 20.0 mJ/step): ok" in printed
    # the GPU's facts
    assert "GPU 0: NVIDIA H200, 133.90 GiB, driver 580.95, compute capability 9.0, power limit 700 W" in printed
    assert "clocks: SM 1980/1980 MHz, memory 3201/3201 MHz (now/max); other processes: none" in printed
    assert "left out: iresnet/freia_iresnet" in printed
    # the ratios: at the deepest depth both finished, with the growth in GiB; IFT / JFB; iresnet not measured
    assert "backprop / adjoint_euler at depth=1024: 40.00x (32.00 GiB / 819.2 MiB)" in printed
    assert "backprop: 256.0 MiB at depth=8 -> 32.00 GiB at depth=1024 (+31.75 GiB)" in printed
    assert "backprop / adjoint_heun: not measured (no point where both finished ok)" in printed
    # IFT / JFB: the training step and epoch first, the backward alone beside them, then memory, each in its unit
    jfb = [line.split(": ", 1)[1] for line in lines if "(implicit_jfb): ift / jfb" in line]
    assert jfb == [
        "ift / jfb at solver=anderson: 3.00x (30.0 ms / 10.0 ms)",
        "ift / jfb at solver=anderson: 2.40x (6.00 s / 2.50 s)",
        "ift / jfb at solver=anderson: 5.00x (20.0 ms / 4.0 ms)",
        "ift / jfb at solver=anderson: 3.00x (300.0 MiB / 100.0 MiB)",
    ]
    assert "IFT vs JFB, training step time (implicit_jfb): ift / jfb" in printed
    assert "i-ResNet truncated series vs Residual Flows (iresnet): not measured (no case of iresnet" in printed
    # statuses (a case never started is "not run", not a timeout), failed checks, the table's energy column
    assert "adjoint_resnet: 4 ok, 1 failed" in printed and "implicit_jfb: 2 ok, 1 not run" in printed
    assert "FAILED run check adjoint_resnet/memory_flat_in_depth [impl=backprop]: value 127.0" in printed
    assert "failed: adjoint_resnet/adjoint_heun [depth=1024]: torch.OutOfMemoryError: CUDA out of memory." in printed
    row = next(line for line in lines if line.strip().startswith("backprop") and "depth=1024" in line)
    assert row.split() == ["backprop", "depth=1024", "ok", "10.0", "ms", "32.00", "GiB", "1.50", "J"]
    doc = json.loads((out / "summary.json").read_text())
    assert doc["calibration_passed"] is True and doc["gpus"][0]["name"] == "NVIDIA H200"
    assert {(r["impl"], r["against"], r["metric"]): r["value"] for r in doc["ratios"]} == {
        ("backprop", "adjoint_euler", "step_peak_memory_bytes"): pytest.approx(40.0),
        ("ift", "jfb", "step_time_s"): pytest.approx(3.0),
        ("ift", "jfb", "epoch_time_s"): pytest.approx(2.4),
        ("ift", "jfb", "backward_time_s"): pytest.approx(5.0),
        ("ift", "jfb", "step_peak_memory_bytes"): pytest.approx(3.0),
    }
    assert doc["statuses"]["implicit_jfb"] == {"ok": 2, "not run": 1}
    assert doc["tasks"]["adjoint_resnet"][0]["step_energy_j"] == 1.5


def test_the_summary_of_an_empty_folder_says_what_is_missing(tmp_path, capsys):
    assert gpu_summary.main([str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert "run file: none" in printed and "calibration: not run (no readable calibration.json)" in printed
    assert (
        "headline ratios (each task's own; the same point, both cases ok):\n  none: no task of the run declares one"
        in printed
    )


def _fake_wheel(folder: Path, name: str) -> None:
    """A pure-Python wheel of one empty package ``name`` (what .gpu_wheels holds, in miniature)."""
    folder.mkdir()
    info = f"{name}-0.0.1.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-0.0.1-py3-none-any.whl", "w") as z:
        for path, text in files.items():
            z.writestr(path, text)


def test_a_cpu_rehearsal_runs_the_whole_script(tmp_path):
    """The script's logic end to end on a CPU: peer wheels installed without a network, calibration, one case of
    the template task under the run's time budget, the run file and the summary in OUT_DIR, exit 0."""
    root = tmp_path / "tasks"
    shutil.copytree(TEMPLATE, root)
    _fake_wheel(tmp_path / "wheels", "normflows")
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "CTBENCH_PATH": str(root),
        "GPU_CHECK_DEVICE": "cpu",
        "GPU_CHECK_SCALE": "smoke",
        "GPU_CHECK_TASKS": "tiny",
        "GPU_CHECK_RUN_ARGS": "--param n=8",
        "GPU_CHECK_WHEELS": str(tmp_path / "wheels"),
        "TMPDIR": str(tmp_path),
    }
    out = tmp_path / "out"
    done = run_script(out, env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "peer normflows: " + str(tmp_path) in done.stdout  # the wheel's copy comes first on PYTHONPATH
    assert "calibration cpu: 256.0 MiB allocated" in done.stdout and "gpu_check: PASSED" in done.stdout
    (run_file,) = (out / "runs").glob("*.json")
    run = json.loads(run_file.read_text())
    assert [(c["task"], c["params"], c["status"]) for c in run["cases"]] == [("tiny", {"n": 8}, "ok")]
    assert {p.name for p in out.iterdir()} == {"calibration.json", "runs", "run.log", "summary.txt", "summary.json"}
    assert "tiny: 1 ok" in (out / "summary.txt").read_text()
    assert not list(tmp_path.glob("gpu_check.*"))  # the temporary folder (cache, peers) is removed


def test_gan_ntk_gpu_smoke_is_a_short_subset_of_small():
    from ctbench.catalog.registry import get_task

    task = get_task("gan_ntk")
    gpu, small = task.scales["gpu-smoke"], task.scales["small"]
    for axis, values in gpu.grid.items():
        assert set(values) <= set(small.grid[axis]), axis
    assert {k: v for k, v in gpu.config.items() if k not in ("iterations", "eval_every", "per_dataset")} == {
        k: v for k, v in small.config.items() if k not in ("iterations", "eval_every", "per_dataset")
    }
    assert gpu.config["iterations"] < small.config["iterations"]
    refs = ("finite_width", "ipm", "lsgan", "vanilla")
    run = [(i, p) for i in refs for p in gpu.param_sets() if task.skip(i, gpu, p) is None]
    assert {i for i, p in run if p["experiment"] == "dynamics"} == set(refs)
    assert len([p for _, p in run if p["experiment"] == "ntk_accuracy"]) == 3  # the slope check needs three widths
    assert len(run) == 7 and gpu.timeout_s <= 60
