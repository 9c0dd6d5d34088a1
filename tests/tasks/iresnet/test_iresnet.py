"""iresnet: the log-det estimators' bias and unbiasedness, inversion, the Lipschitz constraint, memory in the
number of series terms, bad input (c >= 1), and the protocol end to end on each experiment."""

from __future__ import annotations

import contextlib
import copy
import math
import re
from dataclasses import asdict

import pytest
import torch
from torch import nn

from ctbench import ReturnError
from ctbench.api.measure import Memory, peak_memory
from ctbench.catalog.registry import get_task
from ctbench.run import smoke
from reference_impls.iresnet.exact import Exact
from reference_impls.iresnet.iresnet import IResNet
from reference_impls.iresnet.normflows_residual import NormflowsResidual
from reference_impls.iresnet.residual_flow import ResidualFlow
from suites.iresnet import configs, toy2d
from suites.iresnet.checks import PAIRED_METHODS, STEP_PAIRED, TRAINING_PAIRED, sweep_checks
from suites.iresnet.flow import Flow, conv_branch, mlp_branch, mlp_flow
from suites.iresnet.linearise import chain, linearise
from suites.iresnet.measures import estimator_error, exact_total, invert
from suites.iresnet.series import Roulette, dot, jacobian, jacobian_norm, truncation_bound, vjp_powers
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


class Opaque(nn.Module):
    """g behind a module ``linearise`` does not look into: its products are autograd's."""

    def __init__(self, g: nn.Module):
        super().__init__()
        self.g = g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.g(x)


PATHS = {"autograd": lambda g: g, "linearised": nn.Sequential}  # the two ways products of J_g are formed


@pytest.mark.parametrize("path", PATHS)
def test_truncated_series_bias_is_the_tail_and_within_its_bound(path):
    torch.manual_seed(0)
    g, x = linear_g(0.7), torch.randn(256, 3)
    means = draws(IResNet(), PATHS[path](g), x, 2, 200)
    a = g.weight.detach().double()
    partial = float(torch.trace(a) - torch.trace(a @ a) / 2)  # the 2-term series: what Hutchinson estimates
    se = float(means.std() / len(means) ** 0.5)
    assert abs(float(means.mean()) - partial) < 4 * se
    bias, bound = abs(partial - exact_of(g)), float(truncation_bound(torch.tensor(0.7), 3, 2))
    assert 0.01 < bias <= bound  # a real bias, inside Theorem 3's bound
    assert abs(float(means.mean()) - exact_of(g)) > 4 * se  # and the estimator shows it


@pytest.mark.parametrize("path", PATHS)
def test_roulette_estimate_is_unbiased(path):
    torch.manual_seed(0)
    g, x = linear_g(0.6), torch.randn(256, 3)  # (1 - p) = 0.5 > 0.6^2: finite variance
    means = draws(ResidualFlow(), PATHS[path](g), x, 2, 400)
    se = float(means.std() / len(means) ** 0.5)
    assert abs(float(means.mean()) - exact_of(g)) < 4 * se
    assert se < 0.02  # the test has power: the 2-term truncation's bias is several times larger


@pytest.mark.parametrize("path", PATHS)
def test_neumann_gradient_is_unbiased(path):
    torch.manual_seed(0)
    g, x = linear_g(0.6), torch.randn(64, 3)
    branch = PATHS[path](g)
    a = g.weight.detach().double().requires_grad_(True)
    (exact,) = torch.autograd.grad(torch.linalg.slogdet(torch.eye(3) + a).logabsdet, a)
    grads = []
    for _ in range(300):
        g.zero_grad()
        ResidualFlow().forward(branch, x.clone(), 2)[1].mean().backward()
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


