"""iresnet: the log-det estimators' bias and unbiasedness, inversion, the Lipschitz constraint, memory in the
number of series terms, bad input (c >= 1), and the protocol end to end on each experiment."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch
from torch import nn

from ctbench import smoke
from ctbench.measure import peak_memory
from ctbench.registry import get_task
from reference_impls.iresnet.exact import Exact
from reference_impls.iresnet.iresnet import IResNet
from reference_impls.iresnet.residual_flow import ResidualFlow
from suites.iresnet import toy2d
from suites.iresnet.checks import sweep_checks
from suites.iresnet.flow import conv_branch, mlp_branch
from suites.iresnet.series import jacobian, jacobian_norm, truncation_bound
from suites.iresnet.spectral import converge

TASK = "iresnet"


def linear_g(norm: float, dim: int = 3, seed: int = 0) -> nn.Linear:
    """g(x) = A x, A = Q diag(norm, ..., norm / 2) Q^T: J_g = A everywhere, ||A||_2 = norm, log-det known."""
    g = nn.Linear(dim, dim, bias=False)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed)))
    with torch.no_grad():
        g.weight.copy_(q @ torch.diag(torch.linspace(norm, norm / 2, dim)) @ q.T)
    return g


def exact_of(g: nn.Linear) -> float:
    return float(torch.linalg.slogdet(torch.eye(g.weight.shape[0]) + g.weight.detach().double()).logabsdet)


def draws(method, g: nn.Module, x: torch.Tensor, terms: int, n: int) -> torch.Tensor:
    """n independent batch means of the method's log-det estimate (as in training: gradients enabled)."""
    return torch.stack([method.forward(g, x.clone(), terms)[1].detach().double().mean() for _ in range(n)])


def test_truncated_series_bias_is_the_tail_and_within_its_bound():
    torch.manual_seed(0)
    g, x = linear_g(0.7), torch.randn(256, 3)
    means = draws(IResNet(), g, x, 2, 200)
    a = g.weight.detach().double()
    partial = float(torch.trace(a) - torch.trace(a @ a) / 2)  # the 2-term series: what Hutchinson estimates
    se = float(means.std() / len(means) ** 0.5)
    assert abs(float(means.mean()) - partial) < 4 * se
    bias, bound = abs(partial - exact_of(g)), float(truncation_bound(torch.tensor(0.7), 3, 2))
    assert 0.01 < bias <= bound  # a real bias, inside Theorem 3's bound
    assert abs(float(means.mean()) - exact_of(g)) > 4 * se  # and the estimator shows it


def test_roulette_estimate_is_unbiased():
    torch.manual_seed(0)
    g, x = linear_g(0.6), torch.randn(256, 3)  # (1 - p) = 0.5 > 0.6^2: finite variance
    means = draws(ResidualFlow(), g, x, 2, 400)
    se = float(means.std() / len(means) ** 0.5)
    assert abs(float(means.mean()) - exact_of(g)) < 4 * se
    assert se < 0.02  # the test has power: the 2-term truncation's bias is several times larger


def test_neumann_gradient_is_unbiased():
    torch.manual_seed(0)
    g, x = linear_g(0.6), torch.randn(64, 3)
    a = g.weight.detach().double().requires_grad_(True)
    (exact,) = torch.autograd.grad(torch.linalg.slogdet(torch.eye(3) + a).logabsdet, a)
    grads = []
    for _ in range(300):
        g.zero_grad()
        ResidualFlow().forward(g, x.clone(), 2)[1].mean().backward()
        grads.append(g.weight.grad.clone().double())
    grads = torch.stack(grads)
    se = grads.std(0) / len(grads) ** 0.5
    assert ((grads.mean(0) - exact).abs() < 4 * se + 1e-6).all()
    assert float((grads.mean(0) - exact).norm() / exact.norm()) < 0.05


