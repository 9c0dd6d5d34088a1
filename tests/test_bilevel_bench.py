"""pytest-benchmark: one step of each bilevel solver on the smoke quadratic. Recorded, never asserted."""

import pytest
import torch

from ctbench import smoke

SOLVERS = ["soba", "saba", "stocbio", "amigo", "fsla", "full_batch"]


@pytest.mark.parametrize("impl", SOLVERS)
def test_solver_step(benchmark, impl):
    step = smoke.hot_step("bilevel", impl, {"problem": "quadratic"})
    benchmark.group = "bilevel: one step, smoke quadratic"
    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    solver = step.__self__
    assert torch.isfinite(solver.outer_variable()).all()
