"""pytest-benchmark: one training step of each gradient method at smoke scale (depth 64). Recorded, never asserted."""

import pytest

from ctbench import smoke

METHODS = ["backprop", "checkpoint", "adjoint_euler", "adjoint_heun", "torchdiffeq"]


@pytest.mark.parametrize("impl", METHODS)
def test_training_step(benchmark, impl):
    step = smoke.hot_step("adjoint_resnet", impl, {"depth": 64})
    benchmark.group = "adjoint_resnet: training step, depth 64"
    loss = benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    assert loss == loss  # a finite loss came out of the step (NaN != NaN)
