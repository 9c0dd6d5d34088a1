"""Properties of the neis task: exact targets, counted cost, unbiased estimators, training, bad input."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from ctbench import Manifest, ReturnError
from ctbench.catalog.describe import all_metrics
from ctbench.catalog.registry import get_task
from ctbench.figures.plotting import draw
from ctbench.run import smoke
from reference_impls.neis.ais import AIS
from reference_impls.neis.ais_100 import AIS100
from reference_impls.neis.neis_gradient import GradientField, NEISGradient
from reference_impls.neis.neis_linear import LinearField, NEISLinear
from reference_impls.neis.neis_mlp import NEISMLP, MLPField
from reference_impls.neis.vanilla_is import VanillaIS
from suites.neis import neis as neis_module
from suites.neis import protocol
from suites.neis.checks import paper_checks
from suites.neis.controls import record, run_checks
from suites.neis.interface import Budget, FlowDiverged
from suites.neis.neis import NEIS, VelocityField
from suites.neis.problem import NonFinitePotential, Problem
from suites.neis.stats import Estimates
from suites.neis.targets import Funnel, GaussianMixture, Target, make_target, two_modes
from suites.neis.task import NEISTask


@pytest.fixture(autouse=True)
def smoke_state():
    """The smoke scale's process state (one intra-op thread: the tensors are tiny) for the estimators run here."""
    with smoke.case_state("neis"):
        yield


def budget(**overrides) -> Budget:
    """The smoke scale's budget with some settings replaced."""
    return dataclasses.replace(Budget.of(NEISTask.scales["smoke"].config), **overrides)


def mixture(means: list[list[float]], variance: float, weights: list[float], name: str) -> Target:
    m = torch.tensor(means, dtype=torch.float64)
    mix = GaussianMixture(m, torch.full_like(m, variance), torch.tensor(weights, dtype=torch.float64))
    return mix.target(name, f"synthetic-test-{name}")


def mild_target() -> Target:
    """Two overlapping modes near the base: every estimator's variance is small, so unbiasedness is testable."""
    return mixture([[1.0, 0.0], [0.0, -1.0]], 0.6, [0.3, 0.7], "mild")


def log_z_on_grid(target: Target, lo: tuple[float, float], hi: tuple[float, float], step: float) -> float:
    xs = torch.arange(lo[0], hi[0], step, dtype=torch.float64)
    ys = torch.arange(lo[1], hi[1], step, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)
    return float(torch.logsumexp(-target.potential(grid), 0)) + 2 * math.log(step)


@pytest.mark.parametrize("name", ["eg1", "gmm_d2"])
def test_exact_log_z_of_2d_mixtures_matches_numerical_integration(name):
    target = make_target(name)
    assert log_z_on_grid(target, (-6.0, -9.0), (9.0, 6.0), 0.01) == pytest.approx(target.log_z, abs=1e-6)


def test_exact_log_z_of_the_funnel_in_its_ball_matches_2d_integration():
    """The chi-square quadrature of log Z against the trapezoidal rule on exp(-U1) itself (d = 2), in coordinates
    (x1, u) with x2 = u e^{x1/2}, so the funnel's neck is resolved: Z = int int exp(-U1(x1, u e^{x1/2})) e^{x1/2}."""
    funnel = Funnel(dim=2)
    x1 = torch.linspace(-funnel.radius, funnel.radius, 2501, dtype=torch.float64)
    u = torch.linspace(-10, 10, 2001, dtype=torch.float64)
    scale = torch.exp(x1 / 2)[:, None]
    points = torch.stack([x1[:, None].expand(-1, len(u)), u * scale], -1)
    density = torch.exp(-funnel.potential(points)) * scale
    z = torch.trapezoid(torch.trapezoid(density, u, dim=1), x1)
    assert math.log(float(z)) == pytest.approx(funnel.log_z(), abs=1e-5)
    assert funnel.log_z() < -0.01  # the ball cuts off a visible part of the mass


