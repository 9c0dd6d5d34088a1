"""The engine's side of one case: the task prepares it, the engine measures its step, the task evaluates it.

    prepared = task.prepare(impl, scale, params, ctx)     # model, data, optimiser, the implementation bound
    stats    = measure_step(prepared.step, policy)        # warm-up, timings, memory, energy: one rule for all
    result   = prepared.evaluate(stats)                   # the task's quality metrics

The step's measurements, the phases timed through ``ctx.meter`` and the machine probe timed before and after
(``ctbench.run.probe``) are merged into the result under the engine's
names. ``ctbench.Invalid`` raised by ``prepare`` or ``evaluate`` makes an ``invalid`` result that keeps what was
measured before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctbench.api.measure import StepStats, measure_step
from ctbench.api.task import CaseResult, Context, Invalid, Scale, Task
from ctbench.run import probe, process


def _merge(result: CaseResult, measured: Mapping[str, float], spread: Mapping[str, float], where: str) -> None:
    clash = sorted(set(result.metrics) & set(measured))
    if clash:
        raise ValueError(f"the task's evaluation returned {', '.join(clash)}, which {where} records")
    result.metrics.update(measured)
    result.spread.update(spread)


def run_case(
    task: Task,
    impl: Any,
    scale: Scale,
    params: Mapping[str, Any],
    ctx: Context,
    state: process.State | None = None,
    step_only: bool = False,
) -> CaseResult:
    """Prepare, measure and evaluate one case; ``state``, when given, is verified around the step. The machine
    probe (``ctbench.run.probe``) is timed before and after. ``step_only``: prepare and measure, no evaluation
    (a stored case's step timed again on this machine: its other numbers come from the stored record)."""
    before = probe.timings(ctx.device)
    stats: StepStats | None = None
    work: Mapping[str, float] = {}
    try:
        prepared = task.prepare(impl, scale, params, ctx)
        work = prepared.work
        if prepared.step is not None:
            if state is not None:
                process.verify(state, "while the task prepared the case")
            stats = measure_step(prepared.step, ctx.device, scale.policy)
        result = CaseResult({}, "unknown") if step_only else prepared.evaluate(stats)
        if prepared.step is None and prepared.no_step:
            result.note = "; ".join(filter(None, [result.note, prepared.no_step]))
    except Invalid as exc:
        result = CaseResult(exc.metrics, exc.dataset, series=exc.series, invalid_reason=exc.reason)
    if state is not None:
        process.verify(state, "during the case")
    if stats is not None:
        _merge(result, *stats.metrics(work), "the engine's step measurement")
    _merge(result, ctx.meter.metrics, ctx.meter.spread, "the engine's phase timing")
    _merge(result, *probe.metrics(before, probe.timings(ctx.device)), "the engine's machine probe")
    return result