def test_exact_method_matches_slogdet_and_its_gradient():
    g, x = linear_g(0.8), torch.randn(8, 3)
    y, logdet = Exact().forward(g, x, 0)
    assert torch.allclose(y, x + g(x))
    assert torch.allclose(logdet.double(), torch.full((8,), exact_of(g), dtype=torch.float64), atol=1e-5)
    logdet.sum().backward()
    a = g.weight.detach().double().requires_grad_(True)
    (expected,) = torch.autograd.grad(8 * torch.linalg.slogdet(torch.eye(3) + a).logabsdet, a)
    assert torch.allclose(g.weight.grad.double(), expected, atol=1e-4)


def test_fixed_point_inversion_converges_at_c_0_9():
    g, y = linear_g(0.9), 3 * torch.randn(64, 3)  # the slowest contraction c = 0.9 allows
    x = IResNet().inverse(g, y, tol=1e-6, max_iter=100).detach()
    assert float((x + g(x).detach() - y).norm() / y.norm()) < 1e-4
    x_true = torch.linalg.solve(torch.eye(3) + g.weight.detach(), y.T).T
    assert float((x - x_true).norm() / x_true.norm()) < 1e-4


def test_spectral_normalisation_bounds_each_layer_and_the_jacobian():
    torch.manual_seed(0)
    mlp = mlp_branch(2, 16, 3, 0.9, 1)
    conv = conv_branch(2, 4, (5, 5), 0.9, 1)
    with torch.no_grad():  # make every weight's norm exceed c so normalisation acts
        for p in list(mlp.parameters()) + list(conv.parameters()):
            p.mul_(10)
    for net in (mlp, conv):
        converge(net.eval(), 200)
    for layer in [m for m in mlp if isinstance(m, nn.Linear)]:
        assert abs(float(torch.linalg.matrix_norm(layer.weight.detach(), 2)) - 0.9) < 1e-3
    for layer in [m for m in conv if isinstance(m, nn.Conv2d)]:
        # the operator norm of the convolution on its 5x5 input, from its dense matrix
        op = torch.func.jacrev(lambda v, w=layer.weight, p=layer.padding: nn.functional.conv2d(v, w, padding=p))
        dense = op(torch.zeros(1, layer.in_channels, 5, 5)).reshape(-1, layer.in_channels * 25)
        assert float(torch.linalg.matrix_norm(dense.detach(), 2)) <= 0.9 * (1 + 1e-3)
    x = torch.randn(32, 2)
    power = jacobian_norm(mlp, x, 50)
    svd = torch.linalg.matrix_norm(jacobian(mlp, x)[1], 2)
    assert torch.allclose(power, svd, rtol=1e-3)
    assert float(svd.max()) <= 0.9 + 1e-3


def step_memory(impl: str, terms: int) -> int:
    """Working memory of the case's measured step (one training step) at smoke scale."""
    with smoke.case_state(TASK):
        step = smoke.step(TASK, impl, {"terms": terms})
        step()
        return peak_memory(step, torch.device("cpu"), repeat=3).step_bytes


def test_neumann_memory_is_flat_in_terms_while_truncated_grows():
    truncated = [step_memory("iresnet", t) for t in (2, 16)]
    neumann = [step_memory("residual_flow", t) for t in (2, 16)]
    assert truncated[1] > 2 * truncated[0], truncated
    assert neumann[1] < 1.3 * neumann[0] + 512 * 1024, neumann  # flat up to allocator noise
    assert neumann[1] < truncated[1] / 2


def test_toy_densities_are_normalised_and_cover_their_samples():
    xs = torch.linspace(-4.5, 4.5, 91)  # spacing 0.1: the Riemann sum of Gaussians of std >= 0.2 is exact enough
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    cell = float(xs[1] - xs[0]) ** 2
    for name in ("eight_gaussians", "two_moons"):
        assert abs(float(toy2d.log_prob(name, grid).exp().sum()) * cell - 1) < 1e-3
    for name in toy2d.DATASETS:
        x = toy2d.sample(name, 2000, torch.Generator().manual_seed(0))
        assert torch.isfinite(toy2d.log_prob(name, x)).all(), name
    with pytest.raises(ValueError, match="unknown 2-D dataset"):
        toy2d.sample("spirals", 10, torch.Generator())


