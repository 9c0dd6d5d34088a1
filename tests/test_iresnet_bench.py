"""pytest-benchmark: each method's hot step at smoke scale (2-D density, 4 blocks, batch 256, 4 series terms):
one training step, or for freia_iresnet (no gradient) one forward + log-det. Recorded, never asserted."""

import math

import pytest

from ctbench import smoke

METHODS = ["iresnet", "residual_flow", "exact", "normflows_residual", "freia_iresnet"]


@pytest.mark.parametrize("impl", METHODS)
def test_hot_step(benchmark, impl):
    step = smoke.hot_step("iresnet", impl)
    benchmark.group = "iresnet: training step (freia_iresnet: forward + log-det), 2-D, smoke"
    loss = benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    assert loss is None if impl == "freia_iresnet" else math.isfinite(loss)
