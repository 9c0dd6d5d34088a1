"""Properties of the implicit_jfb task: solvers, the exact gradient, each method's gradient and its cost in
Jacobian products, memory against forward iterations, invalid and failed cases, run-level checks and plots."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ctbench import Invalid
from ctbench.api.measure import peak_memory
from ctbench.catalog.describe import all_metrics
from ctbench.catalog.registry import get_task
from ctbench.run.protocol import run_case as engine_run_case
from ctbench.run.smoke import case_state, context, reference, run_case
from ctbench.run.worker import execute
from suites.implicit_jfb import checks, training
from suites.implicit_jfb.controls import backward, memory, record
from suites.implicit_jfb.exact import cosine, flat, implicit_gradient
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.model import ImplicitNet
from suites.implicit_jfb.solvers import FixedPointSolver

TASK = get_task("implicit_jfb")
IMPLS = ["explicit", "ift", "ift_cg", "jfb", "torchdeq_ift", "torchdeq_onestep", "unrolled"]


@pytest.fixture(autouse=True)
def smoke_state():
    """The smoke case's process state (one thread), so that these tests' run time does not depend on the cores or
    on what else runs there; the previous state is restored after."""
    with case_state("implicit_jfb"):
        yield


def tiny_net(contraction: float = 0.9, channels: int = 8, seed: int = 0) -> ImplicitNet:
    torch.manual_seed(seed)
    return ImplicitNet(1, 12, 10, channels, 2, 4, 0, 1, contraction, stem_stride=2)


def tiny_batch(n: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 12, 12, generator=g), torch.randint(10, (n,), generator=g)


def method_gradient(net: ImplicitNet, name: str, x: torch.Tensor, y: torch.Tensor, solver: FixedPointSolver):
    """(gradient of Q's and T's parameters, Jacobian products of the backward) of a reference method."""
    impl = reference("implicit_jfb", name)
    net.zero_grad(set_to_none=True)
    z, layer = training.forward(net, impl, x, solver)
    before = layer.jacobian_products
    training.backward(training.loss_of(net, z, y), net, name)
    params = net.implicit_parameters()
    return flat([p.grad for p in params], params), layer.jacobian_products - before


@pytest.mark.parametrize("method", ["fixed_point", "anderson"])
def test_solver_finds_the_fixed_point_of_a_linear_contraction(method):
    torch.manual_seed(0)
    a = torch.randn(6, 6, dtype=torch.float64)
    a = 0.8 * a / torch.linalg.matrix_norm(a, 2)
    b = torch.randn(4, 6, dtype=torch.float64)
    solution = FixedPointSolver(method, 1e-10, 500)(lambda u: u @ a.T + b, torch.zeros_like(b))
    exact = torch.linalg.solve(torch.eye(6, dtype=torch.float64) - a, b.T).T
    assert solution.converged(1e-10)
    assert torch.allclose(solution.u, exact, atol=1e-8)


def test_solver_rejects_unknown_method():
    with pytest.raises(ValueError, match="unknown fixed-point solver"):
        FixedPointSolver("newton", 1e-3, 10)


def test_latent_map_is_a_contraction():
    net = tiny_net(contraction=0.7).double()
    x, _ = tiny_batch()
    T = net.latent_map(net.inject(x.double()))
    u, w = torch.randn(2, 16, 8, 6, 6, dtype=torch.float64)
    ratio = (T(u) - T(w)).flatten(1).norm(dim=1) / (u - w).flatten(1).norm(dim=1)
    assert ratio.max() <= 0.7 * 1.01


def test_layer_counts_every_kind_of_jacobian_product():
    net = tiny_net()
    x, _ = tiny_batch(4)
    v = net.inject(x)
    layer = Layer(net.latent_map(v), v.shape)
    u = torch.randn(v.shape, requires_grad=True)
    out = layer(u)
    torch.autograd.grad(out, u, torch.ones_like(out), retain_graph=True)  # one VJP
    with torch.autograd.forward_ad.dual_level():  # one JVP
        layer(torch.autograd.forward_ad.make_dual(u.detach(), torch.ones_like(u)))
    w = torch.ones_like(out, requires_grad=True)
    (vjp,) = torch.autograd.grad(out, u, w, create_graph=True)  # a VJP with a graph: one more
    torch.autograd.grad(vjp, w, torch.ones_like(vjp))  # a product through that graph: one more
    assert layer.evaluations == 2
    assert layer.jacobian_products == 4


def test_exact_gradient_matches_finite_differences():
    net = tiny_net().double()
    x, y = tiny_batch()
    x = x.double()
    grad = implicit_gradient(net, x, y)
    params = net.implicit_parameters()
    torch.manual_seed(3)
    direction = [torch.randn_like(p) for p in params]

    def loss(step: float) -> float:
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.add_(step * d)
            v = net.inject(x)
            u = FixedPointSolver("fixed_point", 1e-13, 2000)(net.latent_map(v), torch.zeros_like(v)).u
            value = float(F.cross_entropy(net.readout(u), y))
            for p, d in zip(params, direction, strict=True):
                p.sub_(step * d)
        return value

    eps = 1e-6
    numeric = (loss(eps) - loss(-eps)) / (2 * eps)
    analytic = float(torch.dot(grad, torch.cat([d.flatten() for d in direction])))
    assert analytic == pytest.approx(numeric, rel=1e-5)


@pytest.mark.parametrize("name", ["ift", "ift_cg", "unrolled", "torchdeq_ift"])
def test_exact_methods_match_the_implicit_gradient(name):
    net = tiny_net()
    x, y = tiny_batch()
    grad, products = method_gradient(net, name, x, y, FixedPointSolver("fixed_point", 1e-5, 200))
    assert cosine(grad, implicit_gradient(net, x, y)) >= checks.EXACT
    assert products > 0


@pytest.mark.parametrize("name", ["jfb", "torchdeq_onestep"])
@pytest.mark.parametrize("method", ["fixed_point", "anderson"])
def test_jacobian_free_methods_descend_with_no_jacobian_product(name, method):
    net = tiny_net()
    x, y = tiny_batch()
    grad, products = method_gradient(net, name, x, y, FixedPointSolver(method, 1e-4, 200))
    assert products == 0
    assert cosine(grad, implicit_gradient(net, x, y)) > 0


def test_torchdeq_peers_run_at_torchdeqs_documented_defaults_and_the_cases_forward():
    pytest.importorskip("torchdeq")
    import inspect

    from torchdeq.core import DEQBase
    from torchdeq.solver.anderson import anderson_solver

    from reference_impls.implicit_jfb._torchdeq import BACKWARD, deq_settings

    documented = inspect.signature(DEQBase.__init__).parameters
    assert {k: documented[k].default for k in BACKWARD} == BACKWARD
    settings = deq_settings(FixedPointSolver("anderson", 1e-3, 50))
    case = {"f_solver": "anderson", "f_tol": 1e-3, "f_stop_mode": "rel", "f_max_iter": 50}
    assert settings == {**case, **BACKWARD}  # nothing else: Anderson's m and lam stay torchdeq's
    assert inspect.signature(anderson_solver).parameters["m"].default == 6


@pytest.mark.parametrize("name", ["torchdeq_ift", "torchdeq_onestep"])
@pytest.mark.parametrize("method", ["fixed_point", "anderson"])
def test_torchdeq_wrapper_reaches_what_torchdeq_reaches_on_its_own(name, method):
    """The wrapper (the task's counted layer, train/eval switching, z[-1]) changes nothing torchdeq computes:
    the same fixed point at inference and the same gradient in training as torchdeq called directly on
    T(., Q(x)), as its documentation shows (``z_out, info = deq(f, z0)``)."""
    pytest.importorskip("torchdeq")
    from torchdeq import get_deq

    from reference_impls.implicit_jfb._torchdeq import deq_settings

    net = tiny_net()
    x, y = tiny_batch()
    solver = FixedPointSolver(method, 1e-4, 50)
    wrapped, _ = method_gradient(net, name, x, y, solver)
    with torch.no_grad():
        z_wrapped, layer = training.forward(net, reference("implicit_jfb", name), x, solver)
        residual_wrapped = training.latent_residual(layer, z_wrapped)

    deq = get_deq(**deq_settings(solver), **({"ift": True} if name == "torchdeq_ift" else {"grad": 1}))
    net.zero_grad(set_to_none=True)
    v = net.inject(x)
    T = net.latent_map(v)
    z, _ = deq(T, torch.zeros_like(v))
    F.cross_entropy(net.readout(z[-1]), y).backward()
    params = net.implicit_parameters()
    direct = flat([p.grad for p in params], params)
    deq.eval()
    with torch.no_grad():
        (z_direct,), _ = deq(T, torch.zeros_like(v))
        residual_direct = float(
            ((T(z_direct) - z_direct).flatten(1).norm(dim=1) / T(z_direct).flatten(1).norm(dim=1)).max()
        )

    assert torch.allclose(wrapped, direct, rtol=1e-5, atol=1e-9)
    assert torch.allclose(z_wrapped, z_direct, rtol=1e-5, atol=1e-7)
    assert residual_wrapped == pytest.approx(residual_direct, rel=1e-3, abs=1e-7)
    assert residual_wrapped <= solver.tol
    exact = implicit_gradient(net, x, y)
    assert cosine(wrapped, exact) == pytest.approx(cosine(direct, exact), abs=1e-6)
    if name == "torchdeq_ift":  # the backward at torchdeq's own accuracy: the implicit gradient
        assert cosine(wrapped, exact) > 0.9999


def test_ift_spends_one_vjp_per_adjoint_iteration():
    net = tiny_net()
    x, y = tiny_batch()
    solver = FixedPointSolver("fixed_point", 1e-30, 7)  # a tolerance never met: exactly the cap
    _, products = method_gradient(net, "ift", x, y, solver)
    assert products == 7


def test_unrolled_memory_grows_with_forward_iterations_jfb_and_ift_do_not():
    net = tiny_net(channels=16)
    x, y = tiny_batch(64)
    memory = {}
    for name in ("unrolled", "jfb", "ift"):
        impl = reference("implicit_jfb", name)
        for iters in (4, 40):
            solver = FixedPointSolver("fixed_point", 1e-30, iters)

            def step(impl=impl, solver=solver, name=name) -> None:
                z, _ = training.forward(net, impl, x, solver)
                training.backward(training.loss_of(net, z, y), net, name)

            step()
            memory[name, iters] = peak_memory(step, torch.device("cpu")).step_bytes
    assert memory["unrolled", 40] > 2.5 * memory["unrolled", 4]
    for name in ("jfb", "ift"):
        assert memory[name, 40] < 1.5 * memory[name, 4] + 2e6, memory


def test_adam_matches_torch_optim_adam():
    a, b = tiny_net(), tiny_net()
    x, y = tiny_batch()
    ours = training.Adam(list(a.parameters()), weight_decay=1e-3)
    theirs = torch.optim.Adam(b.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(3):
        for net in (a, b):
            net.zero_grad()
            F.cross_entropy(net.readout(net.inject(x)), y).backward()
        ours.step(1e-2)
        theirs.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def small_scale(**config):
    smoke = TASK.scales["smoke"]
    return dataclasses.replace(smoke, config={**smoke.config, "n_train": 200, "n_test": 100, **config})


def test_non_contractive_layer_makes_the_case_invalid_with_its_residual():
    impl = reference("implicit_jfb", "jfb")
    scale, params = small_scale(contraction=10.0), {"solver": "fixed_point", "tol": 1e-2}
    with pytest.raises(Invalid, match="did not converge"):
        TASK.prepare(impl, scale, params, context("implicit_jfb"))
    result = engine_run_case(TASK, impl, scale, params, context("implicit_jfb"))
    assert result.invalid_reason and "did not converge" in result.invalid_reason
    assert result.metrics["converged"] == 0.0
    assert math.isfinite(result.metrics["residual"]) and result.metrics["residual"] > 1e-2
    assert "test_accuracy" not in result.metrics
    assert "step_time_s" not in result.metrics  # invalid before the engine measured anything


def test_measured_steps_train_a_copy_not_the_network_the_epochs_train():
    impl, scale = reference("implicit_jfb", "jfb"), small_scale(epochs=1)
    params = {"solver": "fixed_point", "tol": 1e-2}
    measured = TASK.prepare(impl, scale, params, context("implicit_jfb"))
    assert measured.work == {"samples": scale.config["batch"]}
    for _ in range(3):
        assert math.isfinite(measured.step())
    untouched = TASK.prepare(impl, scale, params, context("implicit_jfb"))
    a, b = measured.evaluate(None), untouched.evaluate(None)
    assert a.series["train_loss"] == b.series["train_loss"]
    for name in ("test_accuracy", "forward_iterations", "grad_cosine"):
        assert a.metrics[name] == b.metrics[name], name


BAD_SUBMISSIONS = """
import torch
from ctbench import Manifest
from suites.implicit_jfb.interface import ImplicitBackward


class _NaNGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        return z.view_as(z)

    @staticmethod
    def backward(ctx, g):
        return torch.full_like(g, float("nan"))


class _ShortGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        return z.view_as(z)

    @staticmethod
    def backward(ctx, g):
        return g[:, :-1]


class NaNGradient(ImplicitBackward):
    manifest = Manifest(name="nan_gradient")

    def forward(self, layer, u0, solver):
        with torch.no_grad():
            u = solver(layer, u0).u
        return _NaNGrad.apply(layer(u))


class WrongShapeGradient(ImplicitBackward):
    manifest = Manifest(name="wrong_shape_gradient")

    def forward(self, layer, u0, solver):
        with torch.no_grad():
            u = solver(layer, u0).u
        return _ShortGrad.apply(layer(u))


class WrongShapeOutput(ImplicitBackward):
    manifest = Manifest(name="wrong_shape_output")

    def forward(self, layer, u0, solver):
        return layer(u0)[:, :1]


class WrongDtypeOutput(ImplicitBackward):
    manifest = Manifest(name="wrong_dtype_output")

    def forward(self, layer, u0, solver):
        return layer(u0).double()


class NaNOutput(ImplicitBackward):
    manifest = Manifest(name="nan_output")

    def forward(self, layer, u0, solver):
        return layer(u0) * float("nan")
"""


@pytest.mark.parametrize(
    ("cls", "status", "message"),
    [
        ("NaNGradient", "failed", "non-finite (NaN or inf) gradient"),
        ("WrongShapeGradient", "failed", "the backward pass of wrong_shape_gradient failed"),
        ("WrongShapeOutput", "failed", "wrong_shape_output.forward (z, the latent) returned a tensor of shape ("),
        ("WrongDtypeOutput", "failed", "float64; expected shape ("),
        ("NaNOutput", "invalid", "the iterates diverged to non-finite values"),
    ],
)
def test_bad_submission_is_recorded_with_a_clear_error(tmp_path: Path, cls: str, status: str, message: str):
    path = tmp_path / "bad.py"
    path.write_text(BAD_SUBMISSIONS)
    case = {
        "task": "implicit_jfb",
        "impl": {"manifest": {"name": cls}, "spec": f"{path}:{cls}", "submission": "bad"},
        "scale": "smoke",
        "params": {"solver": "fixed_point", "tol": 1e-2},
        "seed": 0,
    }
    ctx = context("implicit_jfb")
    record = execute(case, "cpu", ctx.data_root, ctx.cache_dir, threads=1)
    assert record["status"] == status
    assert message in record["error"]


@pytest.mark.parametrize("name", IMPLS)
def test_smoke_case(name):
    result = run_case("implicit_jfb", name)
    assert result.invalid_reason is None
    assert not result.nonfinite_metrics()
    assert result.dataset in ("fashion-mnist", "synthetic-1x28x28-10class")
    assert 0.1 < result.metrics["test_accuracy"] <= 1.0
    failed = {k: c for k, c in result.checks.items() if not c.passed}
    assert not failed
    impl = reference("implicit_jfb", name)
    assert ("grad_cosine" in result.metrics) == impl.finds_fixed_point
    engine = {"step_time_s", "step_peak_memory_bytes", "throughput_samples_s", "epoch_time_s", "backward_time_s"}
    assert engine <= set(result.metrics)
    assert result.metrics["step_peak_memory_bytes"] > 0
    assert result.metrics["backward_time_vs_one_step"] > 0 and "backward_time_vs_one_step" in result.spread
    assert result.metrics["step_forward_iterations"] >= 1
    assert result.metrics["latent_bytes"] == 100 * 16 * 10 * 10 * 4  # smoke: batch 100, 16 channels, 10x10


def test_memory_checks_count_latents_per_iteration_beyond_the_readings_spread():
    cases = [
        memory("unrolled", 1e-2, 4, 20),
        memory("unrolled", 1e-5, 8, 32, spread_mb=2),  # 3 latents per iteration; 0.5 of spread
        memory("jfb", 1e-2, 4, 10, spread_mb=1),
        memory("jfb", 1e-5, 8, 11, spread_mb=1),  # 0.25 latents per iteration, +- 0.5: flat
        memory("ift", 1e-2, 4, 10),
        memory("ift", 1e-5, 8, 16),  # 1.5 latents per iteration: grows
        memory("unrolled", 1e-2, 4, 20, solver="anderson"),  # one point: no sweep
    ]
    result = {(c.name, c.scope.get("impl")): c.check for c in checks.run_checks("t", cases) if "memory" in c.name}
    assert set(result) == {
        ("unrolled_memory_grows", "unrolled"),
        ("memory_flat_in_iterations", "jfb"),
        ("memory_flat_in_iterations", "ift"),
    }
    grows = result["unrolled_memory_grows", "unrolled"]
    assert grows.passed and grows.value == pytest.approx(3.0) and grows.threshold == 1.0
    assert grows.interval == pytest.approx((2.5, 3.5))  # +- the two readings' spread, in latents
    assert "over 4.0 -> 8.0 iterations" in grows.description
    assert result["memory_flat_in_iterations", "jfb"].passed
    assert not result["memory_flat_in_iterations", "ift"].passed
    noisy = [memory("unrolled", 1e-2, 4, 20, spread_mb=8), memory("unrolled", 1e-5, 8, 32, spread_mb=8)]
    assert checks.run_checks("t", noisy)[0].check.outcome == "inconclusive"  # 3 latents per iteration, +- 4
    noisy = [memory("jfb", 1e-2, 4, 10, spread_mb=3), memory("jfb", 1e-5, 8, 15, spread_mb=3)]
    assert checks.run_checks("t", noisy)[0].check.outcome == "inconclusive"  # 1.25 latents per iteration, +- 1.5
    unmoved = [memory("unrolled", 1e-2, 4, 20), memory("unrolled", 1e-5, 4.5, 32)]
    assert not [c for c in checks.run_checks("t", unmoved) if "memory" in c.name]  # iterations barely moved


def test_speed_checks_compare_each_cases_backward_against_its_own_one_step_backward():
    cases = [
        backward("jfb", 1e-2, 1.0, 0, backward_time_s=0.010),
        backward("ift", 1e-2, 2.0, 3, backward_time_s=0.040),  # slower machine when ift ran: ignored
        backward("jfb", 1e-5, 1.1, 0, 0.011, backward_time_s=0.010),
        backward("ift", 1e-5, 4.4, 8, 0.044, backward_time_s=0.020),
        backward("torchdeq_ift", 1e-2, 5.0, 12, epoch_time_s=2.0),
    ]
    result = {(c.name, c.scope.get("tol")): c.check for c in checks.run_checks("t", cases)}
    # the claim at the sweep's tightest tolerance only: at tol 1e-2 (2.0x) IFT spends 3 Jacobian products
    assert ("jfb_backward_speedup_vs_ift", 1e-2) not in result
    tight = result["jfb_backward_speedup_vs_ift", 1e-5]
    assert tight.passed and tight.value == pytest.approx(4.0)
    assert "spent 8 Jacobian products of T, 0.43 one-step backwards each" in tight.description
    grows = result["jfb_speedup_grows_with_iterations", None]
    assert grows.passed and grows.value == pytest.approx(2.0)
    assert grows.threshold == 1.0 and grows.interval[0] > 1.0  # decided by the quotient of the two intervals
    assert result["jfb_epoch_faster_than_torchdeq_ift", 1e-2].passed  # 2x, beyond the epoch floor on both sides
    assert result["jfb_accuracy_near_ift", 1e-2].passed
    # a run narrowed to the loosest tolerance does not decide the claim made at the solved one
    loose = [backward("jfb", 1e-2, 1.0, 0, 0.01), backward("ift", 1e-2, 2.0, 3, 0.02)]
    names = [c.name for c in get_task("implicit_jfb").run_checks(loose)]
    assert "jfb_backward_speedup_vs_ift" not in names
    assert "jfb_backward_speedup_vs_ift" in [c.name for c in checks.run_checks("t", loose)]  # no scales given
    flat = [backward("jfb", 1e-2, 1.0, 0, 1.0), backward("ift", 1e-2, 2.0, 3, 1.0)]
    flat += [backward("jfb", 1e-5, 1.0, 0, 1.0), backward("ift", 1e-5, 2.3, 8, 1.0)]
    grows = {c.name: c.check for c in checks.run_checks("t", flat)}["jfb_speedup_grows_with_iterations"]
    assert grows.outcome == "inconclusive"  # 15% growth, within the medians' uncertainty (the control: it shrinks)


@pytest.mark.parametrize(("ift_epoch", "outcome"), [(2.0, "pass"), (1.2, "inconclusive"), (0.5, "fail")])
def test_the_epoch_check_is_decided_beyond_its_stated_floor(ift_epoch: float, outcome: str):
    cases = [
        backward("jfb", 1e-2, 1.0, 0, epoch_time_s=1.0),
        backward("torchdeq_ift", 1e-2, 5.0, 12, epoch_time_s=ift_epoch),
    ]
    (epoch,) = [c.check for c in checks.run_checks("t", cases) if c.name == "jfb_epoch_faster_than_torchdeq_ift"]
    assert epoch.outcome == outcome and epoch.value == pytest.approx(ift_epoch)


def test_plots_from_case_records():
    from ctbench.boards.table import cases_frame

    metrics = {
        "step_peak_memory_bytes": 1e7,
        "forward_iterations": 5.0,
        "backward_time_s": 0.01,
        "grad_cosine": 0.9,
    }
    run = {
        "run_id": "r",
        "created": "now",
        "env": {},
        "cases": [
            {**record(impl, tol, **metrics), "checks": {}, "submission": "reference"}
            for impl in ("jfb", "unrolled")
            for tol in (1e-2, 1e-5)
        ],
    }
    figures = TASK.plots(cases_frame([run]), [])
    assert set(figures) == {"backward_time", "grad_cosine"}


def test_gpu_smoke_scale_is_a_cheap_subset_of_small():
    gpu, small, smoke = (TASK.scales[n] for n in ("gpu-smoke", "small", "smoke"))
    assert all(set(values) <= set(small.grid[axis]) for axis, values in gpu.grid.items())
    assert set(gpu.config) == set(smoke.config)
    assert gpu.config["epochs"] * gpu.config["n_train"] <= smoke.config["epochs"] * smoke.config["n_train"]
    assert gpu.policy.memory_repeat >= 3 and gpu.timeout_s <= smoke.timeout_s


def test_declared_plots_and_bench_points_name_what_the_cases_carry():
    metrics = all_metrics(TASK)
    smoke = TASK.scales["smoke"]
    for plot in TASK.line_plots:
        for axis in (plot.x, plot.y):
            assert axis in metrics or axis.removeprefix("param.") in smoke.grid, axis
        assert plot.facet is None or plot.facet in smoke.grid
    assert TASK.benchmark_points() == [{"solver": "fixed_point", "tol": 1e-2}]
    assert {"epoch_time_s", "backward_time_s", "step_peak_memory_bytes"} <= set(metrics)
