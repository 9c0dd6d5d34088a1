"""The environment record: which machine and software a run's numbers came from."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil
import torch

from ctbench.machine import nvml

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_record(nv: Any, index: int, driver: str) -> dict[str, Any]:
    """What makes two GPUs' numbers comparable: model, memory, driver, compute capability, clocks, power limit,
    and whether another process was using the GPU when the run started."""
    h = nv.nvmlDeviceGetHandleByIndex(index)

    def get(reader: Any, *args: Any) -> Any:
        try:
            return reader(h, *args)
        except Exception:  # a query this GPU or driver does not support
            return None

    clocks = {
        "sm_mhz": get(nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_SM),
        "memory_mhz": get(nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_MEM),
        "sm_max_mhz": get(nv.nvmlDeviceGetMaxClockInfo, nv.NVML_CLOCK_SM),
        "memory_max_mhz": get(nv.nvmlDeviceGetMaxClockInfo, nv.NVML_CLOCK_MEM),
    }
    capability = get(nv.nvmlDeviceGetCudaComputeCapability)
    power = get(nv.nvmlDeviceGetEnforcedPowerLimit)
    processes = get(nv.nvmlDeviceGetComputeRunningProcesses) or []
    return {
        "index": index,
        "name": nvml.text(nv.nvmlDeviceGetName(h)),
        "uuid": nvml.text(get(nv.nvmlDeviceGetUUID) or ""),
        "driver": driver,
        "memory_bytes": int(nv.nvmlDeviceGetMemoryInfo(h).total),
        "compute_capability": ".".join(map(str, capability)) if capability else None,
        "clocks": clocks,
        "power_limit_w": power / 1000 if power is not None else None,
        "other_processes": [
            {"pid": int(p.pid), "used_bytes": int(p.usedGpuMemory or 0)} for p in processes if p.pid != os.getpid()
        ],
    }


def _gpus() -> list[dict[str, Any]]:
    """Every GPU NVML sees (``_gpu_record``); an absent driver is a normal case (no GPUs)."""
    with nvml.session() as nv:
        if nv is None:
            return []
        driver = nvml.text(nv.nvmlSystemGetDriverVersion())
        return [_gpu_record(nv, i, driver) for i in range(nv.nvmlDeviceGetCount())]


def node() -> dict[str, Any]:
    """The hardware of this machine: what a case record's ``hardware`` label is made of."""
    return {
        "hostname": platform.node(),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "gpus": _gpus(),
    }


def environment() -> dict[str, Any]:
    """Everything a reader needs to know where a number came from."""
    from ctbench import __version__

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain")
    return {
        "ctbench": __version__,
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_runtime": _cuda_runtime(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(),
        "gpus": _gpus(),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_bytes": psutil.virtual_memory().total,
        "env_vars": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
    }


def _cuda_runtime() -> str | None:
    """The CUDA runtime torch loaded (``cudaRuntimeGetVersion``), e.g. ``12.8``; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    try:
        version = torch.cuda.cudart().cudaRuntimeGetVersion()
        return f"{version // 1000}.{version % 1000 // 10}"
    except Exception:
        return torch.version.cuda


def hardware_label(env: dict[str, Any]) -> str:
    """One line naming the hardware: the GPU (model, memory, driver, power limit) if there is one, else the CPU
    and its cores. Rows whose labels differ are never ranked together."""
    gpus = env.get("gpus")
    if gpus and isinstance(gpus, list) and isinstance(gpus[0], dict):
        gpu = gpus[0]
        details = [f"driver {gpu.get('driver', '?')}"]
        if isinstance(gpu.get("memory_bytes"), (int, float)):
            details.insert(0, f"{gpu['memory_bytes'] / 2**30:.0f} GiB")
        if isinstance(gpu.get("power_limit_w"), (int, float)):
            details.append(f"{gpu['power_limit_w']:.0f} W")
        return f"{gpu.get('name', '?')} ({', '.join(details)})"
    return f"{env.get('cpu', '?')} x{env.get('cpu_cores', '?')}"