@pytest.fixture(scope="module")
def smoke_results():
    return {impl: smoke.run_case(TASK, impl) for impl in ("iresnet", "residual_flow", "exact", "freia_iresnet")}


@pytest.mark.parametrize("impl", ["iresnet", "residual_flow", "exact"])
def test_reference_methods_pass_every_check_on_smoke(smoke_results, impl):
    result = smoke_results[impl]
    assert result.invalid_reason is None
    assert not result.nonfinite_metrics()
    failed = {k: c for k, c in result.checks.items() if not c.passed}
    assert not failed, failed
    m = result.metrics
    assert m["inverse_error"] < 1e-4 and m["lipschitz_measured"] <= 0.9 + 0.01
    assert m["test_nll"] < 6 and m["true_nll"] == pytest.approx(2.74, abs=0.1)
    assert m["step_peak_memory_bytes"] > 0 and m["step_time_s"] > 0
    batch = get_task(TASK).scales["smoke"].config["density_2d"]["batch"]
    assert m["throughput_samples_s"] == pytest.approx(batch / m["step_time_s"])
    assert m["training_throughput_samples_s"] > 0 and m["eval_throughput_samples_s"] > 0
    assert len(result.series["samples"]) == 500


def test_a_method_that_cannot_train_gets_no_training_metrics(smoke_results):
    result = smoke_results["freia_iresnet"]
    assert result.invalid_reason is None
    training = {"test_nll", "throughput_samples_s", "step_peak_memory_bytes", "step_time_s", "training_time_s"}
    assert not training & set(result.metrics)
    assert {"eval_throughput_samples_s", "inverse_error", "logdet_bias", "logdet_std"} <= set(result.metrics)
    assert result.checks["logdet_bias_bound"].passed and result.checks["inverse_error"].passed
    assert not result.checks["logdet_differentiable"].passed  # the reason, on the page
    assert "no gradient" in result.note
    with pytest.raises(ValueError, match="no step"):
        smoke.step(TASK, "freia_iresnet")


def test_measured_steps_leave_training_and_metrics_unchanged():
    """The engine's steps train the case's model before the evaluation: it restores weights, random streams and
    batches, so training and every quality metric are those of a case whose step was never measured."""
    with smoke.case_state(TASK):
        untouched = smoke.prepare(TASK, "residual_flow").evaluate(None)
        stepped = smoke.prepare(TASK, "residual_flow")
        losses = [stepped.step() for _ in range(3)]
        result = stepped.evaluate(None)
    assert all(math.isfinite(loss) for loss in losses) and stepped.work == {"samples": 256}
    assert result.series["train_loss"] == untouched.series["train_loss"]
    assert result.metrics == untouched.metrics


def test_non_contractive_blocks_make_the_case_invalid_with_the_residual():
    result = smoke.run_case(TASK, "iresnet", {"c": 1.5})
    assert result.invalid_reason is not None
    assert "c = 1.5" in result.invalid_reason and "residual" in result.invalid_reason
    assert not result.nonfinite_metrics()  # invalid, not failed: whatever is kept is finite
    assert result.metrics["inverse_residual"] > 1e-3


def test_image_density_and_classification_run_on_fashion_mnist(fashion_mnist_root):
    images = smoke.run_case(
        TASK,
        "residual_flow",
        {"experiment": "density_images", "dataset": "fashion-mnist"},
        data_root=fashion_mnist_root,
    )
    assert images.dataset == "fashion-mnist" and images.invalid_reason is None
    assert 0 < images.metrics["bits_per_dim"] < 12
    assert images.metrics["test_nll"] == pytest.approx(images.metrics["bits_per_dim"] * 784 * math.log(2))
    assert images.checks["inverse_error"].passed and images.checks["lipschitz"].passed
    assert "logdet_bias" not in images.metrics  # no exact log-det in 784 dimensions
    for c in (0.9, None):  # the i-ResNet classifier and the same network without the Lipschitz constraint
        result = smoke.run_case(
            TASK,
            "iresnet",
            {"experiment": "classification", "dataset": "fashion-mnist", "c": c},
            data_root=fashion_mnist_root,
        )
        assert result.invalid_reason is None and 0 <= result.metrics["test_accuracy"] <= 1
        assert ("lipschitz" in result.checks) == (c is not None)


