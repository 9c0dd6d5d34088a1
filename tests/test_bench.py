"""pytest-benchmark of every task's prepared step: each reference (and each submission named in
``CTBENCH_SUBMISSION``) at the task's benchmark points, at smoke scale, under the case's process state. The step is
the one ``ctbench run`` measures (``Task.prepare``): recorded, never asserted on a timing."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from ctbench.run import smoke

CASES = smoke.bench_cases()


def finite_somewhere(value: Any) -> bool:
    """A step's output holds a finite number (a loss, particles, estimates), or is nothing at all."""
    if value is None:
        return True
    if isinstance(value, torch.Tensor):
        return value.numel() == 0 or bool(torch.isfinite(value).any())
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, (tuple, list)):
        return all(finite_somewhere(v) for v in value)
    return True


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_step(benchmark, case):
    with smoke.case_state(case.task):
        prepared = smoke.prepare(case.task, case.instance(), case.params)
        if prepared.step is None:
            pytest.skip(f"{case.id}: no step to time ({prepared.no_step})")
        benchmark.group = f"{case.task}: {smoke.get_task(case.task).step.what}"
        benchmark.extra_info.update(task=case.task, impl=case.impl, params=dict(case.params))
        out = benchmark.pedantic(prepared.step, rounds=5, warmup_rounds=1)
    assert finite_somewhere(out), f"{case.id}: the step's output holds no finite number"
