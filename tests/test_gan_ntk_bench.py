"""pytest-benchmark: one generator iteration of each discriminator dynamics at smoke scale (eight Gaussians,
128 particles), and one empirical-NTK evaluation of the finite network. Recorded, never asserted on."""

import pytest
import torch

from ctbench import smoke

TASK = "gan_ntk"
IMPLS = ["ipm", "lsgan", "vanilla", "finite_width"]


@pytest.mark.parametrize("impl", IMPLS)
def test_generator_iteration(benchmark, impl):
    step = smoke.hot_step(TASK, impl, {"dataset": "eight_gaussians"})
    benchmark.group = "gan_ntk: one generator iteration (fit + move), 128 particles"
    particles = benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    assert torch.isfinite(particles).all()


@pytest.mark.parametrize("width", [64, 1024])
def test_empirical_ntk(benchmark, width):
    kernel = smoke.hot_step(TASK, "finite_width", {"experiment": "ntk_accuracy", "width": width})
    benchmark.group = "gan_ntk: empirical NTK by torch.func, 8 points"
    k = benchmark.pedantic(kernel, rounds=3, warmup_rounds=1)
    assert k.shape == (8, 8)
