"""The task API: what a task in ``suites/`` declares and what the runner asks of it.

A task is a benchopt-style Objective: it owns its data, its named scales, the interface an implementation must
satisfy, and the protocol that turns one implementation into metrics for one case (scale x params x seed). The
engine never knows what a task measures; it only expands cases, runs them in subprocesses and stores what
``Task.run`` returns.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch


@dataclass(frozen=True)
class Paper:
    """The publication whose key claim a task reproduces."""

    title: str
    authors: str
    venue: str
    url: str = ""


@dataclass(frozen=True)
class PaperNumber:
    """A number the paper reports, shown beside ours on the task's page with its source."""

    metric: str
    value: float
    impl: str
    dataset: str
    source: str  # e.g. "Table 1"
    note: str = ""


@dataclass(frozen=True)
class Metric:
    """A metric's unit and ranking direction (``None``: informative, never ranked)."""

    unit: str
    higher_is_better: bool | None
    description: str


@dataclass(frozen=True)
class Scale:
    """A named size of the protocol: ``smoke`` (CPU seconds), ``small`` (CPU minutes), ``full`` (the paper's).

    ``grid`` is expanded by the runner into one case per combination; ``config`` holds the fixed settings of the
    protocol at this scale (width, data size, epochs).
    """

    name: str
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    seeds: Sequence[int] = (0,)
    timeout_s: float = 600.0

    def param_sets(self) -> Iterator[dict[str, Any]]:
        keys = sorted(self.grid)
        for values in itertools.product(*(self.grid[k] for k in keys)):
            yield dict(zip(keys, values, strict=True))


@dataclass(frozen=True)
class Check:
    """A validity check: ``value`` compared with ``threshold``; ``passed`` says whether it held."""

    value: float
    threshold: float
    passed: bool
    description: str = ""

    @classmethod
    def at_most(cls, value: float, threshold: float, description: str = "") -> Check:
        return cls(float(value), float(threshold), bool(value <= threshold), description)

    @classmethod
    def at_least(cls, value: float, threshold: float, description: str = "") -> Check:
        return cls(float(value), float(threshold), bool(value >= threshold), description)


@dataclass(frozen=True)
class RunCheck:
    """A check over several cases of a run (e.g. memory flat in depth), recorded at run level."""

    task: str
    name: str
    check: Check
    scope: Mapping[str, Any] = field(default_factory=dict)  # what it is about, e.g. {"impl": ..., "scale": ...}


@dataclass
class CaseResult:
    """What a task's protocol returns for one case.

    ``series`` maps a curve's name to its points ``[[x, y], ...]``; ``spread`` maps a metric to the spread (IQR or
    standard deviation) of its repeated measurements, which ``compare`` uses to tell change from noise. A case whose
    ``invalid_reason`` is set ran, but its numbers must not be ranked (e.g. a solver that did not converge).
    """

    metrics: dict[str, float]
    dataset: str
    checks: dict[str, Check] = field(default_factory=dict)
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)
    invalid_reason: str | None = None
    note: str | None = None  # shown on the task page beside the case, e.g. why a peer lacks some metrics

    def nonfinite_metrics(self) -> list[str]:
        return [k for k, v in self.metrics.items() if not math.isfinite(v)]


@dataclass(frozen=True)
class Context:
    """What the runner hands a protocol: where to put tensors and data, and the case's seed."""

    device: torch.device
    data_root: Path
    cache_dir: Path
    seed: int
    log: Any = print


class Task:
    """Base class of a task. Subclasses in ``suites/<name>/`` set the class attributes and implement ``run``."""

    name: ClassVar[str]
    paper: ClassVar[Paper]
    summary: ClassVar[str]
    interface: ClassVar[type]  # an ABC: implementations subclass it, or provide its abstract methods
    metrics: ClassVar[Mapping[str, Metric]]
    primary_metric: ClassVar[str]
    scales: ClassVar[Mapping[str, Scale]]
    paper_numbers: ClassVar[Sequence[PaperNumber]] = ()

    def skip(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        """Why this (impl, params) combination is not run at this scale, or ``None`` to run it."""
        return None

    def run(self, impl: Any, scale: Scale, params: Mapping[str, Any], ctx: Context) -> CaseResult:
        """The protocol: drive ``impl`` at ``scale`` with ``params`` and measure it."""
        raise NotImplementedError

    def hot_step(self, impl: Any, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Callable[[], Any]:
        """A closure doing the method's hot step once (one training step, one estimator draw): what
        pytest-benchmark and asv time. Built by the same code as ``run`` uses, so benchmarks never re-implement
        the protocol."""
        raise NotImplementedError

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        """Checks across the run's case records (dicts in the results schema). Default: none."""
        return []

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Named matplotlib figures for the task's page.

        ``cases`` is this task's slice of ``ctbench.table.cases_frame`` (a pandas DataFrame, one row per case);
        ``records`` are the same cases' records (dicts in the results schema, with their ``series``), each with
        ``run_id`` and ``hardware`` added.
        """
        return {}

    @property
    def higher_is_better(self) -> bool:
        direction = self.metrics[self.primary_metric].higher_is_better
        assert direction is not None, f"{self.name}: primary metric must have a direction"
        return direction