def branch_and_input(kind: str) -> tuple[nn.Module, torch.Tensor]:
    if kind == "mlp":
        return mlp_branch(2, 16, 3, 0.9, 1), torch.randn(32, 2)
    return conv_branch(4, 8, (6, 6), 0.9, 1), torch.randn(3, 4, 6, 6)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_linearised_branch_matches_autograd_in_value_product_and_gradient(kind):
    torch.manual_seed(0)
    g, x = branch_and_input(kind)
    assert chain(g) is not None
    g.eval()  # the weights' power iteration stands still between the two evaluations
    x = x.requires_grad_(True)
    ref_gx, u = g(x), torch.randn_like(x)
    (ref,) = torch.autograd.grad(ref_gx, x, u, create_graph=True)
    lin = linearise(g, x)
    gx, got = lin.gx, lin.vjp(u, True)
    assert torch.allclose(gx, ref_gx) and torch.allclose(got, ref, atol=1e-6)
    w, params = torch.randn_like(ref), [x, *g.parameters()]
    expected = torch.autograd.grad((ref * w).sum(), params, allow_unused=True)
    actual = torch.autograd.grad((got * w).sum(), params, allow_unused=True)
    for e, a in zip(expected, actual, strict=True):  # the second derivatives too (elu'' from the factors' graph)
        assert (e is None) == (a is None) and (e is None or torch.allclose(e, a, atol=1e-6))
    assert not lin.vjp(u, False).requires_grad  # a graph only when asked


def test_linearised_branch_evaluates_each_weight_once_and_only_plain_chains():
    torch.manual_seed(0)
    g, x = branch_and_input("mlp")
    twin = copy.deepcopy(g)
    g(x), linearise(twin, x)  # training mode: every evaluation of a weight runs one power iteration
    assert all(torch.equal(a, b) for a, b in zip(g.buffers(), twin.buffers(), strict=True))
    assert chain(Opaque(g)) is None and chain(nn.Linear(2, 2)) is None
    assert chain(nn.Sequential(nn.Linear(2, 2), nn.Tanh())) is None
    assert chain(nn.Sequential(nn.Conv2d(2, 2, 3, stride=2))) is None
    assert chain(nn.Sequential(nn.Linear(2, 2), nn.ELU(inplace=True))) is None


@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("method", [IResNet, ResidualFlow])
def test_methods_give_the_same_estimate_and_gradient_on_either_product_path(method, kind):
    """The linearised products (and i-ResNet's fused backward through them) change the cost, not the maths: same
    draw, same log-det and gradients as autograd's products."""
    torch.manual_seed(0)
    g, x = branch_and_input(kind)
    g.eval()
    results = []
    for branch in (g, Opaque(g)):
        torch.manual_seed(1)
        g.zero_grad()
        x_in = x.clone().requires_grad_(True)
        y, logdet = method().forward(branch, x_in, 3)
        (logdet.sum() + y.sum()).backward()
        results.append([logdet.detach(), x_in.grad, *(p.grad.clone() for p in g.parameters())])
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


class KeepsGraphs(ResidualFlow):
    """The roulette estimate differentiated through every product (no Neumann gradient): memory O(n)."""

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        roulette = Roulette(terms, self.p)
        n = roulette.draw()
        lin = linearise(g, x)
        v = torch.randn_like(lin.x)
        coefficients = [(-1) ** (k + 1) * w / k for k, w in enumerate(roulette.weights(n), start=1)]
        terms_ = [c * dot(u, v) for c, u in zip(coefficients, vjp_powers(lin.vjp, v, n, True), strict=True)]
        return lin.x + lin.gx, sum(terms_)


def step_memory(impl, terms: int) -> Memory:
    """Working memory of the case's measured step (one training step) at smoke scale, as the engine reads it."""
    with smoke.case_state(TASK):
        step = smoke.step(TASK, impl, {"terms": terms})
        step()
        return peak_memory(step, torch.device("cpu"), repeat=configs.MEMORY_READINGS)


