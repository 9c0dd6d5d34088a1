"""Process state belongs to the engine: torch threads, seeds, default dtype and deterministic algorithms are set
from the case before the task sees it, and a task that changes them is caught (the case fails, naming what)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch


class StateChanged(RuntimeError):
    """A task or implementation changed process state that belongs to the engine."""


@dataclass(frozen=True)
class State:
    """The process settings a case runs under (``threads`` 0: torch's own default, one per core)."""

    threads: int
    default_dtype: str = "float32"
    deterministic: bool = False

    def resolved(self) -> State:
        """The same state with ``threads`` as torch reports it once applied."""
        return State(self.threads or torch.get_num_threads(), self.default_dtype, self.deterministic)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def current() -> State:
    return State(
        torch.get_num_threads(),
        str(torch.get_default_dtype()).removeprefix("torch."),
        torch.are_deterministic_algorithms_enabled(),
    )


def apply(state: State) -> State:
    """Set ``state`` on this process; return it as torch now reports it."""
    if state.threads > 0:
        torch.set_num_threads(state.threads)
    torch.set_default_dtype(getattr(torch, state.default_dtype))
    torch.use_deterministic_algorithms(state.deterministic)
    return state.resolved() if state.threads == 0 else state


def verify(expected: State, when: str) -> None:
    """Raise ``StateChanged`` naming every setting that differs from ``expected``."""
    now = current()
    changed = [f"{k} {v!r} -> {getattr(now, k)!r}" for k, v in asdict(expected).items() if getattr(now, k) != v]
    if changed:
        raise StateChanged(
            f"process state changed {when}: {', '.join(changed)}. Threads, default dtype and deterministic "
            "flags are set by the engine from the case (a scale may declare `threads`); a task must not change them"
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
