"""Memory calibration: steps that allocate known amounts must read back as those amounts.

``python -m ctbench.run.calibrate [--device cuda] [--out FILE]`` runs, for each size (64 MiB and 256 MiB by
default), a step that allocates exactly that many bytes of activations, touches them and frees them, through the
engine's own measurement (``ctbench.api.measure.measure_step``). On CUDA the allocator's peak must read back within
1%, and the same allocation, held, must show in NVML's device view (used memory grows by at least the size). On a CPU
the reading goes through the RSS high-water mark and the tolerance is 5% (page tables and allocator headers). Exit 0
when every reading passes, 1 otherwise; ``--out`` writes the readings as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ctbench.api.measure import Policy, measure_step
from ctbench.machine import nvml

MIB = 2**20
SIZES = (64 * MIB, 256 * MIB)
TOLERANCE = {"cuda": 0.01, "cpu": 0.05}


def allocating_step(nbytes: int, device: torch.device) -> Callable[[], float]:
    """A step whose working memory is exactly ``nbytes``: one float32 tensor, written, reduced, freed."""

    def step() -> float:
        x = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
        return float(x[-1])

    return step


def nvml_visible(nbytes: int, device: torch.device) -> dict[str, Any]:
    """NVML's used device memory before and while ``nbytes`` are held (the allocator's cache emptied first)."""
    torch.cuda.empty_cache()
    torch.cuda.synchronize(device)
    before = nvml.used_bytes(device)
    held = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    torch.cuda.synchronize(device)
    during = nvml.used_bytes(device)
    del held
    torch.cuda.empty_cache()
    if before is None or during is None:
        return {"nvml_delta_bytes": None, "nvml_visible": None}
    return {"nvml_delta_bytes": during - before, "nvml_visible": during - before >= nbytes}


def calibrate(device: torch.device, sizes: Sequence[int] = SIZES) -> list[dict[str, Any]]:
    """One reading per size: the measured step memory, its ratio to the allocation, and whether it passes."""
    tolerance = TOLERANCE["cuda" if device.type == "cuda" else "cpu"]
    readings = []
    for nbytes in sizes:
        stats = measure_step(allocating_step(nbytes, device), device, Policy(warmup=1, repeat=3, memory_repeat=3))
        measured = stats.memory.step_bytes
        reading: dict[str, Any] = {
            "device": str(device),
            "allocated_bytes": nbytes,
            "measured_bytes": measured,
            "ratio": measured / nbytes,
            "tolerance": tolerance,
            "source": stats.memory.source,
            "energy_j_per_step": stats.energy.median if stats.energy else None,
        }
        reading["passed"] = abs(reading["ratio"] - 1) <= tolerance
        if device.type == "cuda":
            reading.update(nvml_visible(nbytes, device))
            reading["passed"] = reading["passed"] and reading["nvml_visible"] is not False
        readings.append(reading)
    return readings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    readings = calibrate(torch.device(args.device))
    for r in readings:
        nv = r.get("nvml_delta_bytes")
        seen = f", NVML +{nv / MIB:.1f} MiB" if nv is not None else ""
        verdict = "ok" if r["passed"] else "FAIL"
        print(
            f"calibration {r['device']}: {r['allocated_bytes'] / MIB:.0f} MiB allocated -> "
            f"{r['measured_bytes'] / MIB:.2f} MiB measured ({r['source']}, ratio {r['ratio']:.4f}{seen}): {verdict}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(readings, indent=1))
    return 0 if all(r["passed"] for r in readings) else 1


if __name__ == "__main__":
    sys.exit(main())
