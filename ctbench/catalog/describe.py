"""A task's description as plain JSON, stored in every run file, so that ``show``, ``compare`` and the report
render a run without importing the task's code (an older commit's run, a task that is not installed).

The description holds the task's summary and paper, the paper's numbers, its declarative plots, its primary
metric, its objectives (the metrics it is about, each a quality, memory or time), and the spec (unit, direction,
description) of every metric its cases can carry: the task's own, plus the engine's measurements of its step and
phases (``step_time_s``, ``step_peak_memory_bytes``, ``throughput_*``, ``step_energy_j``, ``<phase>_time_s``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ctbench.api.task import Metric, Phase, Step, Task
from ctbench.boards.ranking import OBJECTIVE_KINDS, default_objectives


def _spec(metric: Metric) -> dict[str, Any]:
    return {"unit": metric.unit, "higher_is_better": metric.higher_is_better, "description": metric.description,
            "hardware": metric.depends_on_hardware}  # fmt: skip


def engine_metrics(step: Step, phases: dict[str, Phase]) -> dict[str, Metric]:
    """The metrics the engine records for a task whose step is ``step`` and whose timed phases are ``phases``."""
    what = step.what
    metrics = {
        "step_time_s": Metric("s", False, f"median wall time of {what}"),
        "step_peak_memory_bytes": Metric("bytes", False, f"working memory of {what} (peak minus before)"),
        "step_cpu_time_s": Metric(
            "s",
            False,
            f"median CPU time of the case's process during {what} (CPU cases: other processes' load "
            "does not count; the clock of cross-case speed checks)",
        ),
    }
    for unit, meaning in step.work.items():
        metrics[f"throughput_{unit}_s"] = Metric(f"{unit}/s", True, f"{meaning} per second, from step_time_s")
    metrics["step_energy_j"] = Metric("J", False, f"GPU energy of {what} (NVML's total-energy counter)")
    metrics["device_used_bytes"] = Metric("bytes", None, "device memory in use after the step, as NVML sees it")
    metrics["probe_time_s"] = Metric(
        "s",
        None,
        "median time of the engine's machine probe (a fixed matmul chain, the same for every task) before and "
        "after the case: the machine's speed, not the code's; compare divides its change out of the timings",
    )
    for name, phase in phases.items():
        metrics[f"{name}_time_s"] = Metric("s", phase.higher_is_better, f"wall time of {phase.what}")
        metrics[f"{name}_cpu_time_s"] = Metric(
            "s",
            None,
            f"CPU time of the case's process during {phase.what} (CPU cases: the clock of speed checks "
            "across cases, which other processes' load does not inflate)",
        )
        for unit, meaning in phase.work.items():
            direction = None if phase.higher_is_better is None else True
            metrics[f"{name}_throughput_{unit}_s"] = Metric(
                f"{unit}/s", direction, f"{meaning} per second during {phase.what}"
            )
    return metrics


def all_metrics(task: Task) -> dict[str, Metric]:
    """Task metrics first (their declared order), then the engine's; a task may not redefine an engine name."""
    engine = engine_metrics(task.step, dict(task.phases))
    clash = sorted(set(task.metrics) & set(engine))
    if clash:
        raise ValueError(f"task {task.name} declares engine metric(s) {', '.join(clash)}: the engine records them")
    return {**task.metrics, **engine}


def task_objectives(task: Task, metrics: dict[str, Metric]) -> dict[str, str]:
    """The metrics ``task`` is about (metric -> quality, memory or time): its own ``objectives``, else the primary
    metric, the step's memory and the step's time. Each must be one of its metrics with a direction."""
    found = dict(task.objectives) or default_objectives(task.primary_metric, metrics)
    for name, kind in found.items():
        if kind not in OBJECTIVE_KINDS:
            raise ValueError(f"task {task.name}: objective {name} is {kind!r}, not one of {', '.join(OBJECTIVE_KINDS)}")
        if name not in metrics or metrics[name].higher_is_better is None:
            raise ValueError(f"task {task.name}: objective {name} is not one of its metrics with a direction")
    return found


def describe(task: Task) -> dict[str, Any]:
    """Everything a reader of a run file needs to know about its task, as JSON."""
    metrics = all_metrics(task)
    return {
        "summary": task.summary,
        "paper": asdict(task.paper),
        "step": task.step.what,
        "primary_metric": task.primary_metric,
        "metrics": {name: _spec(m) for name, m in metrics.items()},
        "objectives": task_objectives(task, metrics),
        "paper_numbers": [asdict(pn) for pn in task.paper_numbers],
        "plots": [{**asdict(p), "where": dict(p.where)} for p in task.line_plots],
        "headline_ratios": [{**asdict(r), "against": list(r.against)} for r in task.headline_ratios],
        "claims": [claim.describe(task.name) for claim in task.claims],
        "custom_plots": type(task).plots is not Task.plots,  # figures only the task's own code draws
    }
