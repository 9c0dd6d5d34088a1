"""Measurement shared by every task: wall time and peak memory of a step, measured, never estimated.

Time: warm-up calls excluded, CUDA synchronised around each call, ``repeat`` timings summarised by their median and
inter-quartile range.

Memory of a step (its working memory: the peak while it runs minus what was held before it):
- CUDA: the caching allocator's peak, reset before the step, minus the allocated bytes before it; NVML's view of the
  device's used memory is recorded beside it when a driver is present.
- CPU: the process's resident-set high-water mark. ``ru_maxrss`` cannot be reset and glibc keeps freed memory
  mapped, so the baseline is taken after ``gc.collect()`` and ``malloc_trim(0)``, the kernel's peak (VmHWM) is
  reset to the current RSS by writing 5 to ``/proc/self/clear_refs``, and VmHWM is read after the step.
  The case runs in its own subprocess, so nothing else shares that process. ``pinned_mmap_threshold`` keeps glibc's
  heap fragmentation out of the reading.
"""

from __future__ import annotations

import ctypes
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit


@dataclass(frozen=True)
class Timing:
    """Repeated wall-clock timings of one call, in seconds."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        if len(self.times) < 2:
            return 0.0
        q = statistics.quantiles(self.times, n=4, method="inclusive")
        return q[2] - q[0]


@dataclass(frozen=True)
class Memory:
    """Working memory of one call, in bytes: ``peak`` minus ``baseline``; ``source`` names what measured it."""

    peak_bytes: int
    baseline_bytes: int
    source: str
    device_used_bytes: int | None = None  # NVML's used device memory after the call (CUDA only)
    spread_bytes: int = 0  # range (max - min) of the step readings this one is the median of

    @property
    def step_bytes(self) -> int:
        return max(self.peak_bytes - self.baseline_bytes, 0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, repeat: int = 5, warmup: int = 1) -> Timing:
    """Time ``fn`` ``repeat`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return Timing(tuple(times))


def _proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _current_rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_SIZE


def _trim_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


@contextmanager
def pinned_mmap_threshold(nbytes: int = 64 * 1024) -> Iterator[None]:
    """Within the block, glibc serves every allocation of ``nbytes`` or more with its own mapping.

    By default glibc raises its mmap threshold each time a mapped block is freed, so after a warm-up step tensors
    come from the heap, and the heap's fragmentation, not the step, decides how many pages a step touches: a
    depth sweep then shows noise of the size of the step itself. With the threshold pinned, tensors are mapped on
    allocation and unmapped on free, so RSS follows the live tensors (and page faults make steps slower: time them
    outside the block). On exit the threshold is set to glibc's dynamic maximum (32 MiB on 64-bit), where a
    process that frees large tensors ends up anyway. Does nothing where libc has no ``mallopt`` (not glibc).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        yield
        return
    mallopt(_M_MMAP_THRESHOLD, nbytes)
    try:
        yield
    finally:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)


def _nvml_used(device: torch.device) -> int | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, or NVML unavailable: CUDA's own figure stands alone
        return None


def _peak_memory_once(fn: Callable[[], Any], device: torch.device) -> Memory:
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return Memory(torch.cuda.max_memory_allocated(device), baseline, "cuda_allocator", _nvml_used(device))
    _trim_heap()
    baseline = _current_rss()
    Path("/proc/self/clear_refs").write_text("5")
    fn()
    return Memory(_proc_status_kb("VmHWM") * 1024, baseline, "cpu_rss_hwm")


def peak_memory(fn: Callable[[], Any], device: torch.device, repeat: int = 1) -> Memory:
    """Working memory of a call of ``fn``: the median over ``repeat`` measured calls.

    Call ``fn`` once beforehand so lazily allocated state (gradient buffers, optimizer state) exists. On a CPU a
    single reading can catch an allocator event unrelated to the step (a new malloc arena, a heap that was not
    trimmed); the median of a few readings is robust to one such outlier.
    """
    readings = sorted((_peak_memory_once(fn, device) for _ in range(repeat)), key=lambda m: m.step_bytes)
    return replace(readings[len(readings) // 2], spread_bytes=readings[-1].step_bytes - readings[0].step_bytes)


def throughput(samples: int, seconds: float) -> float:
    """Samples per second."""
    return samples / seconds if seconds > 0 else float("nan")