def test_memory_checks_tell_the_neumann_gradient_from_backprop_through_the_series():
    """Measured, with the engine's readings: the Neumann gradient's memory passes the flat check; the same
    roulette differentiated through its products (KeepsGraphs) and the truncated series fail it and grow."""
    readings = {
        name: {t: step_memory(impl, t) for t in (2, 16)}
        for name, impl in (("residual_flow", "residual_flow"), ("iresnet", "iresnet"), ("keeps", KeepsGraphs()))
    }
    cases = []
    for name, by_terms in readings.items():
        for t, memory in by_terms.items():
            rec = record(name, t, float(memory.step_bytes), 1.0)
            rec["spread"] = {"step_peak_memory_bytes": float(memory.spread_bytes)}
            cases.append(rec)
    with monkeypatch_shapes({"keeps": "flat"}):
        checks = {(c.name, c.scope["impl"]): c.check for c in sweep_checks(TASK, cases)}
    assert checks[("memory_flat_in_terms", "residual_flow")].passed, readings
    assert not checks[("memory_flat_in_terms", "keeps")].passed, readings
    assert checks[("memory_grows_in_terms", "iresnet")].passed, readings
    neumann, truncated = readings["residual_flow"], readings["iresnet"]
    assert neumann[16].step_bytes < truncated[16].step_bytes / 2


def contractive_flow() -> tuple[Flow, torch.Tensor]:
    """Three 2-D blocks whose every layer sits at c = 0.9 (Lip(g) up to 0.73): inversion and log-det non-trivial."""
    torch.manual_seed(0)
    flow = mlp_flow(2, 3, 16, 3, 0.9, 1)
    with torch.no_grad():
        for p in flow.parameters():
            p.mul_(4)
    converge(flow.eval(), 100)
    return flow, toy2d.sample("eight_gaussians", 256, torch.Generator().manual_seed(3))


def normflows_model(flow: Flow, terms: int):
    """normflows used directly, as its residual-flow example builds a model: Residual blocks (reverse=True) in a
    NormalizingFlow whose inverse maps data to latent, on the same branches g."""
    nf = pytest.importorskip("normflows")
    blocks = [nf.flows.Residual(g, reduce_memory=True, n_exact_terms=terms) for g in reversed(flow.branches)]
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), blocks)


def test_normflows_wrapper_inverts_as_normflows_does_at_the_tasks_tolerance():
    flow, x = contractive_flow()
    model = normflows_model(flow, 2).eval()
    with torch.no_grad():  # normflows on its own, its default tolerances (atol = rtol = 1e-5 on squared steps)
        library_error = float((model.forward(model.inverse(x.clone())) - x).norm() / x.norm())
    peer = NormflowsResidual()
    ours = invert(flow, peer, x, tol=1e-6, max_iter=100)
    assert ours.error < 1e-5 and ours.error < library_error  # at least the library's own accuracy
    g, y = flow.branches[0], x + flow.branches[0](x).detach()
    with torch.no_grad():  # and its own loop, with the task's tolerance as normflows' atol and rtol
        direct = model.flows[-1].iresblock._inverse_fixed_point(y, atol=1e-12, rtol=1e-12)
    assert torch.equal(peer.inverse(g, y, 1e-6, 100), direct)


