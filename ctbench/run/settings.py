"""A run's settings: where its files go, how its cases run, their limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ctbench.isolation.sandbox import bwrap
from ctbench.run.cases import Case

SANDBOX_MODES = ("auto", "on", "off")
START_MODES = ("auto", "warm", "cold")


def default_threads(device: str, requested: int = 0) -> int:
    """Torch threads per case: ``requested`` if given, else one on a CPU (small steps gain little from intra-op
    threads, and spinning threads on a shared machine slow cases down many times over) and torch's default (0)
    elsewhere."""
    return requested or (1 if device == "cpu" else 0)


def warm_start(start: str, device: str) -> bool:
    """Whether local cases start from a warm template: ``warm``, or ``auto`` on a CPU (on a GPU, ``auto`` starts
    each case in a fresh interpreter)."""
    if start not in START_MODES:
        raise ValueError(f"start must be one of {START_MODES}, not {start!r}")
    return start == "warm" or (start == "auto" and device == "cpu")


def default_max_memory() -> int:
    """80% of the machine's RAM: one case may use most of it, never all of it."""
    return int(0.8 * psutil.virtual_memory().total)


@dataclass(frozen=True)
class RunSettings:
    out_dir: Path
    data_root: Path
    cache_dir: Path
    device: str
    timeout_s: float | None = None  # None: each scale's own timeout
    threads: int = 0  # torch threads per case; 0: torch's default (one per core)
    left_out: tuple[str, ...] = ()  # references not run here, with the reason (a peer library not installed)
    sandbox: str = "auto"  # "auto": submissions sandboxed where bwrap exists; "on": every case (bwrap required)
    max_memory_bytes: int | None = None  # None: 80% of the RAM of the machine the case runs on
    max_run_time_s: float = math.inf  # cases not started by then are recorded as not run
    warm: bool = True  # start local cases from a warm template (``ctbench.run.template``); False: a fresh interpreter
    extra: dict[str, Any] = field(default_factory=dict)  # what an executor adds to the run's settings record

    def sandboxed(self, case: Case) -> bool:
        if self.sandbox == "on":
            return True
        return self.sandbox == "auto" and case.impl.submission != "reference" and bwrap() is not None

    def memory_limit(self) -> int:
        return self.max_memory_bytes or default_max_memory()

    def worker_args(self) -> list[str]:
        return [self.device, str(self.data_root), str(self.cache_dir), str(self.threads)]

    def as_record(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "data_root": str(self.data_root),
            "threads": self.threads,
            "left_out": list(self.left_out),
            "sandbox": self.sandbox,
            "max_memory_bytes": self.max_memory_bytes,
            "start": "warm" if self.warm else "cold",
            **self.extra,
        }
