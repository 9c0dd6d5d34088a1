"""The machine-drift probe: one small fixed workload, the same for every task and every case, timed before and
after the case (before ``prepare``, after ``evaluate``) on the case's device and threads.

    probe_time_s = median over 2 x ``REPEAT`` timed calls of x <- tanh(x A), ``CHAIN`` times, A fixed (``SIZE``^2)

Its spread is their inter-quartile range. A call lasts a few milliseconds, longer than a scheduler's time slice, so
that other work on the machine slows it as it slows the case's step (a call of a fraction of a millisecond runs
between preemptions and never sees the load). Two runs of the same code whose probe moved as much as a timing did say
that the machine changed, not the code: ``ctbench.boards.table.compare`` reads a timing's change that the probe's
change explains as ``machine``, and the probe's range over both runs is the floor a timing's change must exceed
(``ctbench.boards.table.Floors``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import torch

from ctbench.api.measure import iqr, time_call

SIZE, CHAIN, REPEAT = 192, 32, 5  # a few ms a call on a CPU core: long enough to be preempted by load
METRIC = "probe_time_s"


def workload(device: torch.device) -> Callable[[], torch.Tensor]:
    """The probe's fixed call: the same matrix (seed 0, float32) on every machine."""
    matrix = (torch.randn(SIZE, SIZE, generator=torch.Generator().manual_seed(0)) / SIZE**0.5).to(device)

    def call() -> torch.Tensor:
        x = matrix
        for _ in range(CHAIN):
            x = torch.tanh(x @ matrix)
        return x

    return call


def timings(device: torch.device, repeat: int = REPEAT) -> list[float]:
    """``repeat`` timings of the probe's call after one warm-up, on ``device``'s synchronised clock."""
    with torch.no_grad():
        return list(time_call(workload(device), device, repeat, warmup=1).times)


def metrics(before: Sequence[float], after: Sequence[float]) -> tuple[dict[str, float], dict[str, float]]:
    """The probe's metric and spread from its timings before and after the case."""
    both = [*before, *after]
    return {METRIC: float(statistics.median(both))}, {METRIC: iqr(both)}
