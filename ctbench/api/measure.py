"""Measurement, owned by the engine and the same for every task: wall time, peak memory and energy of a step.

Time: ``policy.warmup`` untimed calls, then ``policy.repeat`` calls, CUDA synchronised around each, summarised
by their median and inter-quartile range.

Memory of a step (its working memory: the peak while it runs minus what was held before it), the median of
``policy.memory_repeat`` readings with their range as spread:
- CUDA: the caching allocator's peak, reset before the step, minus the allocated bytes before it; NVML's view of the
  device's used memory is recorded beside it when a driver is present.
- CPU: the process's resident-set high-water mark. ``ru_maxrss`` cannot be reset and glibc keeps freed memory
  mapped, so the baseline is taken after ``gc.collect()`` and ``malloc_trim(0)``, the kernel's peak (VmHWM) is
  reset to the current RSS by writing 5 to ``/proc/self/clear_refs``, and VmHWM is read after the step, with
  glibc's mmap threshold pinned (``pinned_mmap_threshold``) so heap fragmentation does not pose as step memory.
  The case runs in its own subprocess, so nothing else shares that process.

Marks: where a marker is installed (``announce``: the worker sends them to the runner), the engine marks the step's
measured windows: ``timing`` (with the number of calls it times) after the warm-up, ``call`` between two timed
calls and ``timed`` after the last; ``memory`` after the peak is reset and ``memory_end`` after the call, for each
memory reading. The
runner times them on its own clock (``ctbench.isolation.outside``): a case that patches the engine's clock is seen.

Energy (CUDA with NVML only): the GPU's total-energy counter read around blocks of consecutive steps, each block
at least ``policy.energy_block_s`` long (the counter's resolution is coarser than a short step), divided by the
steps in the block; the median of ``policy.energy_blocks`` blocks, their range as spread. Where no counter exists
(a CPU: no RAPL on these machines) there is no energy metric at all, never a zero.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ctbench.machine import nvml

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
Marker = Callable[[str, dict[str, Any]], None]
_markers: list[Marker] = []  # at most one: where the engine's marks go


def announce(marker: Marker | None) -> None:
    """Send the engine's marks of its measured windows to ``marker`` (None: nowhere, the default)."""
    _markers[:] = [marker] if marker is not None else []


def _mark(name: str, **info: Any) -> None:
    for marker in _markers:
        marker(name, info)


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit


@dataclass(frozen=True)
class Policy:
    """How the engine measures a step: the same rule for every task, repeats chosen per scale."""

    warmup: int = 1
    repeat: int = 5
    memory_repeat: int = 3
    energy_block_s: float = 0.5
    energy_blocks: int = 3


def iqr(values: list[float] | tuple[float, ...]) -> float:
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[2] - q[0]


@dataclass(frozen=True)
class Timing:
    """Repeated wall-clock timings of one call, in seconds, and on a CPU the process's CPU time of each call (all
    its threads: on a one-thread case the wall time less the time other processes held the core)."""

    times: tuple[float, ...]
    cpu_times: tuple[float, ...] = ()

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        return iqr(self.times)


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


@dataclass(frozen=True)
class Energy:
    """Energy per step in joules, one value per measured block."""

    per_step_j: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.per_step_j)

    @property
    def spread(self) -> float:
        return max(self.per_step_j) - min(self.per_step_j)