def test_normflows_wrapper_log_det_is_normflows_own():
    np = pytest.importorskip("numpy")
    flow, x = contractive_flow()
    model, peer, terms = normflows_model(flow, 2), NormflowsResidual(), 2
    with torch.no_grad():  # evaluation: normflows' log_prob path (exact on 2-D inputs)
        _, ours = flow.forward_logdet(x, lambda g, h: peer.forward(g, h, terms))
        _, theirs = model.eval().inverse_and_log_det(x.clone())
    assert torch.allclose(ours, theirs, atol=1e-5) and torch.allclose(ours, exact_total(flow, x), atol=1e-4)
    model.train()
    for g in flow.branches:
        g.eval()  # the same weights for both (no power-iteration step between them)
    totals = []
    for run in (lambda: flow.forward_logdet(x.clone(), lambda g, h: peer.forward(g, h, terms)),
                lambda: model.inverse_and_log_det(x.clone())):  # fmt: skip
        np.random.seed(0), torch.manual_seed(0)  # normflows draws the roulette with NumPy, the probe with torch
        totals.append(run()[1].detach())
    assert torch.allclose(*totals, atol=1e-5)  # training: the library's own output, draw for draw
    # which is a gradient surrogate, not a log-det; the estimate the protocol measures is its unbiased roulette
    err = estimator_error(flow, peer, x, terms, 200)
    assert abs(err.bias) < 4 * err.bias_se, err
    surrogate = torch.stack([flow.forward_logdet(x.clone(), lambda g, h: peer.forward(g, h, terms))[1].detach()
                             for _ in range(50)]) - exact_total(flow, x)  # fmt: skip
    assert abs(float(surrogate.mean())) > 10 * err.bias_se


def test_gpu_smoke_is_a_short_subset_of_small():
    task = get_task(TASK)
    gpu, small = task.scales["gpu-smoke"], task.scales["small"]
    for axis, values in gpu.grid.items():
        assert set(values) <= set(small.grid[axis]), axis
    assert gpu.config["density_2d"] == {**small.config["density_2d"], "steps": 100, "n_test": 5000}
    refs = ("exact", "freia_iresnet", "iresnet", "normflows_residual", "residual_flow")
    run = [(i, p) for i in refs for p in gpu.param_sets() if task.skip(i, gpu, p) is None]
    assert len(run) == 9 and gpu.timeout_s <= 60 and gpu.threads is None
    assert {i for i, p in run if p["terms"] == 20} == {"iresnet", "residual_flow", "normflows_residual"}
    assert [(i, task.expected_invalid(i, gpu, p) is not None) for i, p in run if p["c"] >= 1] == [("iresnet", True)]
    assert not any(task.expected_invalid(i, gpu, p) for i, p in run if p["c"] < 1)


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
    if impl in PAIRED_METHODS:  # timed against normflows within the case, with both sides' work counted
        for metric in (STEP_PAIRED, TRAINING_PAIRED):
            low, high = result.intervals[metric]
            assert 0 < low <= m[metric] <= high and result.spread[metric] >= 0
        assert m["normflows_series_terms"] > 4  # n = 4 always evaluated, plus its roulette's M >= 1
        assert m["series_terms"] == 4 if impl == "iresnet" else m["series_terms"] > 4
    else:
        assert STEP_PAIRED not in m and "series_terms" not in m


def test_a_method_that_cannot_train_gets_no_training_metrics(smoke_results):
    result = smoke_results["freia_iresnet"]
    assert result.invalid_reason is None
    training = {"test_nll", "throughput_samples_s", "step_peak_memory_bytes", "step_time_s", "training_time_s"}
    assert not training & set(result.metrics)
    assert {"eval_throughput_samples_s", "inverse_error", "logdet_bias", "logdet_std"} <= set(result.metrics)
    assert all(check.passed for check in result.checks.values())  # what it cannot do is a note, not a failure
    assert result.checks["logdet_bias_bound"].passed and result.checks["inverse_error"].passed
    assert "no gradient" in result.note  # the reason, on the page
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
    assert without_versus(result.metrics) == without_versus(untouched.metrics)


VERSUS = (STEP_PAIRED, TRAINING_PAIRED, "series_terms", "normflows_series_terms")  # timings, and draws they made


def without_versus(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in VERSUS}


