"""asv benchmarks of every task at smoke scale: each reference (and each submission named in the environment
variable ``CTBENCH_SUBMISSION``, ``TASK=SPEC[;TASK=SPEC]``) at the task's benchmark points.

``Step`` times the prepared step ``ctbench run`` measures (``time_step``, ``peakmem_step``); ``Case`` runs the
whole smoke case through the engine once and tracks its engine-measured step memory and the task's primary
metric. Adding a task adds its benchmarks here with no edit.
"""

from __future__ import annotations

from ctbench.catalog.registry import get_task
from ctbench.run import process, smoke

CASES = {c.id: c for c in smoke.bench_cases()}


class Step:
    """The prepared step of one case (a training step, a draw of estimates, a solver step)."""

    params = list(CASES)
    param_names = ["case"]
    timeout = 600

    def setup(self, case_id):
        case = CASES[case_id]
        process.apply(smoke.state(case.task))
        prepared = smoke.prepare(case.task, case.instance(), case.params)
        if prepared.step is None:
            raise NotImplementedError  # asv skips a benchmark whose setup raises NotImplementedError
        self.step = prepared.step
        self.step()

    def time_step(self, case_id):
        self.step()

    def peakmem_step(self, case_id):
        self.step()


class Case:
    """The whole smoke case once, through the engine: its step memory and the task's primary metric."""

    params = list(CASES)
    param_names = ["case"]
    timeout = 1800

    def setup_cache(self):
        results = {}
        for case_id, case in CASES.items():
            try:
                results[case_id] = smoke.run_case(case.task, case.instance(), case.params).metrics
            except Exception:  # a case that fails has no value to track; asv shows it as missing
                results[case_id] = {}
        return results

    def track_step_memory_mb(self, metrics, case_id):
        return metrics[case_id].get("step_peak_memory_bytes", float("nan")) / 1e6

    def track_primary_metric(self, metrics, case_id):
        task = get_task(CASES[case_id].task)
        return metrics[case_id].get(task.primary_metric, float("nan"))

    track_step_memory_mb.unit = "MB"
    track_primary_metric.unit = "task's primary metric"
