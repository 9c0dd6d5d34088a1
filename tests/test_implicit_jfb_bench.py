"""pytest-benchmark: one training step of each backward method at smoke scale (plain fixed-point forward,
tolerance 1e-2). Recorded, never asserted on."""

import math

import pytest
import torch

from ctbench import smoke

METHODS = ["jfb", "ift", "ift_cg", "unrolled", "explicit", "torchdeq_ift", "torchdeq_onestep"]


@pytest.fixture(autouse=True)
def one_thread():
    """Timed single-threaded, like ``ctbench run --threads 1``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("impl", METHODS)
def test_training_step(benchmark, impl):
    step = smoke.hot_step("implicit_jfb", impl)
    benchmark.group = "implicit_jfb: training step, fixed-point forward, tol 1e-2"
    loss = benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    assert math.isfinite(loss)
