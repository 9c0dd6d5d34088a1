"""pytest-benchmark: one draw of n_time estimates from each fitted estimator at smoke scale (eg1). Recorded, never
asserted: the trained NEIS flows' sampling throughput is the issue's speed figure."""

import pytest
import torch

from ctbench import smoke
from suites.neis.task import NEISTask

METHODS = ["vanilla_is", "ais", "neis_linear", "neis_gradient", "neis_mlp"]
N_TIME = NEISTask.scales["smoke"].config["n_time"]


@pytest.fixture(autouse=True)
def one_thread():
    """Timed on one intra-op thread: the tensors are tiny, and on a loaded 2-core machine two threads ran 25x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("impl", METHODS)
def test_sampling_step(benchmark, impl):
    step = smoke.hot_step("neis", impl, {"target": "eg1"})
    benchmark.group = "neis: n_time estimates of Z on eg1"
    log_z_hat = benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    assert log_z_hat.shape == (N_TIME,) and bool(log_z_hat.isfinite().any())