def test_vanilla_exact_variance_matches_monte_carlo():
    torch.manual_seed(0)
    target = mild_target()
    x = torch.randn(2_000_000, 2, dtype=torch.float64)
    r = torch.exp(0.5 * (x * x).sum(-1) + math.log(2 * math.pi) - target.potential(x) - target.log_z)
    assert float(r.mean()) == pytest.approx(1.0, abs=0.01)
    assert float(r.var()) == pytest.approx(target.vanilla_rel_var, rel=0.03)


def test_vanilla_exact_variance_is_infinite_when_the_mixture_is_too_wide():
    assert two_modes(2, 2.5, 2.5).vanilla_rel_var() == math.inf


def test_counter_measures_values_and_gradients():
    problem = Problem(make_target("eg1"))
    x = torch.randn(7, 2, requires_grad=True)
    u = problem.U1(x)
    assert (problem.counter.values, problem.counter.gradients) == (7, 0)
    torch.autograd.grad(u.sum(), x)
    assert (problem.counter.values, problem.counter.gradients) == (7, 7)


@pytest.mark.parametrize(
    ("impl", "cost"),
    [(VanillaIS, 1), (AIS, 2 * 10), (AIS100, 2 * 100), (NEISGradient, 20 + 1)],
    ids=["vanilla", "ais", "ais_100", "neis"],
)
def test_cost_per_sample_is_what_the_method_evaluates(impl, cost):
    """vanilla: one value; AIS (K = 10, the scale's; K = 100 for ais_100): value + gradient at x0 and at K - 1
    proposals; NEIS (N = 20): N + 1 values."""
    torch.manual_seed(0)
    problem, est = Problem(make_target("eg1")), impl()
    est.fit(problem, budget(train_steps=1))
    problem.counter.reset()
    est.sample(problem, 50)
    assert problem.counter.total == 50 * cost


@pytest.mark.parametrize("impl", [VanillaIS, AIS, NEISLinear, NEISGradient, NEISMLP])
def test_every_estimator_is_unbiased(impl):
    """Mean of 4000 estimates within 4 standard errors of the exact Z (NEIS: for an untrained, random flow)."""
    torch.manual_seed(1)
    target, est = mild_target(), impl()
    problem = Problem(target)
    est.fit(problem, budget(train_steps=0))
    stats = Estimates.of(est.sample(problem, 4000), target.log_z)
    assert abs(stats.z_score) < 4, stats


def test_unbiasedness_test_detects_a_missing_jacobian(monkeypatch):
    """The same statistic has power: NEIS weights without the flow's Jacobian J_k are far from Z."""
    trajectories = neis_module.trajectories

    def without_jacobian(*args):
        x, log_j = trajectories(*args)
        return x, torch.zeros_like(log_j)

    monkeypatch.setattr(neis_module, "trajectories", without_jacobian)
    torch.manual_seed(1)
    target, est = mild_target(), NEISLinear()
    problem = Problem(target)
    est.fit(problem, budget(train_steps=0))
    assert abs(Estimates.of(est.sample(problem, 4000), target.log_z).z_score) > 10


def test_neis_is_unbiased_after_training_on_eg1():
    torch.manual_seed(0)
    target, est = make_target("eg1"), NEISGradient()
    problem = Problem(target)
    est.fit(problem, budget())
    stats = Estimates.of(est.sample(problem, 4000), target.log_z)
    assert abs(stats.z_score) < 4, stats
    assert stats.rel_var < 100  # vanilla's is 1.9e6


def test_training_reduces_the_second_moment():
    """E[Z_hat^2]/Z^2 on fresh samples: the random initial flow against the same flow after 30 steps, on a narrow
    offset mode (vanilla's relative variance ~60) that every training batch sees."""
    target = mixture([[2.5, 0.0]], 0.3, [1.0], "offset")
    second_moment = []
    for steps in (0, 30):
        torch.manual_seed(3)
        problem, est = Problem(target), NEISGradient()
        est.fit(problem, budget(train_steps=steps, seed_fraction=0.0))
        stats = Estimates.of(est.sample(problem, 4000), target.log_z)
        second_moment.append(1 + stats.rel_var)
    assert second_moment[1] < 0.5 * second_moment[0], second_moment