def test_grid_skips_and_bad_parameters():
    task = get_task(TASK)
    smoke_scale = task.scales["smoke"]
    kept = [
        (impl, p)
        for impl in ("iresnet", "residual_flow", "exact", "normflows_residual", "freia_iresnet")
        for p in smoke_scale.param_sets()
        if task.skip(impl, smoke_scale, p) is None
    ]
    assert len(kept) == 8
    assert task.benchmark_points() == [{"experiment": "density_2d", "dataset": "eight_gaussians", "c": 0.9, "terms": 4}]
    small = task.scales["small"]
    assert task.skip("exact", small, {"experiment": "density_images", "dataset": "fashion-mnist", "c": 0.9, "terms": 5})
    assert task.skip("iresnet", small, {"experiment": "density_2d", "dataset": "fashion-mnist", "c": 0.9, "terms": 5})
    with pytest.raises(ValueError, match="has no data set"):
        smoke.run_case(TASK, "iresnet", {"dataset": "mnist"})


def record(impl: str, terms: int, memory: float, rate: float) -> dict:
    params = {"experiment": "density_2d", "dataset": "eight_gaussians", "c": 0.9, "terms": terms}
    metrics = {"step_peak_memory_bytes": memory, "throughput_samples_s": rate, "eval_throughput_samples_s": rate}
    return {
        "task": TASK,
        "status": "ok",
        "scale": "smoke",
        "dataset": "toy2d-eight_gaussians",
        "seed": 0,
        "impl": impl,
        "params": params,
        "metrics": metrics,
    }


def test_run_checks_flag_memory_shape_and_speed_ratios():
    cases = [
        record("iresnet", 2, 1e6, 100),
        record("iresnet", 16, 1.2e6, 100),
        record("residual_flow", 2, 1e6, 50),
        record("residual_flow", 16, 3e6, 50),
        record("normflows_residual", 2, 1e6, 80),
        record("freia_iresnet", 2, 1e6, 200),
    ]
    checks = {(c.name, c.scope["impl"]): c.check for c in sweep_checks(TASK, cases)}
    assert not checks[("memory_grows_in_terms", "iresnet")].passed  # 1.2x is not growth
    assert not checks[("memory_flat_in_terms", "residual_flow")].passed  # 3x is not flat
    assert checks[("throughput_samples_s_vs_normflows_residual", "iresnet")].value == pytest.approx(1.25)
    assert not checks[("throughput_samples_s_vs_normflows_residual", "residual_flow")].passed
    assert not checks[("eval_throughput_samples_s_vs_freia_iresnet", "iresnet")].passed


def test_plots_from_smoke_records(smoke_results):
    from ctbench.describe import all_metrics
    from ctbench.plotting import draw
    from ctbench.table import cases_frame

    task = get_task(TASK)
    records = []
    for impl, result in smoke_results.items():
        rec = record(impl, 4, result.metrics.get("step_peak_memory_bytes", 1.0), 1.0)
        rec.update(metrics=result.metrics, series=result.series, checks={}, submission="reference")
        records.append(rec)
    records.append({**records[0], "params": {**records[0]["params"], "terms": 12}})
    run = {"run_id": "r", "created": "now", "env": {}, "cases": records}
    frame = cases_frame([run])
    figures = task.plots(frame, [{**r, "run_id": "r", "hardware": "cpu"} for r in records])
    assert set(figures) == {"samples_2d"}  # the metric-against-terms plots are declarative
    for plot in task.line_plots:
        assert plot.y in all_metrics(task) and plot.x.removeprefix("param.") in task.scales["smoke"].grid
        assert draw({**asdict(plot), "where": dict(plot.where)}, frame) is not None, plot.name