def test_pairs_against_normflows_leave_training_and_metrics_unchanged(monkeypatch):
    """The pairs timed against normflows train the case's model too: the evaluation restores it after them."""
    pytest.importorskip("normflows")
    from suites.iresnet import checks

    with smoke.case_state(TASK):
        paired = smoke.prepare(TASK, "residual_flow").evaluate(None)
        monkeypatch.setattr(checks, "PAIRED_METHODS", ())
        alone = smoke.prepare(TASK, "residual_flow").evaluate(None)
    assert set(VERSUS) <= set(paired.metrics) and not set(VERSUS) & set(alone.metrics)
    assert paired.series["train_loss"] == alone.series["train_loss"]
    assert without_versus(paired.metrics) == alone.metrics


def test_normflows_wrapper_counts_the_terms_its_roulette_evaluates():
    """``last_terms`` is normflows' own n_power_series: n_exact_terms plus its geometric draw (mean 2 at p = 1/2)."""
    np = pytest.importorskip("numpy")
    flow, x = contractive_flow()
    peer, g, terms = NormflowsResidual(), flow.branches[0], 3
    np.random.seed(0)
    counts = []
    for _ in range(400):
        peer.forward(g, x[:8].clone(), terms)
        counts.append(peer.last_terms)
    assert min(counts) == terms + 1  # the draw M >= 1
    assert abs(sum(counts) / len(counts) - (terms + 2)) < 0.25  # E[M] = 2, its standard error about 0.07
    np.random.seed(0)
    draws = np.random.geometric(0.5, 400)  # normflows draws one M per call from NumPy's global stream
    assert counts == [terms + int(m) for m in draws]
    with torch.no_grad():
        peer.forward(g, x[:8].clone(), terms)
    assert peer.last_terms is None  # evaluation: no roulette of n terms


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
    controls = [(impl, p["c"]) for impl, p in kept if task.expected_invalid(impl, smoke_scale, p)]
    assert controls == [("iresnet", 1.5)]  # the non-contractive case: a negative control, not a failure
    assert task.benchmark_points() == [{"experiment": "density_2d", "dataset": "eight_gaussians", "c": 0.9, "terms": 4}]
    small = task.scales["small"]
    assert task.skip("exact", small, {"experiment": "density_images", "dataset": "fashion-mnist", "c": 0.9, "terms": 5})
    assert task.skip("iresnet", small, {"experiment": "density_2d", "dataset": "fashion-mnist", "c": 0.9, "terms": 5})
    with pytest.raises(ValueError, match="has no data set"):
        smoke.run_case(TASK, "iresnet", {"dataset": "mnist"})


@contextlib.contextmanager
def monkeypatch_shapes(extra: dict):
    from suites.iresnet import checks

    saved = dict(checks.MEMORY_SHAPE)
    checks.MEMORY_SHAPE.update(extra)
    try:
        yield
    finally:
        checks.MEMORY_SHAPE.clear()
        checks.MEMORY_SHAPE.update(saved)


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
        record("normflows_residual", 16, 1e6, 200),
        record("freia_iresnet", 2, 1e6, 200),
    ]
    paired = {  # (impl, terms): the case's throughput over normflows' and its 95% interval, per paired metric
        ("iresnet", 2): (1.25, (1.1, 1.4)),
        ("iresnet", 16): (0.6, (0.5, 0.7)),  # slower at the long series: a fail there, not scoped away
        ("residual_flow", 2): (1.1, (0.9, 1.3)),  # the interval holds 1: inconclusive
        ("residual_flow", 16): (2.0, (1.8, 2.2)),
    }
    for case in cases:
        key = (case["impl"], case["params"]["terms"])
        if key in paired:
            value, interval = paired[key]
            case["metrics"].update({STEP_PAIRED: value, TRAINING_PAIRED: value, "series_terms": float(key[1])})
            case["metrics"]["normflows_series_terms"] = key[1] + 2.0
            case["intervals"] = {STEP_PAIRED: interval, TRAINING_PAIRED: interval}
    found = sweep_checks(TASK, cases)
    checks = {(c.name, c.scope["impl"], c.scope.get("terms")): c.check for c in found}
    assert not checks[("memory_grows_in_terms", "iresnet", None)].passed  # 1.2x is not growth
    assert not checks[("memory_flat_in_terms", "residual_flow", None)].passed  # 3x is not flat
    assert not checks[("eval_throughput_samples_s_vs_freia_iresnet", "iresnet", 2)].passed
    outcomes = {"iresnet": {2: "pass", 16: "fail"}, "residual_flow": {2: "inconclusive", 16: "pass"}}
    for name in ("throughput_samples_s_vs_normflows_residual", "training_throughput_samples_s_vs_normflows_residual"):
        for impl, by_terms in outcomes.items():
            for terms, outcome in by_terms.items():  # every series length, decided by the paired interval
                check = checks[(name, impl, terms)]
                assert check.outcome == outcome and check.value == paired[(impl, terms)][0], (name, impl, terms)
                assert check.interval == paired[(impl, terms)][1] and "normflows' roulette" in check.description
    assert not any(c.scope["impl"] == "normflows_residual" and "_vs_" in c.name for c in found)  # the peer itself
    del cases[0]["metrics"][STEP_PAIRED]  # a case without the paired ratio (e.g. normflows not installed)
    found = sweep_checks(TASK, cases)
    assert ("throughput_samples_s_vs_normflows_residual", "iresnet", 2) not in {
        (c.name, c.scope["impl"], c.scope.get("terms")) for c in found
    }