def test_exact_divergence_matches_the_jacobian_trace():
    torch.manual_seed(0)
    x = torch.randn(16, 3)
    for field in (LinearField(3), GradientField(3, 8), MLPField(3, 8, hutchinson=False)):
        jac = torch.func.vmap(torch.func.jacrev(lambda xi, f=field: f(xi[None])[0]))(x)
        expected = jac.diagonal(dim1=-2, dim2=-1).sum(-1)
        torch.testing.assert_close(field.divergence(x, None), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(VelocityField.divergence(field, x, None), expected, rtol=1e-5, atol=1e-5)


def test_hutchinson_divergence_is_unbiased_and_used_above_the_threshold():
    torch.manual_seed(0)
    field = MLPField(4, 8, hutchinson=True)
    x = torch.randn(1, 4).expand(20000, 4)
    estimate = field.divergence(x, field.probe(x)).detach()
    field.hutchinson = False
    exact = field.divergence(x[:1], field.probe(x[:1])).detach()
    assert float(estimate.mean()) == pytest.approx(float(exact), abs=4 * float(estimate.std()) / math.sqrt(20000))
    assert NEISMLP().make_field(20, budget()).hutchinson and not NEISMLP().make_field(10, budget()).hutchinson


def nan_target() -> Target:
    good = make_target("eg1").potential
    return Target("nan_right_half", 2, 0.0, lambda x: torch.where(x[..., 0] > 1.0, math.nan, good(x)), "test")


@pytest.mark.parametrize("impl", [VanillaIS, AIS, NEISGradient])
def test_nan_potential_is_a_clear_error(impl):
    torch.manual_seed(0)
    problem, est = Problem(nan_target()), impl()
    with pytest.raises(NonFinitePotential, match=r"NaN or inf at \d+ of \d+ points .*x=\["):
        est.fit(problem, budget(train_steps=1))
        est.sample(problem, 1000)


def test_nan_potential_fails_the_case(monkeypatch):
    monkeypatch.setattr(protocol, "make_target", lambda name: nan_target())
    with pytest.raises(NonFinitePotential, match="nan_right_half"):
        smoke.run_case("neis", "vanilla_is", {"target": "eg1"})


class Exploding(NEIS):
    """b(x) = 30 x^3: its flow leaves every float within unit time."""

    manifest = Manifest(name="exploding")

    class Field(VelocityField):
        def __init__(self, dim: int):
            super().__init__(dim)
            self.scale = torch.nn.Parameter(torch.tensor(30.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.scale * x**3

    def make_field(self, dim, budget):
        return self.Field(dim)


def test_ode_blow_up_in_training_makes_the_case_invalid_with_its_step():
    with pytest.raises(FlowDiverged) as info:
        Exploding().fit(Problem(make_target("eg1")), budget())
    assert info.value.step == 0 and "blew up" in str(info.value)
    result = smoke.run_case("neis", Exploding(), {"target": "eg1"})
    assert result.invalid_reason is not None and "training step 0" in result.invalid_reason
    measured = {k: v for k, v in result.metrics.items() if k != "probe_time_s"}  # the engine's machine probe
    assert measured == {"training_steps_done": 0.0} and result.metrics["probe_time_s"] > 0


@pytest.mark.parametrize("impl", ["vanilla_is", "ais", "ais_100", "neis_linear", "neis_gradient", "neis_mlp"])
def test_smoke_case_measures_everything(impl):
    result = smoke.run_case("neis", impl, {"target": "eg1"})
    m = result.metrics
    assert not result.nonfinite_metrics()
    for name in (
        "rel_var",
        "rel_mse",
        "cost_per_sample",
        "vanilla_rel_var",
        "vanilla_rel_var_empirical",
        "training_time_s",
        "step_time_s",
        "step_peak_memory_bytes",
        "throughput_samples_s",
        "throughput_u1_evals_s",
    ):
        assert name in m, name
    assert m["vanilla_rel_var"] == pytest.approx(make_target("eg1").vanilla_rel_var)
    assert m["throughput_u1_evals_s"] == pytest.approx(m["throughput_samples_s"] * m["cost_per_sample"], rel=1e-3)
    assert set(m) <= set(all_metrics(NEISTask()))
    if impl.startswith("neis"):
        assert len(result.series["log10_rel_second_moment"]) == NEISTask.scales["smoke"].config["train_steps"]


def test_the_step_draws_n_time_estimates():
    step = smoke.step("neis", "vanilla_is", {"target": "eg1"})
    log_z_hat = step()
    assert log_z_hat.shape == (NEISTask.scales["smoke"].config["n_time"],) and bool(log_z_hat.isfinite().all())


def test_run_checks_flag_what_they_should():
    cases = [
        record("ais", "eg1", rel_var_x_cost=100.0, cost_per_sample=20.0),
        record("neis_gradient", "eg1", rel_var_x_cost=10.0, variance_reduction=2e3, rel_var_x_cost_with_training=50.0),
        record("neis_mlp", "eg1", "invalid", rel_var_x_cost=1.0),
        record("ais", "eg2", "invalid", rel_var_x_cost=1.0),
        record("ais_100", "eg2", rel_var_x_cost=5.0, cost_per_sample=200.0),
        record("neis_gradient", "eg2", rel_var_x_cost=10.0, variance_reduction=5.0, rel_var_x_cost_with_training=20.0),
        record("neis_linear", "eg2", "failed"),
        record("neis_gradient", "eg3", rel_var_x_cost=10.0, variance_reduction=5.0),
    ]
    checks = paper_checks("neis", cases, {"smoke": 1e3})
    got = {(c.name, c.scope["target"], c.scope.get("impl"), c.scope.get("ais")): c.check.outcome for c in checks}
    assert got == {
        ("neis_variance_reduction", "eg1", None, None): "pass",
        ("neis_beats_ais", "eg1", "neis_gradient", "ais"): "pass",
        ("neis_beats_ais", "eg1", "neis_mlp", "ais"): "fail",  # invalid itself: no win
        ("neis_variance_reduction", "eg2", None, None): "fail",
        ("neis_beats_ais", "eg2", "neis_gradient", "ais"): "inconclusive",  # AIS invalid: nothing to compare
        ("neis_beats_ais", "eg2", "neis_gradient", "ais_100"): "fail",  # the paper's AIS-100 wins
        ("neis_beats_ais", "eg2", "neis_linear", "ais"): "fail",  # a NEIS case that crashed gets its check, failed
        ("neis_beats_ais", "eg2", "neis_linear", "ais_100"): "fail",
    }
    beats = {
        (c.scope["target"], c.scope["impl"], c.scope["ais"]): c.check for c in checks if c.name == "neis_beats_ais"
    }
    assert "AIS invalid: no variance to compare" in beats["eg2", "neis_gradient", "ais"].description
    assert "0.5 at equal sampling cost" in beats["eg2", "neis_gradient", "ais_100"].description
    assert "AIS-10 (ais)" in beats["eg1", "neis_gradient", "ais"].description
    assert "2 with its training" in beats["eg1", "neis_gradient", "ais"].description  # 100 / 50


def test_an_invalid_ais_never_makes_neis_win():
    """However far below NEIS's its variance is, or above, an invalid AIS leaves the comparison undecided."""
    for ais_cost in (1e-3, 1e6):
        cases = [
            record("ais_100", "eg1", "invalid", rel_var_x_cost=ais_cost, cost_per_sample=200.0),
            record("neis_gradient", "eg1", rel_var_x_cost=10.0, variance_reduction=2e3),
        ]
        (check,) = [c.check for c in paper_checks("neis", cases, {}) if c.name == "neis_beats_ais"]
        assert check.passed is None, check


def test_neis_against_ais_counts_the_training_and_waits_for_enough_estimates():
    """A NEIS that wins at equal sampling cost but loses once its training is counted fails at the small scale;
    at smoke (2000 estimates) the same cases are recorded, not decided, and say why."""
    checks = {}
    for scale in ("small", "smoke"):
        cases = [
            record("ais_100", "eg2", scale=scale, rel_var_x_cost=100.0, cost_per_sample=200.0),
            record("neis_gradient", "eg2", scale=scale, rel_var_x_cost=10.0, rel_var_x_cost_with_training=200.0),
        ]
        checks[scale] = run_checks(get_task("neis"), cases, "neis_beats_ais")
    (small,), (at_smoke,) = checks["small"], checks["smoke"]
    assert small.passed is False and small.value == pytest.approx(0.5)
    assert "0.5 with its training" in small.description and "10 at equal sampling cost" in small.description
    assert at_smoke.passed is None and "not decided from 2000 estimates" in at_smoke.description


def test_a_neis_case_without_variance_fails_against_ais():
    """All its estimates equal (rel_var 0: invalid): a failed check, not a division by zero."""
    cases = [
        record("ais", "eg1", rel_var_x_cost=100.0, cost_per_sample=20.0),
        record("neis_linear", "eg1", "invalid", rel_var_x_cost=0.0),
    ]
    (check,) = [c.check for c in paper_checks("neis", cases, {}) if c.name == "neis_beats_ais"]
    assert check.passed is False and check.value == 0.0, check


def test_with_training_counts_the_fit_spread_over_the_estimates():
    target = make_target("eg1")
    est = Estimates(1.0, 4.0, 4.0, 0.0, 2000)
    vanilla = Estimates(1.0, 1.0, 1.0, 0.0, 10)
    m = protocol.evaluation(target, est, vanilla, 21.0, {"training_cost": 2000 * 79.0}, []).metrics
    assert m["rel_var_x_cost"] == pytest.approx(4 * 21) and m["rel_var_x_cost_with_training"] == pytest.approx(4 * 100)
    assert m["variance_reduction"] / m["variance_reduction_with_training"] == pytest.approx(100 / 21)


def test_plots_draw_the_per_target_dimension_and_training_figures():
    from ctbench.boards.table import cases_frame

    cases = []
    for impl, factor in (("neis_gradient", 1.0), ("ais", 30.0)):
        for target in ("eg1", "gmm_d2", "gmm_d10"):
            metrics = {"rel_var_x_cost": factor * 5.0, "vanilla_rel_var": 1e6, "variance_reduction": 2e5 / factor}
            case = record(impl, target, **metrics)
            case.update(task="neis", submission="reference", dataset=f"synthetic-{target}", checks={})
            case["series"] = {"log10_rel_second_moment": [[0.0, 3.0], [1.0, 1.0]]} if impl != "ais" else {}
            cases.append(case)
    run = {"run_id": "r", "created": "now", "env": {"cpu": "cpu", "cpu_cores": 2}, "cases": cases}
    records = [dict(c, run_id="r", hardware="cpu x2") for c in cases]
    frame = cases_frame([run])
    figures = NEISTask().plots(frame, records)
    assert set(figures) == {"variance_vs_dimension", "training_second_moment"}
    for plot in NEISTask.line_plots:
        assert draw(dataclasses.asdict(plot), frame) is not None, plot.name


def test_eg2_trains_with_the_authors_eg2_schedule_and_the_rest_keep_eg1s():
    smoke_config = NEISTask.scales["smoke"].config
    eg1, eg2 = Budget.of(smoke_config, "eg1"), Budget.of(smoke_config, "eg2")
    assert (eg1.lr, eg1.seed_fraction, eg1.seed_until, eg1.train_steps, eg1.train_batch) == (0.3, 0.1, 0.6, 60, 256)
    assert (eg2.lr, eg2.seed_fraction, eg2.seed_until, eg2.train_steps, eg2.train_batch) == (0.5, 0.3, 0.75, 60, 256)
    assert Budget.of(smoke_config) == eg1 == Budget.of(smoke_config, "gmm_d10")
    for name in ("small", "full", "gpu-smoke"):
        budget_eg2 = Budget.of(NEISTask.scales[name].config, "eg2")
        assert (budget_eg2.lr, budget_eg2.seed_fraction, budget_eg2.seed_until) == (0.5, 0.3, 0.75), name


def test_neis_mlp_on_eg2_at_smoke_reaches_the_modes():
    """A regression case: with eg1's assisted start the flow avoided the four modes (mean 0.012 Z)."""
    result = smoke.run_case("neis", "neis_mlp", {"target": "eg2"})
    assert result.invalid_reason is None, result.invalid_reason
    assert result.metrics["variance_reduction"] >= NEISTask.scales["smoke"].config["min_variance_reduction"]
    assert result.metrics["final_log10_rel_second_moment"] > -1  # the last batch saw the modes' mass


def test_negative_controls_are_the_cases_the_paper_expects_to_miss_mass():
    task = NEISTask()
    scales = task.scales

    def expected(impl, scale, target):
        return task.expected_invalid(impl, scales[scale], {"target": target})

    for scale in ("smoke", "small", "full", "gpu-smoke"):
        for target in ("eg1", "eg2", "gmm_d2", "gmm_d50"):
            assert "exact relative variance per sample" in expected("vanilla_is", scale, target), (scale, target)
        assert expected("vanilla_is", scale, "eg3") is None  # no closed form, and valid at small and full
        for impl in ("neis_linear", "neis_gradient", "neis_mlp"):
            assert expected(impl, scale, "eg2") is None
    for scale in ("smoke", "small", "full", "gpu-smoke"):
        assert "AIS with 10 temperatures (20 U1" in expected("ais", scale, "eg2"), scale  # the paper's AIS-10
    assert "AIS with 100 temperatures on eg1 from 2000 samples" in expected("ais_100", "smoke", "eg1")
    assert expected("ais_100", "small", "eg2") is None and expected("ais_100", "full", "eg3") is None
    assert expected("ais", "small", "gmm_d10") is None and expected("ais_100", "smoke", "gmm_d2") is None


def test_gpu_smoke_is_smokes_steps_with_smalls_samples():
    gpu, small, smoke_scale = (NEISTask.scales[n] for n in ("gpu-smoke", "small", "smoke"))
    assert set(gpu.grid["target"]) <= set(small.grid["target"])
    assert set(gpu.config) == set(small.config)
    assert gpu.config["time_steps"] == smoke_scale.config["time_steps"]
    assert gpu.config["train_steps"] == smoke_scale.config["train_steps"]
    assert gpu.config["n_eval"] == small.config["n_eval"] and gpu.config["temperatures"] == small.config["temperatures"]
    assert gpu.timeout_s <= 75  # scripts/gpu_check.sh's bound per case


class ColumnEstimates(VanillaIS):
    """Broken: its estimates as a column (n, 1) instead of (n,)."""

    def sample(self, problem: Problem, n: int) -> torch.Tensor:
        return super().sample(problem, n)[:, None]


def test_estimates_of_the_wrong_shape_fail_the_case_naming_the_method():
    with pytest.raises(ReturnError, match=r"ColumnEstimates\.sample \(log Z_hat\) returned a tensor of shape "
                       r"\(\d+, 1\) float\d+; expected shape \(\d+,\) float\d+"):  # fmt: skip
        smoke.run_case("neis", ColumnEstimates(), {"target": "eg1"})
