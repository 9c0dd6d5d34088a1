"""Process state belongs to the engine: torch threads, seeds, default dtype and deterministic algorithms are set
from the case before the task sees it, and a task that changes them is caught (the case fails, naming what)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch


class StateChanged(RuntimeError):
    """A task or implementation changed process state that belongs to the engine."""


@dataclass(frozen=True)
class State:
    """The process settings a case runs under (``threads`` 0: torch's own default, one per core). Besides threads,
    dtype and determinism, the switches that change speed for a price in precision or reproducibility: TF32 in
    matmuls and convolutions, float32 matmul precision, cuDNN's autotuner; and autograd on. torch's defaults."""

    threads: int
    default_dtype: str = "float32"
    deterministic: bool = False
    matmul_tf32: bool = False
    cudnn_tf32: bool = True
    float32_matmul_precision: str = "highest"
    cudnn_benchmark: bool = False
    cudnn_deterministic: bool = False
    grad_enabled: bool = True

    def resolved(self) -> State:
        """The same state with ``threads`` as torch reports it once applied."""
        return replace(self, threads=self.threads or torch.get_num_threads())

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def current() -> State:
    return State(
        threads=torch.get_num_threads(),
        default_dtype=str(torch.get_default_dtype()).removeprefix("torch."),
        deterministic=torch.are_deterministic_algorithms_enabled(),
        matmul_tf32=torch.backends.cuda.matmul.allow_tf32,
        cudnn_tf32=torch.backends.cudnn.allow_tf32,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        cudnn_benchmark=torch.backends.cudnn.benchmark,
        cudnn_deterministic=torch.backends.cudnn.deterministic,
        grad_enabled=torch.is_grad_enabled(),
    )


def apply(state: State) -> State:
    """Set ``state`` on this process; return it as torch now reports it."""
    if state.threads > 0:
        torch.set_num_threads(state.threads)
    torch.set_default_dtype(getattr(torch, state.default_dtype))
    torch.use_deterministic_algorithms(state.deterministic)
    torch.set_float32_matmul_precision(state.float32_matmul_precision)  # before allow_tf32, which it also sets
    torch.backends.cuda.matmul.allow_tf32 = state.matmul_tf32
    torch.backends.cudnn.allow_tf32 = state.cudnn_tf32
    torch.backends.cudnn.benchmark = state.cudnn_benchmark
    torch.backends.cudnn.deterministic = state.cudnn_deterministic
    torch.set_grad_enabled(state.grad_enabled)
    return state.resolved() if state.threads == 0 else state


def verify(expected: State, when: str) -> None:
    """Raise ``StateChanged`` naming every setting that differs from ``expected``."""
    now = current()
    changed = [f"{k} {v!r} -> {getattr(now, k)!r}" for k, v in asdict(expected).items() if getattr(now, k) != v]
    if changed:
        raise StateChanged(
            f"process state changed {when}: {', '.join(changed)}. Threads, default dtype, determinism, TF32 and "
            "autotuner switches are set by the engine from the case (a scale may declare `threads`); a task or "
            "implementation must not change them"
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def applied(state: State) -> Iterator[State]:
    """``state`` for the block (in-process runs: tests, pytest-benchmark, asv), the previous one restored after."""
    before = current()
    try:
        yield apply(state)
    finally:
        apply(before)
