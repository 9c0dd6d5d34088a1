"""Properties of the gan_ntk task: kernels, discriminator flows, metrics, and each method's smoke case."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import pytest
import torch
from scipy.optimize import linear_sum_assignment

from ctbench import Invalid, ReturnError
from ctbench.catalog.describe import all_metrics
from ctbench.catalog.registry import get_task
from ctbench.run import smoke
from ctbench.run.protocol import run_case
from ctbench.run.worker import execute
from reference_impls.gan_ntk._kernel_flow import ode_coefficients, training_set
from reference_impls.gan_ntk.finite_width import FiniteWidth
from reference_impls.gan_ntk.ipm import IPM
from reference_impls.gan_ntk.lsgan import LSGAN
from suites.gan_ntk import data, losses, metrics, protocol
from suites.gan_ntk.checks import ntk_slope_checks
from suites.gan_ntk.controls import ntk_record
from suites.gan_ntk.interface import DiscriminatorSpec
from suites.gan_ntk.kernels import (
    Architecture,
    ReLUMLP,
    check_psd,
    empirical_ntk,
    mlp_forward,
    psd_rtol,
    relu_kernels,
    relu_ntk,
)

TASK = "gan_ntk"
IMPLS = ("ipm", "lsgan", "vanilla", "finite_width")
F64 = torch.float64


def _points(n: int = 6, seed: int = 0) -> torch.Tensor:
    return 2.5 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _problem(n: int = 32, dtype: torch.dtype = F64) -> data.Problem:
    return data.load("eight_gaussians", n, 0, Path("/nonexistent"), dtype, torch.device("cpu"))


@functools.cache
def _dynamics_case(impl: str):
    """The smoke dynamics case of ``impl`` on two moons, run once per test session."""
    return smoke.run_case(TASK, impl, {"dataset": "two_moons"})


@functools.cache
def _ntk_case(width: int):
    return smoke.run_case(TASK, "finite_width", {"experiment": "ntk_accuracy", "width": width})


# ---------------------------------------------------------------- kernels


def test_analytic_kernels_symmetric_psd_and_diagonal():
    x = _points(20)
    arch = Architecture(depth=3, sigma_w=1.3, sigma_b=0.7, sigma_b_out=0.2)
    nngp, ntk = relu_kernels(x, x, arch)
    for k in (nngp, ntk):
        assert torch.allclose(k, k.T, atol=1e-12)
        lo, _ = check_psd(k, "test")
        assert lo > -1e-10
    q = arch.sigma_w**2 * (x * x).sum(1) / 2 + arch.sigma_b**2  # the diagonal recursion q <- s_w^2 q / 2 + beta^2
    theta = q.clone()
    for layer in range(arch.depth):
        beta2 = arch.sigma_b**2 if layer < arch.depth - 1 else arch.sigma_b_out**2
        q = arch.sigma_w**2 * q / 2 + beta2
        theta = q + arch.sigma_w**2 / 2 * theta
    assert torch.allclose(nngp.diagonal(), q, rtol=1e-12)
    assert torch.allclose(ntk.diagonal(), theta, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("dim", [2, 784])
def test_ntk_diagonal_is_exact_to_rounding(dtype, dim):
    """On the diagonal theta = 0 exactly (rho, a few ulps below 1 by rounding, is snapped to 1), so the kernels
    equal their diagonal recursion to a few ulps; arccos(1 - ulp) would give theta = sqrt(eps) and an NTK error
    about 1e-4 relative in float32, 1e-8 in float64. Also for a copy of the points (y not x)."""
    x64 = 2.5 * torch.randn(50, dim, generator=torch.Generator().manual_seed(dim), dtype=F64)
    arch = Architecture(depth=4, sigma_w=1.3, sigma_b=0.7, sigma_b_out=0.2)
    q = arch.sigma_w**2 * (x64 * x64).sum(1) / dim + arch.sigma_b**2
    ntk_diag = q.clone()
    for layer in range(arch.depth):
        beta2 = arch.sigma_b**2 if layer < arch.depth - 1 else arch.sigma_b_out**2
        q = arch.sigma_w**2 * q / 2 + beta2
        ntk_diag = q + arch.sigma_w**2 / 2 * ntk_diag
    x = x64.to(dtype)
    rtol = 50 * torch.finfo(dtype).eps
    for y in (x, x.clone()):
        nngp, ntk = relu_kernels(x, y, arch)
        torch.testing.assert_close(nngp.diagonal().double(), q, rtol=rtol, atol=0)
        torch.testing.assert_close(ntk.diagonal().double(), ntk_diag, rtol=rtol, atol=0)


def test_analytic_nngp_matches_monte_carlo_within_standard_error():
    """E[f(x) f(y)] over 2000 random width-128 nets (depth 3) against the arc-cosine NNGP, entrywise within 4
    SE."""
    x = _points(5)
    arch = Architecture(depth=3, width=128, sigma_b=1.0)
    g = torch.Generator().manual_seed(1)
    products = []
    for _ in range(20):  # 20 batches of 100 networks, each run as one batched forward
        sizes = [2] + [arch.width] * arch.depth + [1]
        ws = [torch.randn(100, o, i, generator=g, dtype=F64) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
        bs = [torch.randn(100, o, generator=g, dtype=F64) for o in sizes[1:]]
        f = mlp_forward(ws, bs, x, arch)  # (100, n)
        products.append(f[:, :, None] * f[:, None, :])
    samples = torch.cat(products)
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(len(samples))
    z = (mean - relu_kernels(x, x, arch)[0]) / se
    assert float(z.abs().max()) < 4.0, z


@pytest.mark.parametrize("depth", [1, 3])
def test_analytic_ntk_matches_monte_carlo_within_standard_error(depth):
    """Mean empirical NTK (torch.func) of 60 random width-512 nets against the analytic NTK, within 4 SE."""
    x = _points(5)
    arch = Architecture(depth=depth, width=512)
    g = torch.Generator().manual_seed(2)
    samples = torch.stack([empirical_ntk(ReLUMLP(2, arch, g, dtype=F64), x) for _ in range(60)])
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(len(samples))
    z = (mean - relu_ntk(x, x, arch)) / se
    assert float(z.abs().max()) < 4.0, z


def test_empirical_ntk_equals_gradient_inner_products():
    x, y = _points(4, 1), _points(3, 2)
    net = ReLUMLP(2, Architecture(depth=2, width=16), torch.Generator().manual_seed(0), dtype=F64)

    def grad(point: torch.Tensor) -> torch.Tensor:
        return torch.cat([g.flatten() for g in torch.autograd.grad(net(point[None]).sum(), list(net.parameters()))])

    expected = torch.stack([torch.stack([grad(a) @ grad(b) for b in y]) for a in x])
    assert torch.allclose(empirical_ntk(net, x, y), expected, rtol=1e-10)


def test_ntk_gradient_matches_finite_differences_and_is_finite_on_the_diagonal():
    x, z = _points(4, 3).requires_grad_(True), _points(5, 4)
    arch = Architecture()
    assert torch.autograd.gradcheck(lambda u: relu_ntk(u, z, arch), (x,))
    same = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(relu_ntk(same, z, arch).sum(), same)
    assert torch.isfinite(g).all()


def test_check_psd_names_the_smallest_eigenvalue():
    k = torch.diag(torch.tensor([2.0, 1.0, -0.5], dtype=F64))
    with pytest.raises(ValueError, match=r"smallest eigenvalue -0\.5"):
        check_psd(k, "test kernel")


# ---------------------------------------------------------------- losses and flows


@pytest.mark.parametrize("loss", losses.LOSSES)
def test_point_slopes_are_the_derivatives_of_point_losses(loss):
    f = torch.linspace(-3, 3, 13, dtype=F64)
    real = torch.arange(13) % 2 == 0
    auto = torch.func.grad(lambda u: losses.point_losses(loss, u, real).sum())(f)
    assert torch.allclose(losses.point_slopes(loss, f, real), auto)


@pytest.mark.parametrize("cls", [IPM, LSGAN])
def test_closed_forms_equal_the_ode_solution_of_the_kernel_flow(cls):
    """IPM's witness and LSGAN's eigendecomposition solve the same flow da/dt = -W l'(K a) as the ODE
    route."""
    problem = _problem(24)
    impl = cls()
    impl.setup(DiscriminatorSpec(Architecture(), 1.5, 0.1, 2))
    z, w, is_real = training_set(problem.particles, problem.target[:20])
    closed = impl.coefficients(z, w, is_real)
    ode = ode_coefficients(cls.loss, relu_ntk(z, z, impl.spec.arch), w, is_real, 1.5, rtol=1e-10)
    assert torch.allclose(closed, ode, rtol=1e-6, atol=1e-9)


def test_finite_width_discriminator_follows_its_empirical_ntk_witness():
    """A wide net trained by GD on the IPM loss for time tau is tau x (mean K(., y) - mean K(., x)) with its
    own empirical NTK at initialisation (linearisation), up to O(width^-1/2)."""
    problem = _problem(16)
    impl = FiniteWidth()
    impl.setup(DiscriminatorSpec(Architecture(width=512), 1.0, 0.1, 2, seed=3))
    fake, real = problem.particles, problem.target
    impl.fit(fake, real)
    probe = _points(10, 5)
    witness = 1.0 * (impl.kernel(probe, real).mean(1) - impl.kernel(probe, fake).mean(1))
    with torch.no_grad():
        rel = float((impl._f(probe) - witness).norm() / witness.norm())
    assert rel < 0.1, rel


def test_fields_are_finite_and_point_towards_the_target():
    problem = _problem(32)
    for cls in (IPM, LSGAN):
        impl = cls()
        impl.setup(DiscriminatorSpec(Architecture(), 1.0, 0.1, 2))
        v = impl.witness_gradient(problem.particles, problem.target)
        assert torch.isfinite(v).all()
        outward = (v * problem.particles).sum(1).mean()  # particles near 0, target on a circle of radius 5
        assert outward > 0


# ---------------------------------------------------------------- metrics


def test_sinkhorn_matches_exact_optimal_transport():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 2, generator=g, dtype=F64), 2 * torch.randn(64, 2, generator=g, dtype=F64) + 3
    cost = (torch.cdist(x, y) ** 2 / 2).numpy()
    rows, cols = linear_sum_assignment(cost)
    exact = cost[rows, cols].mean()
    assert metrics.sinkhorn_divergence(x, y) == pytest.approx(exact, rel=0.01)
    assert metrics.sinkhorn_divergence(x, x) == pytest.approx(0.0, abs=1e-9)
    shift = torch.tensor([1.0, 0.5], dtype=F64)
    assert metrics.sinkhorn_divergence(x, x + shift) == pytest.approx(0.625, rel=1e-3)
    assert metrics.sinkhorn_divergence(x[:50], y) == pytest.approx(metrics.sinkhorn_divergence(y, x[:50]))


def test_mmd_energy_and_mode_coverage():
    problem = _problem(400)
    y = problem.target
    h = metrics.median_distance(y)
    assert metrics.mmd(y, y, h) == pytest.approx(0.0, abs=1e-6)
    assert metrics.energy_distance(y, y) == pytest.approx(0.0, abs=1e-9)
    far = problem.particles
    assert metrics.mmd(far, y, h) > 0.1 and metrics.energy_distance(far, y) > 1.0
    assert metrics.modes_covered(y, problem.centers, 1.5, 0.2)[0] == 8
    one_mode = y[torch.cdist(y, problem.centers[:1]).squeeze(1) < 1.5]
    assert metrics.modes_covered(one_mode, problem.centers, 1.5, 0.2)[0] == 1


# ---------------------------------------------------------------- protocol


@pytest.mark.parametrize("impl", IMPLS)
def test_smoke_dynamics_case(impl):
    result = _dynamics_case(impl)
    assert result.invalid_reason is None and not result.nonfinite_metrics()
    assert result.dataset == "synthetic-two-moons" and _problem(4).dataset == "eight-gaussians"
    assert result.metrics["sinkhorn_final"] < result.metrics["sinkhorn_initial"]
    assert result.metrics["throughput_iterations_s"] > 0 and result.metrics["kernel_throughput_entries_s"] > 0
    assert result.metrics["step_time_s"] > 0 and result.metrics["step_peak_memory_bytes"] >= 0
    assert result.metrics["throughput_iterations_s"] == pytest.approx(1 / result.metrics["step_time_s"])
    assert len(result.series["field_points"]) == len(result.series["field_vectors"]) == 15 * 15


def test_ipm_on_eight_gaussians_cuts_sinkhorn_10x_and_covers_all_modes():
    result = smoke.run_case(TASK, "ipm", {"dataset": "eight_gaussians"})
    assert result.checks["sinkhorn_cut_10x"].passed, result.checks
    assert result.checks["all_modes_covered"].passed, result.checks
    assert result.metrics["modes_covered"] == 8


class SigmoidKernelIPM(IPM):
    """An ill-posed submission: the IPM witness with the (indefinite) sigmoid kernel tanh(<x, y> / d - 1)."""

    def kernel(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ y.T / x.shape[1] - 1.0)


def test_non_psd_kernel_fails_the_case_naming_the_smallest_eigenvalue():
    case = {
        "task": TASK,
        "scale": "smoke",
        "seed": 0,
        "params": {**smoke.default_params(TASK), "dataset": "eight_gaussians"},
        "impl": {
            "manifest": {"name": "sigmoid", "authors": (), "url": ""},
            "spec": f"{__file__}:SigmoidKernelIPM",
            "submission": "test",
        },
    }
    record = execute(case, "cpu", Path("/nonexistent"), Path("/tmp"))
    assert record["status"] == "failed"
    assert "not positive semi-definite: smallest eigenvalue -" in record["error"], record["error"]


def test_diverging_step_is_recorded_invalid_with_the_iteration():
    task = get_task(TASK)
    scale = task.scales["smoke"]
    huge = dataclasses.replace(scale, config={**scale.config, "eta": 1e6})
    params = {**smoke.default_params(TASK), "dataset": "eight_gaussians"}
    with pytest.raises(Invalid, match="diverged at iteration 1 ") as raised:
        task.prepare(IPM(), huge, params, smoke.context(TASK)).evaluate(None)
    assert raised.value.metrics == {"diverged_at_iteration": 1.0} and "sinkhorn" in raised.value.series
    with smoke.case_state(TASK) as state:
        result = run_case(task, IPM(), huge, params, smoke.context(TASK), state)
    assert result.invalid_reason is not None and "diverged at iteration 1 " in result.invalid_reason
    assert result.metrics["diverged_at_iteration"] == 1.0 and result.metrics["step_time_s"] > 0


def test_measured_step_leaves_the_trajectory_unchanged():
    """The finite net is re-drawn at every fit: the engine's calls of the step must not shift the trajectory's
    random draws (the step runs on its own copy of the method)."""
    params = {"dataset": "two_moons"}
    untouched = smoke.prepare(TASK, "finite_width", params)
    stepped = smoke.prepare(TASK, "finite_width", params)
    for _ in range(3):
        moved = stepped.step()
    assert moved.shape == (get_task(TASK).scales["smoke"].config["n"], 2) and torch.isfinite(moved).all()
    assert stepped.work == {"iterations": 1}
    assert stepped.evaluate(None).series["sinkhorn"] == untouched.evaluate(None).series["sinkhorn"]


def test_ntk_step_is_network_zeros_empirical_ntk():
    prepared = smoke.prepare(TASK, "finite_width", {"experiment": "ntk_accuracy", "width": 64})
    k = prepared.step()
    cfg = get_task(TASK).scales["smoke"].config
    assert k.shape == (cfg["ntk_points"], cfg["ntk_points"]) and prepared.work == {"entries": cfg["ntk_points"] ** 2}
    first_error = prepared.evaluate(None).series["ntk_rel_error_by_net"][0][1]
    assert first_error == pytest.approx(_ntk_case(64).series["ntk_rel_error_by_net"][0][1], rel=1e-12)
    pts = data.load("eight_gaussians", cfg["ntk_points"], 0, Path("/nonexistent"), F64, torch.device("cpu")).target
    arch = protocol.architecture(cfg, 64)
    exact = relu_ntk(pts, pts, arch)
    assert float((k - exact).norm() / exact.norm()) == pytest.approx(first_error, rel=1e-12)


def test_ntk_accuracy_cases_and_the_width_slope_check():
    records = []
    for width in (64, 256, 1024):
        result = _ntk_case(width)
        assert 0 < result.metrics["ntk_rel_error"] < 1
        assert result.metrics["throughput_entries_s"] > 0 and result.metrics["step_time_s"] > 0
        assert result.dataset == "eight-gaussians"
        records.append(ntk_record(width, result.metrics))
    (check,) = ntk_slope_checks(TASK, records)
    assert check.check.passed, check


def test_grid_skips_what_does_not_apply():
    task = get_task(TASK)
    scale = task.scales["smoke"]
    run = [(impl, p) for impl in IMPLS for p in scale.param_sets() if task.skip(impl, scale, p) is None]
    kernel_cases = [(i, p) for i, p in run if p["experiment"] == "ntk_accuracy"]
    assert {i for i, _ in kernel_cases} == {"finite_width"}
    assert sorted(p["width"] for _, p in kernel_cases) == [64, 256, 1024]
    assert all(p["width"] is None for _, p in run if p["experiment"] == "dynamics")
    assert len(run) == 4 * len(data.TWO_D) + 3
    with pytest.raises(ValueError, match="unknown experiment"):
        task.prepare(IPM(), scale, {"experiment": "nope", "dataset": "two_moons", "width": None}, smoke.context(TASK))
    assert all(task.skip(i, scale, p) is None for i in ("finite_width",) for p in task.benchmark_points())


def test_line_plots_draw_metrics_the_cases_carry():
    task = get_task(TASK)
    described = all_metrics(task)
    carried = {"dynamics": set(_dynamics_case("ipm").metrics), "ntk_accuracy": set(_ntk_case(64).metrics)}
    for plot in task.line_plots:
        assert plot.y in described and plot.x.removeprefix("param.") in task.scales["smoke"].grid
        assert plot.y in carried[plot.where["experiment"]], plot


def test_plots_draw_particles_and_curves():
    import matplotlib.pyplot as plt
    import pandas as pd

    task = get_task(TASK)
    records = []
    for impl, params, result in (
        ("ipm", {"dataset": "two_moons"}, _dynamics_case("ipm")),
        ("finite_width", {"experiment": "ntk_accuracy", "width": 64}, _ntk_case(64)),
    ):
        full = {**smoke.default_params(TASK), **params}
        records.append(
            {
                "task": TASK,
                "impl": impl,
                "scale": "smoke",
                "params": full,
                "seed": 0,
                "dataset": result.dataset,
                "status": "ok",
                "metrics": result.metrics,
                "series": result.series,
                "run_id": "r1",
                "hardware": "cpu",
            }
        )
    cases = pd.DataFrame(
        [
            {
                "impl": r["impl"],
                "scale": "smoke",
                "dataset": r["dataset"],
                "status": "ok",
                "hardware": "cpu",
                "params_json": json.dumps(r["params"]),
                **{f"metric.{k}": v for k, v in r["metrics"].items()},
            }
            for r in records
        ]
    )
    figures = task.plots(cases, records)
    assert set(figures) == {"particles_field_smoke", "distance_curves"}
    for fig in figures.values():
        plt.close(fig)


class KernelColumn(IPM):
    """Broken: its kernel flattened to a column (n * m, 1) instead of (n, m)."""

    def kernel(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return super().kernel(x, y).reshape(-1, 1)


class FieldTransposed(IPM):
    """Broken: the velocity at the particles transposed, (d, n) instead of (n, d)."""

    def field(self, points: torch.Tensor) -> torch.Tensor:
        return super().field(points).T


@pytest.mark.parametrize(
    ("impl", "message"),
    [
        (KernelColumn, r"KernelColumn\.kernel returned a tensor of shape \(\d+, 1\) float32; "
                       r"expected shape \(\d+, \d+\)"),
        (FieldTransposed, r"FieldTransposed\.witness_gradient \(the velocity at the particles\) returned a tensor of "
                          r"shape \(2, \d+\) float32; expected shape \(\d+, 2\) float32"),
    ],
)  # fmt: skip
def test_a_return_of_the_wrong_shape_fails_the_case_naming_the_method(impl, message):
    with pytest.raises(ReturnError, match=message):
        smoke.run_case(TASK, impl(), {"dataset": "eight_gaussians"})


def test_a_float32_kernel_is_checked_within_float32_rounding():
    """The analytic NTK of seed 1's first eight-Gaussians training set, computed in float32 (smoke's dtype), has
    its smallest eigenvalue at about -1e-5 of the largest: float32 rounding, accepted; a matrix that is not PSD
    beyond rounding still fails, whatever dtype it was computed in."""
    result = smoke.run_case(TASK, "ipm", {"dataset": "eight_gaussians", "experiment": "dynamics"}, seed=1)
    assert result.invalid_reason is None and "sinkhorn_final" in result.metrics
    a = torch.randn(64, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gram = a @ a.T
    gram[0, 0] = -0.01 * float(torch.linalg.eigvalsh(gram)[-1])  # -1% of the top eigenvalue: not rounding
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(ValueError, match="not positive semi-definite"):
            check_psd(gram.to(dtype).double(), "broken", psd_rtol(dtype))
