"""The task API: what a task in ``suites/`` declares and what the engine asks of it.

A task is a benchopt-style Objective: it owns its data, its named scales, the interface an implementation must
satisfy, and a protocol that *prepares* one case (scale x params x seed): model, data, optimiser, the
implementation bound to them. It hands the engine a ``Prepared``: the step to measure and what to evaluate
afterwards. The engine (``ctbench.run.protocol``) warms the step up, times it, reads its peak memory under one policy,
and records it under the same names for every task; the task adds its quality metrics from the evaluation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ctbench.api.check import Check, RunCheck
from ctbench.api.claims import Claim
from ctbench.api.measure import Meter, Policy, StepStats
from ctbench.store.schema import hardware_unit


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
class Ratio:
    """A headline ratio of the task: ``impl`` against each of ``against`` on ``metric`` at the points where both
    finished (``scripts/gpu_check.sh``'s summary prints it); with ``deepest``, only at the largest value of that
    grid axis, with the growth of each along it."""

    title: str
    impl: str
    against: tuple[str, ...]
    metric: str = "step_peak_memory_bytes"
    deepest: str | None = None


@dataclass(frozen=True)
class Metric:
    """A metric's unit and ranking direction (``None``: informative, never ranked), and whether its value depends
    on the machine that measured it (``hardware``): a time, a memory, an energy or a rate does (``None`` infers it
    from the unit: ``s``, ``bytes``, ``J``, ``.../s``), and so does a ratio of times, which must say so. A number
    that does not (an accuracy, an error, a count) is reused from a stored run on any machine (``--against``)."""

    unit: str
    higher_is_better: bool | None
    description: str
    hardware: bool | None = None

    @property
    def depends_on_hardware(self) -> bool:
        return self.hardware if self.hardware is not None else hardware_unit(self.unit)


@dataclass(frozen=True)
class Step:
    """What a task's measured step is, and the work one step does (for ``throughput_<unit>_s``).

    ``work`` maps a unit to its meaning, e.g. ``{"samples": "training images"}``: a case's ``Prepared.work`` gives
    the amount per step, and the engine records ``throughput_samples_s`` = amount / ``step_time_s``.
    """

    what: str
    work: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Phase:
    """A part of a protocol timed by the engine beside the step (``ctx.meter.phase(name, fn)``): a training run,
    a backward on a retained graph. Recorded as ``<name>_time_s`` and ``<name>_throughput_<unit>_s``."""

    what: str
    work: Mapping[str, str] = field(default_factory=dict)
    higher_is_better: bool | None = False  # of its time; None: informative only


@dataclass(frozen=True)
class Scale:
    """A named size of the protocol: ``smoke`` (CPU seconds), ``small`` (CPU minutes), ``full`` (the paper's).

    ``grid`` is expanded by the runner into one case per combination; ``config`` holds the fixed settings of the
    protocol at this scale (width, data size, epochs). ``policy`` is how the engine measures the step (repeats);
    ``threads`` fixes the torch threads of a CPU case (None: the run's ``--threads``).
    """

    name: str
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    seeds: Sequence[int] = (0,)
    timeout_s: float = 600.0
    policy: Policy = field(default_factory=Policy)
    threads: int | None = None

    def param_sets(self) -> Iterator[dict[str, Any]]:
        keys = sorted(self.grid)
        for values in itertools.product(*(self.grid[k] for k in keys)):
            yield dict(zip(keys, values, strict=True))


@dataclass
class CaseResult:
    """What a protocol's evaluation returns for one case (the engine adds the step's measurements).

    ``series`` maps a curve's name to its points ``[[x, y], ...]``; ``spread`` maps a metric to the spread (IQR or
    standard deviation) of its repeated measurements, which ``compare`` uses to tell change from noise (a metric
    with no spread and one seed is never judged better or worse: record 0 for an exact one); ``intervals`` maps a
    measured metric to its 95% confidence interval (e.g. a paired ratio's,
    ``ctbench.api.measure.paired_interval``), which checks on it are decided by. A case whose
    ``invalid_reason`` is set ran, but its numbers must not be ranked (e.g. a mean far from the known value).
    """

    metrics: dict[str, float]
    dataset: str
    checks: dict[str, Check] = field(default_factory=dict)
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95% confidence interval per metric
    invalid_reason: str | None = None
    note: str | None = None  # shown on the task page beside the case, e.g. why a peer lacks some metrics

    def nonfinite_metrics(self) -> list[str]:
        return [k for k, v in self.metrics.items() if not math.isfinite(v)]


class Invalid(Exception):
    """The one way a protocol says a case ran but cannot be ranked and stops there: a solver that diverged, a
    forward that did not converge, a flow that blew up. Raised from ``prepare`` or from the evaluation; what was
    measured before (``metrics``, ``series``) is kept in the record with status ``invalid``."""

    def __init__(
        self,
        reason: str,
        dataset: str = "unknown",
        metrics: Mapping[str, float] | None = None,
        series: Mapping[str, list[list[float]]] | None = None,
    ):
        super().__init__(reason)
        self.reason, self.dataset = reason, dataset
        self.metrics, self.series = dict(metrics or {}), dict(series or {})


@dataclass
class Prepared:
    """A case made ready by its task: the step the engine measures, and what to evaluate afterwards.

    ``step`` is one call of the method's hot path (a training step, one draw of estimates); the engine warms it
    up and measures it, and pytest-benchmark and asv time exactly this callable. ``None``: the method has no step
    of this kind (say why in ``no_step``). ``evaluate`` receives the step's measurements and returns the
    task's own metrics. ``work`` is the amount of each ``Task.step.work`` unit one step does.
    """

    step: Callable[[], Any] | None
    evaluate: Callable[[StepStats | None], CaseResult]
    work: Mapping[str, float] = field(default_factory=dict)
    no_step: str = ""


@dataclass(frozen=True)
class Context:
    """What the engine hands a protocol: where to put tensors and data, the case's seed, and the meter through
    which any other part of the protocol is timed (``ctx.meter.phase``).

    ``stored``: None, except when the engine times again the step of a case stored on other hardware
    (``--against``): then that case's metrics. Only the step is measured, and ``evaluate`` is not called, so
    ``prepare`` may take from there what it would otherwise search for (a tuned step size) instead of searching."""

    device: torch.device
    data_root: Path
    cache_dir: Path
    seed: int
    meter: Meter
    log: Any = print
    stored: Mapping[str, float] | None = None


@dataclass(frozen=True)
class LinePlot:
    """A declarative plot the report draws from a run file alone: ``y`` against ``x`` (a metric, or
    ``param.<name>``), a line per implementation (median over seeds), a panel per setting (scale, dataset,
    hardware) and ``facet`` (a parameter) if given. ``where`` keeps rows whose params match."""

    name: str
    x: str
    y: str
    xlabel: str = ""
    ylabel: str = ""
    xlog: bool = False
    ylog: bool = False
    scale_y: float = 1.0  # e.g. 2**-20 for bytes shown in MiB (the report's unit of memory everywhere)
    facet: str | None = None
    where: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "line"  # "line" or "bar"


class Task:
    """Base class of a task. Subclasses in ``suites/<name>/`` set the class attributes and implement ``prepare``."""

    name: ClassVar[str]
    paper: ClassVar[Paper]
    summary: ClassVar[str]
    interface: ClassVar[type]  # an ABC: implementations subclass it, or provide its abstract methods
    # the task's own metrics; the engine's are added (``ctbench.catalog.describe``)
    metrics: ClassVar[Mapping[str, Metric]]
    primary_metric: ClassVar[str]
    scales: ClassVar[Mapping[str, Scale]]
    step: ClassVar[Step]
    phases: ClassVar[Mapping[str, Phase]] = {}
    paper_numbers: ClassVar[Sequence[PaperNumber]] = ()
    line_plots: ClassVar[Sequence[LinePlot]] = ()
    headline_ratios: ClassVar[Sequence[Ratio]] = ()  # the ratios a summary of a run leads with
    bench_params: ClassVar[Sequence[Mapping[str, Any]]] = ()  # smoke grid points benchmarks time (default: first)
    # the metrics the task is about, each a kind: "quality", "memory" or "time"; leaderboards show them first
    # and rank rows by Pareto layer over them. Empty: the primary metric (quality), step_peak_memory_bytes and
    # step_time_s (``ctbench.boards.ranking.default_objectives``)
    objectives: ClassVar[Mapping[str, str]] = {}
    # the package holding the reference implementations; empty: ``reference_impls.<name>`` (the folder layout)
    references: ClassVar[str] = ""
    # every check the task records, with the claim it tests and its failing control (``ctbench.api.claims``)
    claims: ClassVar[Sequence[Claim]] = ()

    @property
    def reference_package(self) -> str:
        return self.references or f"reference_impls.{self.name}"

    def skip(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        """Why this (impl, params) combination is not run at this scale, or ``None`` to run it."""
        return None

    def expected_invalid(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        """A negative control: why the paper expects this case to be invalid (e.g. vanilla importance sampling
        missing far modes), or None. An invalid case that is expected is shown as "invalid as expected" and does
        not fail the run; one that is not expected does."""
        return None

    def param_error(self, name: str, value: Any) -> str | None:
        """Why ``value`` is not a valid value of grid axis ``name`` (checked before anything runs), or None.

        Default, from the values the scales declare for the axis: the same type (an int where only ints are
        declared; a number where numbers are), positive where every declared number is positive, and for
        strings one of the declared values. A task with an open family of values overrides this.
        """
        declared = [v for scale in self.scales.values() for v in scale.grid.get(name, ())]
        numbers = [v for v in declared if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if value is None:
            return None if None in declared else f"{name} cannot be null"
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return f"{name}={value!r} is not a number or a name"
        if isinstance(value, str):
            names = sorted({v for v in declared if isinstance(v, str)})
            if value in names:
                return None
            return f"{name}={value!r} is not one of {', '.join(names)}" if names else f"{name} takes numbers"
        if not numbers:
            return f"{name}={value!r}: {name} takes one of {', '.join(map(str, declared))}"
        if not math.isfinite(value):
            return f"{name}={value!r} is not finite"
        if all(isinstance(v, int) for v in numbers) and not isinstance(value, int):
            return f"{name}={value!r} must be an integer"
        if all(v > 0 for v in numbers) and value <= 0:
            return f"{name}={value!r} must be positive"
        return None

    def prepare(self, impl: Any, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
        """The protocol: bind ``impl`` to this case's model and data; the engine measures and evaluates."""
        raise NotImplementedError

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        """Checks across the run's case records (dicts in the results schema). Default: none."""
        return []

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Named matplotlib figures that ``line_plots`` cannot declare (e.g. particle fields).

        ``cases`` is this task's slice of ``ctbench.boards.table.cases_frame`` (one row per case); ``records`` are the
        same cases' records (dicts in the results schema, with their ``series``), each with ``run_id`` and
        ``hardware`` added. Drawn only where the task is installed.
        """
        return {}

    def benchmark_points(self) -> list[dict[str, Any]]:
        """The smoke grid points benchmarks measure: ``bench_params`` over the first value of every axis."""
        first = {k: v[0] for k, v in self.scales["smoke"].grid.items()}
        return [{**first, **p} for p in self.bench_params] or [first]