@dataclass(frozen=True)
class StepStats:
    """What the engine measured of a case's step."""

    timing: Timing
    memory: Memory
    energy: Energy | None = None

    def metrics(self, work: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        """The step's metrics and spreads under the names every task shares."""
        metrics = {"step_time_s": self.timing.median, "step_peak_memory_bytes": float(self.memory.step_bytes)}
        spread = {"step_time_s": self.timing.iqr, "step_peak_memory_bytes": float(self.memory.spread_bytes)}
        metrics.update({f"throughput_{unit}_s": throughput(n, self.timing.median) for unit, n in work.items()})
        spread.update({f"throughput_{unit}_s": rate_spread(n, self.timing) for unit, n in work.items()})
        if self.timing.cpu_times:
            metrics["step_cpu_time_s"], spread["step_cpu_time_s"] = self.timing.cpu_median, iqr(self.timing.cpu_times)
        if self.memory.device_used_bytes is not None:
            metrics["device_used_bytes"] = float(self.memory.device_used_bytes)
        if self.energy is not None:
            metrics["step_energy_j"], spread["step_energy_j"] = self.energy.median, self.energy.spread
        return metrics, spread


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(
    fn: Callable[[], Any], device: torch.device, repeat: int = 5, warmup: int = 1, *, marked: bool = False
) -> Timing:
    """Time ``fn`` ``repeat`` times after ``warmup`` untimed calls (engine-internal: tasks use ``Meter``);
    ``marked``: the timed calls are the step's, marked ``timing``, ``call`` between two, ``timed`` after the last."""
    for _ in range(warmup):
        fn()
    _sync(device)
    if marked:
        _mark("timing", calls=repeat)
    times, cpu_times = [], []
    for i in range(repeat):
        cpu_start, start = time.process_time(), time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        if marked:
            _mark("timed" if i == repeat - 1 else "call")
    return Timing(tuple(times), tuple(cpu_times) if device.type == "cpu" else ())


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


def _peak_memory_once(fn: Callable[[], Any], device: torch.device, marked: bool = False) -> Memory:
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        if marked:
            _mark("memory")
        fn()
        _sync(device)
        if marked:
            _mark("memory_end")
        return Memory(torch.cuda.max_memory_allocated(device), baseline, "cuda_allocator", nvml.used_bytes(device))
    _trim_heap()
    baseline = _current_rss()
    Path("/proc/self/clear_refs").write_text("5")
    if marked:  # after the reset: the runner reads the peak (VmHWM) of this call alone when the end mark comes
        _mark("memory")
    fn()
    if marked:
        _mark("memory_end")
    return Memory(_proc_status_kb("VmHWM") * 1024, baseline, "cpu_rss_hwm")


def peak_memory(fn: Callable[[], Any], device: torch.device, repeat: int = 1, *, marked: bool = False) -> Memory:
    """Working memory of a call of ``fn``: the median over ``repeat`` measured calls, their range as spread.

    Call ``fn`` once beforehand so lazily allocated state (gradient buffers, optimizer state) exists. On a CPU a
    single reading can catch an allocator event unrelated to the step (a new malloc arena, a heap that was not
    trimmed); the median of a few readings is robust to one such outlier.
    """
    with pinned_mmap_threshold():
        readings = sorted((_peak_memory_once(fn, device, marked) for _ in range(repeat)), key=lambda m: m.step_bytes)
    return replace(readings[len(readings) // 2], spread_bytes=readings[-1].step_bytes - readings[0].step_bytes)


def energy(fn: Callable[[], Any], device: torch.device, policy: Policy, step_s: float) -> Energy | None:
    """Energy per call of ``fn`` from NVML's total-energy counter; None where the device has no counter. One NVML
    session for the whole measurement: only the counter is read inside a block."""
    if device.type != "cuda":
        return None
    with nvml.session() as nv:
        if nv is None:
            return None
        try:
            handle = nvml.handle(nv, device)
            nv.nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception:  # no counter on this GPU (before Volta) or NVML refuses
            return None
        calls = max(1, math.ceil(policy.energy_block_s / max(step_s, 1e-6)))
        per_step = []
        for _ in range(policy.energy_blocks):
            _sync(device)
            before = nv.nvmlDeviceGetTotalEnergyConsumption(handle)
            for _ in range(calls):
                fn()
            _sync(device)
            per_step.append((nv.nvmlDeviceGetTotalEnergyConsumption(handle) - before) / 1000.0 / calls)
    return Energy(tuple(per_step))


def throughput(amount: float, seconds: float) -> float:
    """Units of work per second."""
    return amount / seconds if seconds > 0 else float("nan")


def rate_spread(amount: float, timing: Timing) -> float:
    """Inter-quartile range of amount / t over the repeated timings: a derived rate's own spread."""
    return iqr([amount / t for t in timing.times if t > 0])


def measure_step(fn: Callable[[], Any], device: torch.device, policy: Policy) -> StepStats:
    """The engine's one measurement of a step: warm-up, timings, then memory (right after the timings, before
    anything else leaves a fragmented heap), then energy where the device counts it."""
    timing = time_call(fn, device, policy.repeat, policy.warmup, marked=True)
    memory = peak_memory(fn, device, policy.memory_repeat, marked=True)
    return StepStats(timing, memory, energy(fn, device, policy, timing.median))


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval of the median of ``values``: the order statistics x_(k) and
    x_(n+1-k), with k the largest rank such that P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2 (the sign test's
    interval). With too few values for that confidence (fewer than 6 at 95%) it is their whole range, which then
    holds the median with less confidence than asked."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return math.nan, math.nan
    tail, below, k = (1 - confidence) / 2, 0.0, 0
    while k < n // 2:
        below += math.comb(n, k) / 2**n  # P(Binomial(n, 1/2) <= k)
        if below > tail:
            break
        k += 1
    k = max(k, 1)  # ranks are 1-based: k = 1 is the range
    return ordered[k - 1], ordered[n - k]


@dataclass(frozen=True)
class PairedRatio:
    """t(fn) / t(baseline) over interleaved pairs: the median, its IQR, the median's 95% confidence interval
    (``median_interval``) and how many pairs were timed."""

    median: float
    iqr: float
    interval: tuple[float, float]
    pairs: int


def paired_interval(
    fn: Callable[[], Any],
    baseline: Callable[[], Any],
    clock: Callable[[Callable[[], Any]], tuple[Any, float]],
    rounds: int,
    bound: float | None = None,
    max_rounds: int | None = None,
) -> PairedRatio:
    """Interleaved pairs of t(fn) / t(baseline), each call timed once on ``clock``: the machine's speed and load,
    which drift over seconds and between cases, weigh on both calls of a pair alike.

    ``rounds`` pairs are timed; while the median's 95% interval still holds ``bound`` (the threshold a check will
    compare the ratio with), ``rounds`` more are added, up to ``max_rounds`` pairs (default 4 x ``rounds``), as
    pyperf and asv add repeats until a measurement settles. An interval that still holds the bound then makes the
    check inconclusive, never a pass or a fail decided by noise."""
    limit = max(rounds, max_rounds if max_rounds is not None else 4 * rounds)
    ratios: list[float] = []
    while True:
        ratios += [clock(fn)[1] / max(clock(baseline)[1], 1e-9) for _ in range(rounds)]
        low, high = median_interval(ratios)
        if bound is None or not low <= bound <= high or len(ratios) >= limit:
            return PairedRatio(statistics.median(ratios), iqr(ratios), (low, high), len(ratios))


class Meter:
    """The engine's timer for the parts of a protocol other than its step, handed to it as ``ctx.meter``.

    ``phase(name, fn)`` times ``fn`` under the same rules as the step (CUDA-synchronised, median and IQR) and
    records ``<name>_time_s`` and, per unit of ``work``, ``<name>_throughput_<unit>_s``. Names must be declared
    in the task's ``phases`` (so the run file describes them); an undeclared name is a bug in the task.
    """

    def __init__(self, device: torch.device, phases: Mapping[str, Any] | None = None):
        self.device, self.declared = device, phases
        self.metrics: dict[str, float] = {}
        self.spread: dict[str, float] = {}

    def phase(
        self,
        name: str,
        fn: Callable[[], Any],
        *,
        repeat: int = 1,
        warmup: int = 0,
        work: Mapping[str, float] | None = None,
    ) -> Any:
        """Run ``fn`` ``warmup + repeat`` times, time the last ``repeat``; return the last call's result."""
        if self.declared is not None and name not in self.declared:
            raise KeyError(f"phase {name!r} is not declared in the task's phases ({', '.join(self.declared)})")
        result: list[Any] = []
        timing = time_call(lambda: result.append(fn()), self.device, repeat, warmup)
        spread = repeat >= 2  # one timing has no spread: it is unknown, not zero
        self._record(f"{name}_time_s", timing.median, timing.iqr if spread else None)
        if timing.cpu_times:  # on a CPU: the process's own time, which other processes' load does not inflate
            self._record(f"{name}_cpu_time_s", timing.cpu_median, iqr(timing.cpu_times) if spread else None)
        for unit, amount in (work or {}).items():
            rate = rate_spread(amount, timing) if spread else None
            self._record(f"{name}_throughput_{unit}_s", throughput(amount, timing.median), rate)
        return result[-1]

    def _record(self, key: str, value: float, spread: float | None) -> None:
        self.metrics[key] = value
        if spread is not None:
            self.spread[key] = spread

    def clock(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        """(result, seconds) of one CUDA-synchronised call, recorded nowhere: for a protocol's own clock (a
        solver's run to a target, timed step by step)."""
        _sync(self.device)
        start = time.perf_counter()
        result = fn()
        _sync(self.device)
        return result, time.perf_counter() - start