def test_plots_from_smoke_records(smoke_results):
    from ctbench.boards.table import cases_frame
    from ctbench.catalog.describe import all_metrics
    from ctbench.figures.plotting import draw

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


def test_the_controls_inputs_pass_with_the_reference_methods():
    """The per-case controls fail by their defect, not by their input: the same linear flows pass each check
    with the reference methods at Lip(g) = 0.9 (the inversion and Lipschitz controls use 1.1 and 1.5)."""
    from suites.iresnet import controls, measures, protocol

    cfg = configs.SMOKE
    with controls.seeded() as x:
        truncated = estimator_error(controls.linear_flow(0.6), IResNet(), x, 4, cfg["estimator_draws"])
        roulette = estimator_error(controls.linear_flow(0.9), ResidualFlow(), x, 2, cfg["estimator_draws"])
        inv = invert(controls.linear_flow(0.9), IResNet(), x, cfg["inverse_tol"], cfg["inverse_max_iter"])
        lip = measures.lipschitz(controls.linear_flow(0.9), x, cfg["lipschitz_iterations"])
    assert protocol.estimator_checks("truncated", truncated, 4)["logdet_bias_bound"].passed
    assert protocol.estimator_checks("roulette", roulette, 2)["logdet_unbiased"].passed
    assert protocol.inverse_check(inv, cfg["inverse_max_iter"]).passed
    assert protocol.lipschitz_check(lip, 0.9).passed


class ColumnLogDet(IResNet):
    """Broken: i-ResNet's log-det as a column (N, 1), which broadcasting would turn into an (N, N) total."""

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        y, logdet = super().forward(g, x, terms)
        return y, logdet[:, None]


def test_a_log_det_of_the_wrong_shape_fails_the_case_naming_the_method():
    message = "ColumnLogDet.forward (log-det per sample) returned a tensor of shape (4, 1) float32; expected shape (4,)"
    with pytest.raises(ReturnError, match=re.escape(message)):
        smoke.run_case(TASK, ColumnLogDet())


def test_the_checked_method_is_the_method_for_everything_else():
    from suites.iresnet.protocol import Checked

    method = ResidualFlow()
    method.last_terms = 7  # an attribute of its own, read by the protocol
    checked = Checked(method)
    assert checked.manifest.name == "residual_flow" and checked.series == "roulette" and checked.last_terms == 7
    g, x = linear_g(0.5), torch.randn(4, 3)
    y, logdet = checked.forward(g, x, 2)
    assert y.shape == x.shape and logdet.shape == (4,)
