"""The shared measurement module: a step's working memory is seen on a CPU, timings are repeated."""

import time as clock

import torch

from ctbench.api.measure import Policy, measure_step, peak_memory, time_call
from ctbench.machine.env import environment

CPU = torch.device("cpu")


def test_cpu_step_memory_sees_a_transient_allocation():
    def step():
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched, then freed when the step returns
        return float(x.sum())

    step()
    memory = peak_memory(step, CPU, repeat=3)
    assert memory.source == "cpu_rss_hwm"
    assert 60 * 2**20 < memory.step_bytes < 100 * 2**20


def test_memory_held_before_the_step_is_not_counted():
    held = torch.ones(64 * 2**20 // 4)

    def step():
        return float(held.sum())

    assert peak_memory(step, CPU, repeat=3).step_bytes < 16 * 2**20


def test_time_call_repeats_and_summarises():
    calls = []
    timing = time_call(lambda: calls.append(1), CPU, repeat=5, warmup=2)
    assert len(calls) == 7 and len(timing.times) == 5
    assert timing.median >= 0 and timing.iqr >= 0


def test_environment_record_without_a_gpu_driver():
    env = environment()
    assert env["gpus"] == [] or all("name" in g for g in env["gpus"])
    assert env["torch"] == torch.__version__ and env["cpu_cores"] >= 1 and env["ram_bytes"] > 0
    assert isinstance(env["git_dirty"], (bool, type(None)))


def test_memory_spread_is_the_range_of_the_readings():
    sizes = iter([8, 64, 32])  # MiB allocated by successive measured calls

    def step():
        x = torch.ones(next(sizes, 8) * 2**20 // 4)
        return float(x.sum())

    memory = peak_memory(step, CPU, repeat=3)
    assert 28 * 2**20 < memory.step_bytes < 48 * 2**20  # the median reading: 32 MiB
    assert 48 * 2**20 < memory.spread_bytes < 64 * 2**20  # 64 - 8 MiB
    assert peak_memory(step, CPU, repeat=1).spread_bytes == 0


def test_the_engine_records_the_steps_cpu_time_on_a_cpu():
    """A step that sleeps: wall time counts the sleep, the process's CPU time does not."""
    stats = measure_step(lambda: clock.sleep(0.02), torch.device("cpu"), Policy(warmup=0, repeat=3, memory_repeat=1))
    metrics, spread = stats.metrics({})
    # sleeping costs no CPU however loaded the machine is: the CPU time is a small part of the wall time
    assert metrics["step_time_s"] >= 0.02 and metrics["step_cpu_time_s"] < metrics["step_time_s"] / 2
    assert "step_cpu_time_s" in spread
