"""bilevel: unbiased stochastic directions, exact oracles against the closed form, the closed-form (specialised) path
against the generic one, SABA's tables against a plain SAGA, the oracle counts and the table size of the paper's
cost statement (with failing controls), benchopt's quadratic and sampler, tuning in the protocol, convergence, bad
input."""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys
from collections.abc import Callable

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

import suites.bilevel.checks as checks_module
import suites.bilevel.exact as exact
import suites.bilevel.tune as tune_module
from ctbench import ReturnError, RunCheck
from ctbench.api.measure import Meter
from ctbench.catalog.describe import all_metrics
from ctbench.catalog.registry import get_task
from ctbench.run import smoke
from ctbench.run.protocol import run_case
from reference_impls.bilevel.amigo import AmIGO
from reference_impls.bilevel.fsla import FSLA
from reference_impls.bilevel.full_batch import FullBatch
from reference_impls.bilevel.saba import SABA
from reference_impls.bilevel.soba import SOBA
from reference_impls.bilevel.stocbio import StocBiO
from suites.bilevel import controls
from suites.bilevel.controls import DoubleTable, ExtraHessianVector, FullBatchGradient, race_record
from suites.bilevel.data import IJCNN1, Labelled, LibsvmFormatError, hyperparam_data, synthetic_classification
from suites.bilevel.logreg import datacleaning_problem, hyperparam_problem
from suites.bilevel.problem import INNER, OUTER_GRAD, BilevelProblem
from suites.bilevel.problem import ORACLES as KINDS
from suites.bilevel.problems import build, settings
from suites.bilevel.protocol import COUNT_MIN_STEPS, cost_ratio, oracle_counts, saga_table, state_bytes
from suites.bilevel.quadratic import quadratic_problem
from suites.bilevel.quadratic import split as split_vectors
from suites.bilevel.race import Evaluator, run_solver
from suites.bilevel.sampling import FixedBatches
from suites.bilevel.simulated import benchopt_min_eig, benchopt_problem, reflector, root

STOCHASTIC = [SOBA, SABA, StocBiO, AmIGO, FSLA]
CLOCK = Meter(torch.device("cpu")).clock
N = 12  # samples of the tiny problems (inner and outer alike, so that sample i can pair with sample i)


def tiny(kind: str) -> BilevelProblem:
    """Tiny float64 instances of the three problem kinds."""
    if kind == "quadratic":
        return quadratic_problem(N, N, 4, 3, mu=0.3)
    if kind == "quadratic-benchopt":
        return benchopt_problem(N, N, 4, 3, dtype=torch.float64)
    if kind == "hyperparam":
        (x, y), (xv, yv) = synthetic_classification(IJCNN1, N, 1), synthetic_classification(IJCNN1, N, 2)
        return hyperparam_problem(Labelled(x, y, "t"), Labelled(xv, yv, "t"))
    gen = torch.Generator().manual_seed(0)
    splits = [
        Labelled(torch.randn(N, 5, generator=gen, dtype=torch.float64), torch.arange(N) % 3, "t") for _ in range(3)
    ]
    return datacleaning_problem(*splits, classes=3)


def directions_match(solver, problem: BilevelProblem) -> None:
    """The mean over all samples of single-sample directions equals the full-batch direction, coordinate-wise."""
    everything = torch.arange(N)
    full = solver.directions(everything, everything)
    singles = [solver.directions(torch.tensor([i]), torch.tensor([i])) for i in range(N)]
    for name in ("z", "v", "x"):
        mean = torch.stack([getattr(d, name) for d in singles]).mean(0)
        torch.testing.assert_close(mean, getattr(full, name), rtol=1e-10, atol=1e-12, msg=f"D_{name} biased")


@pytest.mark.parametrize("kind", ["quadratic", "hyperparam", "datacleaning"])
@pytest.mark.parametrize("cls", STOCHASTIC, ids=lambda c: c.manifest.name)
def test_stochastic_directions_are_unbiased(cls, kind):
    problem = tiny(kind)
    solver = cls(step_size=0.05, outer_ratio=1.0)
    solver.init(problem, batch_size=3, seed=0)
    for _ in range(3):  # memory tables and momentum away from their initial values
        solver.step()
    directions_match(solver, problem)


def test_saba_directions_differ_from_sgd_but_have_the_same_mean():
    """SABA's single-sample estimate is not SOBA's (the tables correct it), yet both average to the same."""
    problem = tiny("quadratic")
    saba, soba = SABA(step_size=0.05), SOBA(step_size=0.05)
    saba.init(problem, 3, 0)
    for _ in range(3):
        saba.step()
    soba.init(problem, 3, 0)
    soba.z, soba.v, soba.x = saba.z.clone(), saba.v.clone(), saba.x.clone()
    one = torch.tensor([1])
    assert not torch.allclose(saba.directions(one, one).x, soba.directions(one, one).x)
    everything = torch.arange(N)
    torch.testing.assert_close(saba.directions(everything, everything).x, soba.directions(everything, everything).x)


@pytest.mark.parametrize("kind", ["quadratic", "hyperparam", "datacleaning"])
def test_per_sample_oracles_average_to_the_batch_oracles(kind):
    problem = tiny(kind)
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(problem.z0.shape, generator=gen, dtype=torch.float64)
    v = torch.randn(problem.z0.shape, generator=gen, dtype=torch.float64)
    x = problem.x0 + 0.1 * torch.randn(problem.x0.shape, generator=gen, dtype=torch.float64)
    idx = torch.tensor([0, 3, 3, 7])
    gz, hv, cross = problem.inner_per_sample(z, x, v, idx)
    mz, mh, mc = problem.inner_oracles(z, x, v, idx)
    torch.testing.assert_close(gz.mean(0), mz)
    torch.testing.assert_close(hv.mean(0), mh)
    torch.testing.assert_close(problem.rows_to_x(cross, idx) / len(idx), mc)
    fz, fx = problem.outer_per_sample(z, x, idx)
    oz, ox = problem.outer_grad(z, x, idx)
    torch.testing.assert_close(fz.mean(0), oz)
    if problem.outer_uses_x:
        torch.testing.assert_close(fx.mean(0), ox)
    else:
        assert fx.shape == (len(idx), 0) and not ox.any()


@pytest.mark.parametrize("kind", ["quadratic", "hyperparam", "datacleaning"])
def test_per_sample_rows_match_torch_func(kind):
    """Each row of the per-sample oracles equals torch.func's vmap(vjp(grad g_i)) and vmap(grad f_j) for that sample."""
    from torch.func import grad, vjp, vmap

    problem = tiny(kind)
    gen = torch.Generator().manual_seed(4)
    z, v = (torch.randn(problem.z0.shape, generator=gen, dtype=torch.float64) for _ in range(2))
    x = problem.x0 + 0.1 * torch.randn(problem.x0.shape, generator=gen, dtype=torch.float64)
    idx = torch.tensor([5, 0, 5, 11])
    inner = tuple(t[idx] for t in problem.inner_data)
    x_dim = 0 if problem.per_sample_x else None

    def one(x_i, *sample):
        gz, pullback = vjp(lambda z_, x_: grad(problem.g)(z_, x_, *sample), z, x_i)
        return (gz, *pullback(v))

    expected = vmap(one, in_dims=(x_dim,) + (0,) * len(inner))(x[idx] if problem.per_sample_x else x, *inner)
    for got, want in zip(problem.inner_per_sample(z, x, v, idx), expected, strict=True):
        torch.testing.assert_close(got, want.reshape(got.shape))
    outer = tuple(t[idx] for t in problem.outer_data)
    want_fz, want_fx = vmap(grad(problem.f, argnums=(0, 1)), in_dims=(None, None) + (0,) * len(outer))(z, x, *outer)
    fz, fx = problem.outer_per_sample(z, x, idx)
    torch.testing.assert_close(fz, want_fz)
    torch.testing.assert_close(fx, want_fx if problem.outer_uses_x else want_fx[:, :0])


@pytest.mark.parametrize("dense", [True, False], ids=["dense", "conjugate-gradient"])
def test_quadratic_value_and_hypergradient_match_the_closed_form(dense, monkeypatch):
    """The generic exact path (Newton, linear solve, autograd on the per-sample losses) against h's closed form."""
    monkeypatch.setattr(exact, "DENSE_MAX", 10**9 if dense else 0)
    problem = quadratic_problem(64, 48, 6, 5)
    form = problem.closed_form
    for seed in range(3):
        x = torch.randn(5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        hg = exact.hypergradient(problem, x, problem.z0, torch.zeros_like(problem.z0))
        assert hg.value == pytest.approx(form.value(x), rel=1e-10, abs=1e-12)
        torch.testing.assert_close(hg.grad, form.grad(x), rtol=1e-8, atol=1e-10)
    at_min = exact.hypergradient(problem, form.minimiser, problem.z0, torch.zeros_like(problem.z0))
    assert float(at_min.grad.norm()) < 1e-8
    assert form.pl_constant >= 1e-3


def test_generic_minimum_finds_the_closed_form_h_star():
    problem = quadratic_problem(64, 48, 6, 5)
    generic, x = exact.minimum(dataclasses.replace(problem, closed_form=None))
    assert generic == pytest.approx(problem.closed_form.minimum, abs=1e-9)
    torch.testing.assert_close(x, problem.closed_form.minimiser, rtol=1e-5, atol=1e-6)


def converge(solver, problem: BilevelProblem, budget: int):
    h_star = problem.closed_form.minimum
    settings = {"batch_size": 4, "budget_samples": budget, "n_evals": 40, "max_time_s": 60.0}
    return run_solver(solver, problem, Evaluator(problem, h_star), settings, CLOCK, seed=0)


def test_saba_converges_linearly_where_soba_does_not():
    problem = quadratic_problem(32, 32, 4, 4, mu=0.5)
    saba = converge(SABA(step_size=0.2), problem, 8000)
    soba = converge(SOBA(step_size=0.2), problem, 8000)
    assert saba.diverged_at is None and soba.diverged_at is None
    assert saba.points[-1].suboptimality < 1e-8
    assert soba.points[-1].suboptimality > 100 * max(saba.points[-1].suboptimality, 1e-12)
    above = [p.suboptimality for p in saba.points if p.suboptimality > 1e-13]  # before float64 rounding
    ratios = [b / a for a, b in zip(above, above[1:], strict=False)]
    assert len(ratios) >= 4 and max(ratios[1:]) < 0.5  # a steady geometric decrease: linear convergence


def test_divergent_step_makes_the_case_invalid_with_its_iteration():
    result = smoke.run_case("bilevel", SOBA(step_size=1e4), {"problem": "quadratic"})
    assert result.invalid_reason is not None and result.invalid_reason.startswith("diverged at iteration ")
    iteration = int(result.invalid_reason.split()[3])
    assert " at step_size=10000, " in result.invalid_reason and "tuned over" in result.invalid_reason  # what it ran at
    assert 1 <= iteration < 100
    assert result.metrics["iterations"] == iteration
    assert result.nonfinite_metrics() == []
    assert math.isfinite(result.metrics["final_suboptimality"])


def test_full_batch_baseline_decreases_h_monotonically():
    problem = quadratic_problem(32, 32, 4, 4)
    trace = converge(FullBatch(), problem, 20_000)
    values = [p.suboptimality for p in trace.points]
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:], strict=False))
    assert values[-1] < 1e-6


def test_saba_tables_are_its_state():
    problem = quadratic_problem(32, 32, 4, 4)
    saba, soba = SABA(), SOBA()
    saba.init(problem, 4, 0)
    soba.init(problem, 4, 0)
    tables = 32 * (4 + 4 + 4) * 8 + 32 * (4 + 4) * 8  # inner rows: d_z g, H v, cross; outer rows: d_z f, d_x f
    assert state_bytes(saba, problem) >= tables
    assert state_bytes(soba, problem) < tables / 10


def test_saba_running_sums_match_its_tables():
    """The column sums SABA updates each step (duplicated draws counted once) equal its tables' sums, between
    and right after the once-per-pass recomputation."""
    problem = tiny("datacleaning")
    saba = SABA(step_size=0.05)
    saba.init(problem, batch_size=4, seed=0)  # draws of 4 among 12: recomputed every 3rd step, duplicates
    for step in range(7):
        saba.step()
        for table in (saba.inner, saba.outer):
            torch.testing.assert_close(table.total, table.rows.sum(0), msg=f"step {step + 1}")


def test_oracles_count_samples():
    problem = tiny("quadratic")
    solver = SOBA()
    solver.init(problem, batch_size=3, seed=0)
    before = problem.samples
    solver.step()
    assert problem.samples - before == 6  # 3 inner + 3 outer


@pytest.mark.parametrize("kind", ["quadratic", "hyperparam", "datacleaning"])
@pytest.mark.parametrize("generic", [False, True], ids=["closed", "generic"])
def test_oracles_count_their_calls_and_samples_by_kind(kind, generic):
    """Each oracle counts one call of each quantity it returns and its batch's samples (all of them when idx is
    None), batch means and per-sample rows alike; a copy of the problem starts its own counts."""
    problem = tiny(kind).generic() if generic else tiny(kind)
    z, x, idx = problem.z0, problem.x0, torch.tensor([0, 3, 3])
    calls = {
        "inner_grad": (lambda: problem.inner_grad(z, x, idx), ("inner_grad",), 3),
        "inner_hvp": (lambda: problem.inner_hvp(z, x, z, idx), ("inner_hvp",), 3),
        "inner_cross": (lambda: problem.inner_cross(z, x, z, None), ("inner_cross",), N),
        "inner_oracles": (lambda: problem.inner_oracles(z, x, z, idx), INNER, 3),
        "inner_per_sample": (lambda: problem.inner_per_sample(z, x, z, idx), INNER, 3),
        "outer_grad": (lambda: problem.outer_grad(z, x, None), (OUTER_GRAD,), N),
        "outer_per_sample": (lambda: problem.outer_per_sample(z, x, idx), (OUTER_GRAD,), 3),
        "inner_value": (lambda: problem.inner_value(z, x, idx), ("inner_value",), 3),
        "outer_value": (lambda: problem.outer_value(z, x), ("outer_value",), N),
    }
    for name, (call, kinds, batch) in calls.items():
        before, samples = problem.oracles.copy(), problem.samples
        call()
        counted = problem.oracles.since(before)
        assert counted.calls == {k: int(k in kinds) for k in KINDS}, name
        assert counted.samples == {k: batch * (k in kinds) for k in KINDS}, name
        assert problem.samples - samples == batch, name  # the samples axis counts a batch once
    assert sum(problem.oracles.calls.values()) > 0
    for copy in (problem.to("cpu"), problem.generic()):
        assert sum(copy.oracles.calls.values()) == 0 and copy.samples == 0


def test_oracle_counts_are_per_iteration_over_at_least_a_pass():
    """The protocol's window: at least COUNT_MIN_STEPS steps and one pass over the inner and outer samples."""
    problem = tiny("quadratic")
    soba = SOBA()
    soba.init(problem, batch_size=2, seed=0)
    steps: list[None] = []
    counts = oracle_counts(lambda: steps.append(soba.step()), problem)
    assert len(steps) == 2 * N // 4 > COUNT_MIN_STEPS  # 12 + 12 samples, 2 + 2 per step
    assert counts == {**{f"oracle_calls_{k}": float(k in (*INNER, OUTER_GRAD)) for k in KINDS},
                      **{f"oracle_samples_{k}": 2.0 * (k in (*INNER, OUTER_GRAD)) for k in KINDS}}  # fmt: skip


def write_libsvm(path, rows: list[str]) -> None:
    path.write_text("".join(row + "\n" for row in rows))


def test_libsvm_files_are_read_and_named(tmp_path):
    rows = [f"{1 if i % 3 else -1} 1:{i / 10} 5:0.5 22:-0.25" for i in range(6)]
    write_libsvm(tmp_path / "ijcnn1", rows)
    write_libsvm(tmp_path / "ijcnn1.t", rows[:4])
    train, val = hyperparam_data(tmp_path, "ijcnn1", 5, 10)
    assert train.dataset == "ijcnn1-5x4" and train.x.shape == (5, 22) and val.x.shape == (4, 22)
    assert train.x[1, 0] == pytest.approx(0.1) and train.x[1, 21] == -0.25
    assert train.y.tolist() == [-1.0, 1.0, 1.0, -1.0, 1.0]


def test_covtype_file_is_split_and_its_labels_signed(tmp_path):
    """covtype's single LIBSVM file (labels 1 and 2) is shuffled with a fixed seed into disjoint splits."""
    rows = [f"{1 + i % 2} 1:{i} 54:0.5" for i in range(30)]
    write_libsvm(tmp_path / "covtype.libsvm.binary.scale", rows)
    train, val = hyperparam_data(tmp_path, "covtype", 20, 8)
    assert train.dataset == "covtype-20x8" and train.x.shape == (20, 54) and val.x.shape == (8, 54)
    ids = torch.cat([train.x[:, 0], val.x[:, 0]]).long()
    assert len(set(ids.tolist())) == 28 and ids.tolist() != list(range(28))  # disjoint, shuffled
    for split in (train, val):
        torch.testing.assert_close(split.y, torch.where(split.x[:, 0].long() % 2 == 1, 1.0, -1.0))  # label 2 -> +1
    again, _ = hyperparam_data(tmp_path, "covtype", 20, 8)
    torch.testing.assert_close(again.x, train.x)


def test_bad_libsvm_file_names_the_file_and_the_line(tmp_path):
    write_libsvm(tmp_path / "ijcnn1", ["1 1:0.5 2:0.1", "-1 1:0.2", "1 1:0.3 2:oops"])
    write_libsvm(tmp_path / "ijcnn1.t", ["1 1:0.5"])
    with pytest.raises(LibsvmFormatError, match=r"ijcnn1, line 3: .*'2:oops'"):
        hyperparam_data(tmp_path, "ijcnn1", 10, 10)


def test_one_libsvm_file_without_the_other_is_an_error(tmp_path):
    write_libsvm(tmp_path / "ijcnn1", ["1 1:0.5"])
    with pytest.raises(FileNotFoundError, match="ijcnn1.t"):
        hyperparam_data(tmp_path, "ijcnn1", 10, 10)


@pytest.mark.parametrize(("dataset", "features", "share"), [("ijcnn1", 22, (0.03, 0.2)), ("covtype", 54, (0.4, 0.6))])
def test_offline_data_is_synthetic_and_says_so(tmp_path, dataset, features, share):
    train, val = hyperparam_data(tmp_path, dataset, 300, 200)
    assert train.dataset == val.dataset == f"synthetic-{dataset}-shape-300x200"
    assert train.x.shape == (300, features) and set(train.y.tolist()) == {-1.0, 1.0}
    assert share[0] < float((train.y > 0).float().mean()) < share[1]


def test_unknown_problem_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown bilevel problem 'lasso'"):
        smoke.run_case("bilevel", "soba", {"problem": "lasso"})
    with pytest.raises(ValueError, match="valid: quadratic, quadratic-benchopt, hyperparam, hyperparam-covtype"):
        settings("hyperparam-mnist", get_task("bilevel").scales["smoke"].config)
    with pytest.raises(ValueError, match="datacleaning-p0.7"):
        settings("datacleaning-pmax", get_task("bilevel").scales["smoke"].config)


def test_corruption_is_part_of_the_problem_name():
    config = get_task("bilevel").scales["full"].config
    assert settings("datacleaning-p0.7", config)["corruption"] == 0.7
    assert settings("datacleaning", config)["corruption"] == 0.5


@pytest.mark.parametrize("impl", ["soba", "saba", "stocbio", "amigo", "fsla", "full_batch"])
def test_smoke_case_on_the_quadratic(impl):
    """Every solver, tuned, ends the smoke quadratic below where it started (AmIGO, FSLA and StocBiO did not at
    their one hand-picked step)."""
    result = smoke.run_case("bilevel", impl, {"problem": "quadratic"})
    assert result.invalid_reason is None
    assert result.nonfinite_metrics() == []
    assert result.checks["suboptimality_decreased"].passed, result.checks
    assert len(result.series["suboptimality_vs_samples"]) >= 2
    assert result.metrics["step_time_s"] > 0 and "step_peak_memory_bytes" in result.metrics
    # the wall-clock ratio to an SGD step, timed in interleaved pairs: a measurement with its spread and 95% interval
    # (its size is the machine's business: a test never bounds a real timing)
    low, high = result.intervals["cost_ratio_vs_sgd"]
    assert 0 < low <= result.metrics["cost_ratio_vs_sgd"] <= high and "cost_ratio_vs_sgd" in result.spread


def test_race_starts_from_a_fresh_init_after_the_engine_measured_steps():
    """The engine steps the solver before the evaluation; the race re-inits it, so it matches a race of a solver
    that was never stepped (same seed, same samples drawn)."""
    result = smoke.run_case("bilevel", "soba", {"problem": "quadratic"})
    config = get_task("bilevel").scales["smoke"].config
    problem = build("quadratic", config, smoke.CACHE / "data", smoke.CACHE)
    evaluator = Evaluator(problem.to("cpu", torch.float64), result.metrics["h_star"])
    tuned = SOBA(step_size=result.metrics["tuned_step_size"], outer_ratio=result.metrics["tuned_outer_ratio"])
    trace = run_solver(tuned, problem, evaluator, settings("quadratic", config), CLOCK, seed=0)
    assert result.metrics["iterations"] == trace.points[-1].iteration
    assert result.metrics["final_suboptimality"] == pytest.approx(trace.points[-1].suboptimality, rel=1e-9)


def test_a_stored_case_s_step_is_timed_again_at_its_stored_choice_without_a_search(monkeypatch, tmp_path):
    """``--against`` times a stored case's step here (``ctx.stored``): the solver steps at the values the stored
    search chose, and no search runs (the search is most of a case's time). The control, without a stored case,
    searches."""

    def no_search(*args, **kwargs):
        raise AssertionError("searched")

    monkeypatch.setattr(tune_module, "search", no_search)
    task = get_task("bilevel")
    fresh = dataclasses.replace(smoke.context("bilevel"), cache_dir=tmp_path)  # no cached search to fall back on
    stored = {"tuned_step_size": 0.123, "tuned_outer_ratio": 7.0, "final_suboptimality": 1.0}
    impl = smoke.reference("bilevel", "soba")
    result = run_case(task, impl, task.scales["smoke"], {"problem": "quadratic"},
                      dataclasses.replace(fresh, stored=stored), step_only=True)  # fmt: skip
    assert impl.overrides == {"step_size": 0.123, "outer_ratio": 7.0}
    assert result.metrics["step_time_s"] > 0 and "final_suboptimality" not in result.metrics
    with pytest.raises(AssertionError, match="searched"):
        run_case(task, smoke.reference("bilevel", "soba"), task.scales["smoke"], {"problem": "quadratic"}, fresh)


def test_the_cost_ratio_is_the_median_of_interleaved_pairs():
    calls, times = [], iter([3.0, 1.0, 30.0, 1.0, 6.0, 2.0])  # step, sgd, step, sgd, ...

    def clock(fn):
        calls.append(fn.__name__)
        return None, next(times)

    def step():
        pass

    def sgd():
        pass

    ratio = cost_ratio(step, sgd, clock, rounds=3)
    assert ratio.median == 3.0 and ratio.pairs == 3  # median of 3, 30, 3
    assert ratio.interval == (3.0, 30.0)  # three pairs: their range, the median's interval with less than 95%
    assert calls == ["step", "sgd"] * 3


def test_the_benchmarked_step_is_one_solver_step():
    step = smoke.step("bilevel", "soba")
    solver = step.__self__
    batch_size = settings("quadratic", get_task("bilevel").scales["smoke"].config)["batch_size"]
    before = solver.problem.samples
    step()
    assert solver.problem.samples - before == 2 * batch_size  # one inner and one outer batch
    assert torch.isfinite(solver.outer_variable()).all()


def test_engine_metrics_are_not_declared_by_the_task():
    names = all_metrics(get_task("bilevel"))
    assert {"step_time_s", "step_peak_memory_bytes", "sgd_step_time_s", "cost_ratio_vs_sgd"} <= set(names)
    assert "peak_step_memory_bytes" not in names


def test_run_checks_and_plots_from_smoke_records():
    task = get_task("bilevel")
    records = []
    for impl in ("soba", "saba"):
        result = smoke.run_case("bilevel", impl, {"problem": "quadratic"})
        records.append({
            "task": "bilevel", "impl": impl, "scale": "smoke", "params": {"problem": "quadratic"}, "seed": 0,
            "status": "ok", "metrics": result.metrics, "series": result.series, "dataset": result.dataset,
        })  # fmt: skip
    checks = task.run_checks(records)
    names = {c.name: c.check.passed for c in checks}
    assert names["saba_reaches_quadratic_target"] and names["soba_does_not_reach_quadratic_target"]
    assert "saba_linear_rate" in names
    assert names["saba_oracles_equal_soba"] and names["saba_table_size"]
    (oracles,) = [c for c in checks if c.name == "saba_oracles_equal_soba"]
    assert oracles.check.value == 0 and oracles.scope == {"impl": "saba", "scale": "smoke", "problem": "quadratic",
                                                          "seed": 0}  # fmt: skip
    assert "d2_zz g v 1 x 16" in oracles.check.description  # one Hessian-vector product on one batch of 16
    # the wall-clock ratio is a measurement, recorded and plotted, not a check
    assert not any("cost" in c.name for c in checks)
    assert all(r["metrics"]["cost_ratio_vs_sgd"] > 0 for r in records)
    figures = task.plots(_frame(records), records)
    assert {"suboptimality_vs_time", "suboptimality_vs_samples", "time_to_run_best_s"} <= set(figures)


# --- the paper's statement of SABA's cost: SOBA's oracles per iteration, a table of one entry per sample -----------
SMOKE_PROBLEMS = ["quadratic", "quadratic-benchopt", "hyperparam", "datacleaning"]


def counted_record(solver, name: str, warm_steps: int = 3) -> dict:
    """A run record of ``solver`` on the smoke instance of ``name`` with the metrics the cost checks read, measured
    by the protocol's own functions (its oracle counts after a few steps, its state, the table it must hold)."""
    config = get_task("bilevel").scales["smoke"].config
    problem, batch = build(name, config, smoke.CACHE / "data", smoke.CACHE), settings(name, config)["batch_size"]
    solver.init(problem, batch, 0)
    for _ in range(warm_steps):
        solver.step()
    metrics = {**oracle_counts(solver.step, problem), **saga_table(problem, batch)}
    metrics["state_bytes"] = float(state_bytes(solver, problem))
    return {"task": "bilevel", "impl": solver.manifest.name, "scale": "smoke", "params": {"problem": name},
            "seed": 0, "status": "ok", "metrics": metrics, "series": {}}  # fmt: skip


def cost_checks(records: list[dict]) -> dict[str, RunCheck]:
    """The two checks of the paper's cost statement, by name, from the records of one problem and seed."""
    found = checks_module.oracle_checks("bilevel", records) + checks_module.table_checks("bilevel", records)
    assert len(found) == 2, found
    return {c.name: c for c in found}


@pytest.mark.parametrize("name", SMOKE_PROBLEMS)
def test_saba_calls_soba_s_oracles_and_holds_one_table_entry_per_sample(name):
    """The reference SABA on every smoke problem (joint rows, per-batch memory, scalars, per-sum rows): per
    iteration one d_z g, one d2_zz g v, one d2_xz g v and one (d_z f, d_x f) on one batch, as SOBA; its state is its
    table's size within the stated slack."""
    soba, saba = counted_record(SOBA(), name), counted_record(SABA(), name)
    batch = settings(name, get_task("bilevel").scales["smoke"].config)["batch_size"]
    for record in (soba, saba):
        m = record["metrics"]
        assert [m[f"oracle_calls_{k}"] for k in KINDS] == [1, 1, 1, 1, 0, 0], record["impl"]
        assert [m[f"oracle_samples_{k}"] for k in KINDS] == [batch] * 4 + [0, 0], record["impl"]
    checks = cost_checks([soba, saba])
    assert checks["saba_oracles_equal_soba"].check.passed and checks["saba_oracles_equal_soba"].check.value == 0
    table = checks["saba_table_size"].check
    assert table.passed, table


def test_the_table_the_paper_needs_by_formula():
    """saga_table on the smoke instances: iterates (2 dz + dx) and n inner entries of 2 dz + dx_g, m outer of
    dz + dx_f numbers; scalars (2 per sample) on the generalised linear model; batch means per fixed batch."""
    config = get_task("bilevel").scales["smoke"].config

    def table(name: str) -> dict[str, float]:
        return saga_table(build(name, config, smoke.CACHE / "data", smoke.CACHE), settings(name, config)["batch_size"])

    # n = m = 128, dz = dx = 10, float64: 30 + 128 * 30 + 128 * 20 numbers
    assert table("quadratic") == {"saga_state_bytes": (30 + 128 * 30 + 128 * 20) * 8, "saga_table_entries": 256}
    # 8 fixed batches of 16 in each sum, float32
    assert table("quadratic-benchopt") == {"saga_state_bytes": (30 + 8 * 30 + 8 * 20) * 4, "saga_table_entries": 16}
    # 2000 + 1000 samples, 22 features: 2 scalars each
    assert table("hyperparam") == {"saga_state_bytes": (66 + 2 * 3000) * 4, "saga_table_entries": 3000}
    # 500 + 200 samples, z of 14 * 14 * 10, one x per training sample (dx_g = 1), F without x (dx_f = 0)
    dz = 14 * 14 * 10
    assert table("datacleaning") == {"saga_state_bytes": (2 * dz + 500 + 500 * (2 * dz + 1) + 200 * dz) * 4,
                                     "saga_table_entries": 700}  # fmt: skip


@pytest.mark.parametrize("broken", [ExtraHessianVector, FullBatchGradient], ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", ["quadratic", "hyperparam", "datacleaning"])
def test_a_saba_with_an_extra_oracle_call_fails_the_oracle_check(broken, name):
    saba = counted_record(broken(), name)
    saba["impl"] = "saba"
    checks = cost_checks([counted_record(SOBA(), name), saba])
    check = checks["saba_oracles_equal_soba"].check
    assert not check.passed and check.value >= 1  # twice SOBA's calls of a kind, or n + b samples against b
    assert "largest at oracle_" in check.description
    assert checks["saba_table_size"].check.passed  # its table is right


@pytest.mark.parametrize("name", SMOKE_PROBLEMS)
def test_a_saba_with_twice_its_table_fails_the_table_check(name):
    saba = counted_record(DoubleTable(), name)
    saba["impl"] = "saba"
    checks = cost_checks([counted_record(SOBA(), name), saba])
    assert not checks["saba_table_size"].check.passed, checks["saba_table_size"].check
    assert checks["saba_oracles_equal_soba"].check.passed  # its oracles are right


def test_a_table_smaller_than_one_entry_per_sample_fails():
    record = counted_record(SABA(), "quadratic")
    record["metrics"]["state_bytes"] = record["metrics"]["saga_state_bytes"] - 8
    (check,) = checks_module.table_checks("bilevel", [record])
    assert not check.check.passed


def test_the_oracle_control_is_one_hessian_vector_product_more_through_the_protocol():
    """The control of saba_oracles_equal_soba runs SOBA and the broken SABA through the task's protocol (untuned):
    SABA's calls of d2_zz g v are twice SOBA's, a relative difference of 1."""
    (check,) = controls.saba_oracles_equal_soba(get_task("bilevel"))
    assert check.passed is False and check.value == 1
    assert "largest at oracle_calls_inner_hvp: SABA 2, SOBA 1" in check.description


def _frame(records):
    import pandas as pd

    rows = []
    for r in records:
        row = {"impl": r["impl"], "params": "problem=quadratic", "scale": r["scale"], "dataset": r["dataset"]}
        rows.append({**row, "hardware": "cpu", **{f"metric.{k}": v for k, v in r["metrics"].items()}})
    return pd.DataFrame(rows)


SABA_CURVE = [[0, 0.5], [1000, 0.3], [2000, 0.0505], [4000, 0.0502]]  # within 1e-3 of 0.05 after 2,000 samples
LATE_SABA = [[0, 0.5], [1000, 0.3], [2000, 0.2], [4000, 0.0502]]  # after 4,000


@pytest.mark.parametrize(
    ("soba", "late_seeds", "passed"),
    [
        ([[0, 0.5], [1000, 0.2], [3000, 0.1]], 0, True),  # SOBA never comes within 1e-3 of the best (0.05)
        ([[0, 0.5], [1000, 0.0505], [3000, 0.0501]], 0, False),  # SOBA gets there first on every seed
        ([[0, 0.5], [1000, 0.2], [3000, 0.0501]], 1, None),  # SOBA at 3,000; SABA at 2,000 on two seeds, 4,000 on one
    ],
)
def test_race_counts_samples_from_the_lowest_value_of_the_run_and_the_seeds_decide(soba, late_seeds, passed):
    """The paper's convention: suboptimality from the lowest h any case reached (here full_batch's). SABA passes
    only when every seed of it gets there before every seed of SOBA; seeds on both sides of SOBA's are undecided."""
    records = []
    for seed in range(3):
        saba = LATE_SABA if seed < late_seeds else SABA_CURVE
        records += [race_record("saba", saba, seed=seed), race_record("soba", soba, seed=seed)]
        records.append(race_record("full_batch", [[0, 0.5], [5000, 0.05]], seed=seed))
    (check,) = [c for c in get_task("bilevel").run_checks(records) if c.name == "saba_reaches_1e-3_before_soba"]
    assert check.check.passed is passed
    assert check.check.value == 2000  # the median seed of SABA is within 1e-3 of 0.05 after 2,000 samples
    assert "on the clock, medians SABA 2 s" in check.check.description  # the clock's times, reported beside


def test_the_race_is_recorded_at_smoke_and_decided_at_small():
    """Smoke's synthetic set and budget are too small for the paper's race (its config says what was measured):
    the check is recorded, inconclusive, with its numbers; the same records at the small scale are decided."""
    records = [race_record("saba", SABA_CURVE), race_record("soba", [[0, 0.5], [1000, 0.2], [3000, 0.1]])]

    def race(scale):
        scaled = [{**r, "scale": scale} for r in records]
        (check,) = [c for c in get_task("bilevel").run_checks(scaled) if c.name == "saba_reaches_1e-3_before_soba"]
        return check.check

    at_smoke = race("smoke")
    assert at_smoke.passed is None and at_smoke.description.startswith("recorded, not decided at this scale")
    assert at_smoke.value == 2000 and "median samples for SABA" in at_smoke.description
    assert race("small").passed is True and race("gpu-smoke").passed is None


# --- the specialised (closed-form) path against the generic one -------------------------------------------------
CLOSED = ["quadratic", "quadratic-benchopt", "hyperparam"]
ORACLES = {
    "inner_grad": lambda p, z, x, v, i: p.inner_grad(z, x, i),
    "inner_hvp": lambda p, z, x, v, i: p.inner_hvp(z, x, v, i),
    "inner_cross": lambda p, z, x, v, i: p.inner_cross(z, x, v, i),
    "inner_oracles": lambda p, z, x, v, i: p.inner_oracles(z, x, v, i),
    "outer_grad": lambda p, z, x, v, i: p.outer_grad(z, x, i),
    "inner_per_sample": lambda p, z, x, v, i: p.inner_per_sample(z, x, v, i),
    "outer_per_sample": lambda p, z, x, v, i: p.outer_per_sample(z, x, i),
}


@pytest.mark.parametrize("kind", CLOSED)
@pytest.mark.parametrize("oracle", list(ORACLES))
def test_closed_form_oracles_equal_the_generic_autograd_ones(kind, oracle):
    problem = tiny(kind)
    assert problem.closed is not None and problem.generic().closed is None
    gen = torch.Generator().manual_seed(5)
    z, v = (torch.randn(problem.z0.shape, generator=gen, dtype=torch.float64) for _ in range(2))
    x = problem.x0 + 0.3 * torch.randn(problem.x0.shape, generator=gen, dtype=torch.float64)
    for idx in (torch.tensor([1, 4, 4, 9]), None):
        closed, generic = problem.generic(), problem.generic()
        closed = dataclasses.replace(closed, closed=problem.closed)
        got, want = ORACLES[oracle](closed, z, x, v, idx), ORACLES[oracle](generic, z, x, v, idx)
        for a, b in zip(*(t if isinstance(t, tuple) else (t,) for t in (got, want)), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"{kind} {oracle}")
        assert closed.samples == generic.samples  # the same samples counted


@pytest.mark.parametrize(
    ("cls", "kind"),
    # SABA on a generalised linear model tables scalars, not rows: a different (unbiased) estimate, checked below
    [(cls, kind) for cls in STOCHASTIC for kind in CLOSED if not (cls is SABA and kind == "hyperparam")],
    ids=lambda v: v.manifest.name if isinstance(v, type) else v,
)
def test_solvers_take_the_same_iterates_on_the_closed_form_and_generic_paths(cls, kind):
    problem = tiny(kind)
    runs = []
    for variant in (problem, problem.generic()):
        solver = cls(step_size=0.05, outer_ratio=1.0)
        solver.init(variant, batch_size=5, seed=3)
        for _ in range(25):
            solver.step()
        runs.append((solver.z.clone(), solver.v.clone(), solver.x.clone()))
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def no_shared_part(z, v, x):
    return 0.0


def logistic_shared_part(z, v, x):
    """The part of hyperparameter selection's inner rows that no sample changes: [e^x z | e^x v | e^x z v]."""
    return torch.cat([torch.exp(x) * z, torch.exp(x) * v, torch.exp(x) * z * v])


def plain_saga(problem: BilevelProblem, steps: int, batch_size: int, seed: int, rho: float, gamma: float,
               shared=no_shared_part):  # fmt: skip
    """SABA written out plainly: a Python dict of per-sample rows per quantity, means recomputed from scratch. With
    ``shared``, the inner rows' part that no sample changes is taken out of the table and added back exactly."""
    gen = torch.Generator().manual_seed(seed)
    z, x, v = problem.z0.clone(), problem.x0.clone(), torch.zeros_like(problem.z0)
    every_in, every_out = torch.arange(problem.n_inner), torch.arange(problem.n_outer)

    def inner_rows(idx):
        return torch.cat(problem.inner_per_sample(z, x, v, idx), 1) - shared(z, v, x)

    table_in = dict(enumerate(inner_rows(every_in)))
    table_out = dict(enumerate(torch.cat(problem.outer_per_sample(z, x, every_out), 1)))
    dz = z.numel()
    for _ in range(steps):
        i, j = problem.draw("inner", batch_size, gen), problem.draw("outer", batch_size, gen)
        new_in = inner_rows(i)
        new_out = torch.cat(problem.outer_per_sample(z, x, j), 1)
        old_in, old_out = torch.stack([table_in[int(k)] for k in i]), torch.stack([table_out[int(k)] for k in j])
        est_in = (new_in - old_in).mean(0) + torch.stack(list(table_in.values())).mean(0) + shared(z, v, x)
        est_out = (new_out - old_out).mean(0) + torch.stack(list(table_out.values())).mean(0)
        for k, row in zip(i.tolist(), new_in, strict=True):
            table_in[k] = row
        for k, row in zip(j.tolist(), new_out, strict=True):
            table_out[k] = row
        d_x = est_in[2 * dz :] + (est_out[dz:] if problem.outer_uses_x else 0)
        z, v, x = z - rho * est_in[:dz], v - rho * (est_in[dz : 2 * dz] + est_out[:dz]), x - gamma * d_x
    return z, v, x


@pytest.mark.parametrize("kind", ["quadratic", "hyperparam"])
def test_saba_joint_table_gives_a_plain_sagas_iterates(kind):
    """SABA's joint table (one gather, one write-back, running sums with repeated draws counted once) against the
    plain definition, on the generic oracles; batches of 7 among 12 samples repeat indices."""
    problem = tiny(kind).generic()
    saba = SABA(step_size=0.05, outer_ratio=2.0)
    saba.init(problem, batch_size=7, seed=4)
    for _ in range(30):
        saba.step()
    want = plain_saga(problem, 30, 7, 4, rho=0.05, gamma=0.025)
    for got, expected in zip((saba.z, saba.v, saba.x), want, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(saba.table.total, saba.table.row_weights @ saba.table.rows)


def test_saba_scalar_table_gives_a_plain_sagas_iterates_on_the_generic_rows():
    """On a generalised linear model (hyperparameter selection) SABA tables two scalars per sample and computes the
    part no sample changes exactly: the same iterates as the plain SAGA of the generic (autograd) rows with that
    part taken out of the table; batches of 7 among 12 samples repeat indices."""
    problem = tiny("hyperparam")
    saba = SABA(step_size=0.05, outer_ratio=2.0)
    saba.init(problem, batch_size=7, seed=4)
    assert saba.scalars is not None and saba.scalars.rows.shape == (2 * N, 2)
    for _ in range(30):
        saba.step()
    want = plain_saga(problem.generic(), 30, 7, 4, rho=0.05, gamma=0.025, shared=logistic_shared_part)
    for got, expected in zip((saba.z, saba.v, saba.x), want, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(saba.scalars.total, saba.scalars._total())
    assert problem.samples == 2 * N + 30 * 14  # the fill (every sample), then 7 inner + 7 outer per step


def test_saba_scalar_table_is_smaller_than_the_rows():
    """Two numbers per sample against 3 p (p = 22 features): the scalar path holds less than half the rows' bytes.
    The layout of the data it gathers from (features and label, ``linear_model()``) is the problem's: built once,
    kept by the problem for every init, and left out of the state as the problem's other data."""
    (x, y), (xv, yv) = synthetic_classification(IJCNN1, 200, 1), synthetic_classification(IJCNN1, 100, 2)
    problem = hyperparam_problem(Labelled(x, y, "t"), Labelled(xv, yv, "t"))
    glm, rows = SABA(), SABA()
    glm.init(problem, 4, 0)
    rows.init(problem.generic(), 4, 0)
    assert rows.scalars is None and rows.joint
    assert glm.scalars.rows.numel() == 300 * 2 and rows.table.rows.numel() == 300 * 3 * 22
    assert state_bytes(glm, problem) < state_bytes(rows, problem) / 2
    assert problem.linear_model() is glm.scalars.model and glm.scalars.data.untyped_storage().nbytes() > 0
    again = SABA()
    again.init(problem, 4, 0)
    assert again.scalars.data is glm.scalars.data  # one layout, however many inits
    assert state_bytes(glm, problem) < glm.scalars.data.untyped_storage().nbytes()  # not counted as SABA's


def test_saba_zero_memory_calls_no_oracle_to_fill_it():
    """benchopt's zero-initialised memory (the default on its quadratic) is zeros: no pass over the data in init."""
    for kind in ("quadratic", "quadratic-benchopt", "hyperparam", "datacleaning"):
        problem = tiny(kind)
        saba = SABA(init_memory="zero")
        saba.init(problem, 5, 0)
        assert problem.samples == 0 and sum(problem.oracles.calls.values()) == 0, kind
        saba.step()
        assert problem.oracles.calls == {k: int(k in (*INNER, OUTER_GRAD)) for k in KINDS}, kind


# --- benchopt's quadratic, its sampler and its SOBA/SABA step rules ----------------------------------------------
def test_benchopt_quadratic_follows_benchmark_bilevels_generator():
    """Spectra as benchopt's gen_matrices draws them: the averaged inner Hessian an empirical covariance with
    expected spectrum logspace(mu, L); the outer x-Hessian with an exact zero eigenvalue; float32 samples (JAX's
    default); x0 = -2, z0 = 0."""
    dz, dx, n = 5, 4, 40_000
    problem = benchopt_problem(n, 64, dz, dx)
    assert problem.inner_data[0].dtype == problem.x0.dtype == torch.float32
    u, w, c, e, a, b = split_vectors(problem.inner_data[0].double(), dz, dx)
    spectrum = torch.linalg.eigvalsh(u.T @ u / n)
    torch.testing.assert_close(spectrum, torch.logspace(-1, 0, dz, dtype=torch.float64), rtol=0.05, atol=0)
    cross = torch.linalg.svdvals(c.T @ e / n)
    torch.testing.assert_close(cross, torch.full((dx,), 0.1, dtype=torch.float64), rtol=0.05, atol=0)
    w_out = split_vectors(problem.outer_data[0].double(), dz, dx)[1]
    assert abs(float(torch.linalg.eigvalsh(w_out.T @ w_out / 64)[0])) < 1e-6
    assert problem.x0.tolist() == [-2.0] * dx and not problem.z0.any()
    assert problem.sampling == "batches" and problem.closed_form.pl_constant > 0
    assert abs(float(a.mean())) < 0.05 and abs(float(b.std()) - 1) < 0.05


def _mean_abs_cosine(d: int) -> float:
    """E|g_1| / |g| for g ~ N(0, I_d): Gamma(d/2) / (sqrt(pi) Gamma((d + 1)/2))."""
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)


@pytest.mark.parametrize("d", [5, 100])
def test_benchopt_eigenbasis_is_the_svd_basis_of_one_gaussian_vector(d):
    """benchopt's P (gen_matrices: ``U, *_ = svd(normal((d, 1)))``) is the Householder reflector of one Gaussian
    vector: R = P D P^T equals the one from NumPy's SVD (LAPACK, as JAX's on a CPU) of the same vector, and the
    mean |diagonal| of P over 2000 draws is E = 1 - 2/d + (2/d) E|g_1|/|g| (P_11 = -|g_1|/|g|, P_ii = 1 -
    g_i^2 / (|g|(|g| + |g_1|))): 0.75 for d = 5, 0.98 for d = 100, where a Haar basis has about sqrt(2/(pi d))."""
    spectrum = torch.logspace(-1, 0, d, dtype=torch.float64)
    for seed in range(5):
        g = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        basis = np.linalg.svd(g.numpy()[:, None])[0]
        want = torch.from_numpy(basis * spectrum.sqrt().numpy() @ basis.T)
        torch.testing.assert_close(root(d, spectrum, torch.Generator().manual_seed(seed)), want, rtol=0, atol=1e-12)
    gen, draws = torch.Generator().manual_seed(0), 2000
    mean_abs = [
        reflector(torch.randn(d, generator=gen, dtype=torch.float64)).diagonal().abs().mean() for _ in range(draws)
    ]
    cosine = _mean_abs_cosine(d)
    expected = 1 - 2 / d + 2 / d * cosine
    standard_error = 2 / d * math.sqrt(1 / d - cosine**2) / math.sqrt(draws)  # per draw: (d - 2 + 2|g_1|/|g|) / d
    assert abs(float(torch.stack(mean_abs).mean()) - expected) < 4 * standard_error


def test_benchopt_accepts_by_its_own_test_and_never_redraws():
    """benchopt keeps a draw when lambda_min(J^T A_f J + B_f + 1/2 (C_f J + J^T C_f^T)) >= 1e-12 (its cross term
    half of H's) and, its retries reusing one key, raises otherwise: seed 13 (12 samples, dims 4 x 3) fails that
    test; seed 10 passes it while H is indefinite (h unbounded below, no h*). Neither is redrawn."""
    with pytest.raises(ValueError, match="benchopt's test rejects the draw"):
        benchopt_problem(N, N, 4, 3, seed=13)
    with pytest.raises(ValueError, match="h unbounded below"):
        benchopt_problem(N, N, 4, 3, seed=10)
    problem = tiny("quadratic-benchopt")
    inner, outer = (split_vectors(data[0], 4, 3) for data in (problem.inner_data, problem.outer_data))
    jac = -torch.linalg.solve(inner[0].T @ inner[0] / N, (inner[2].T @ inner[3] / N).T)
    cross = outer[2].T @ outer[3] / N @ jac
    halved = problem.closed_form.hessian - 0.5 * (cross + cross.T)  # H = J^T A_f J + B_f + C_f J + J^T C_f^T
    want = float(torch.linalg.eigvalsh(halved)[0])
    assert benchopt_min_eig(problem.inner_data[0], problem.outer_data[0], 4, 3) == pytest.approx(want, rel=1e-9)


def test_fixed_batches_are_benchopts_n_plus_one_per_pass():
    """benchopt's sampler: batches in order for the first pass, then reshuffled; n_b + 1 draws per pass (the
    pass's last batch twice: JAX clamps the order's out-of-range index); the last batch the last 4 samples
    (dynamic_slice clamps its start) with weight 2/10."""
    sampler = FixedBatches(10, 4, torch.Generator().manual_seed(0), torch.device("cpu"))
    first = [sampler().tolist() for _ in range(4)]
    assert first == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9], [6, 7, 8, 9]]
    assert [sampler.weight(b) for b in range(3)] == [0.4, 0.4, 0.2]
    for _ in range(6):
        ids = []
        for _ in range(4):
            sampler()
            ids.append(sampler.batch_id)
        assert sorted(ids[:3]) == [0, 1, 2] and ids[3] == ids[2]  # each batch once, the last one again


# benchopt's simulated quadratic and SABA, re-implemented in NumPy from benchmark_bilevel's source and the paper
F32 = np.float32
BENCHOPT_EPS = 1e-10  # benchopt.stopping_criterion.EPS


def _numpy_simulated(n: int, dz: int, dx: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One finite sum as benchmark_utils/gen_matrices.py draws it, in float32 (JAX's default), its per-sample
    matrices kept as their factors: H_i = x_i x_i^T with x_i = xi_i U D^(1/2) U^T, U = svd(normal((d, 1)))[0];
    cross_i = (U_c D_c xi'_i)(xi'_i^T V_c^T) with U_c, _, V_c = svd(normal((dx, dz)))."""

    def half(d: int, spectrum: np.ndarray) -> np.ndarray:
        basis = np.linalg.svd(rng.standard_normal((d, 1)).astype(F32))[0]
        return (basis * np.sqrt(spectrum).astype(F32)) @ basis.T

    a_half = half(dz, np.logspace(-1, 0, dz))
    b_half = half(dx, np.r_[0.0, np.logspace(-1, 0, dx - 1)])
    left, _, right = np.linalg.svd(rng.standard_normal((dx, dz)).astype(F32))
    diag = np.zeros((dx, dz), F32)
    diag[range(min(dx, dz)), range(min(dx, dz))] = 0.1  # logspace(mu, L_cross) with mu = L_cross = 0.1
    xi = rng.standard_normal((n, dz)).astype(F32)
    return {
        "u": rng.standard_normal((n, dz)).astype(F32) @ a_half,
        "w": rng.standard_normal((n, dx)).astype(F32) @ b_half,
        "c": xi @ (left @ diag).T,
        "e": xi @ right.T,
        "a": rng.standard_normal((n, dz)).astype(F32),
        "b": rng.standard_normal((n, dx)).astype(F32),
    }


def _numpy_means(s: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The full-batch matrices (zz Hessian, xx Hessian, cross, linear z, linear x) in float64."""
    d = {k: v.astype(np.float64) for k, v in s.items()}
    n = len(d["u"])
    return d["u"].T @ d["u"] / n, d["w"].T @ d["w"] / n, d["c"].T @ d["e"] / n, d["a"].mean(0), d["b"].mean(0)


def _numpy_value_function(inner: dict, outer: dict) -> tuple[float, float, Callable]:
    """(benchopt's acceptance eigenvalue, H's smallest eigenvalue, x -> grad h(x) as benchopt's metrics)."""
    a_g, _, c_g, lin_g, _ = _numpy_means(inner)
    a_f, b_f, c_f, lin_fz, lin_fx = _numpy_means(outer)
    jac = -np.linalg.solve(a_g, c_g.T)
    base, tmp = jac.T @ a_f @ jac + b_f, c_f @ jac

    def grad(x: np.ndarray) -> np.ndarray:
        z = np.linalg.solve(a_g, -lin_g - c_g.T @ x)
        v = -np.linalg.solve(a_g, a_f @ z + c_f.T @ x + lin_fz)
        return b_f @ x + c_f @ z + lin_fx + c_g @ v

    eig = np.linalg.eigvalsh
    return eig(base + 0.5 * (tmp + tmp.T))[0], eig(base + tmp + tmp.T)[0], grad


class _NumpyBatches:
    """benchopt's JAX sampler: order 0..n_b-1 first, n_b + 1 draws per pass (the order's index n_b clamped to
    n_b - 1), then a permuted order; batch b starts at min(b bs, n - bs)."""

    def __init__(self, n: int, bs: int, rng: np.random.Generator):
        self.n, self.bs, self.rng, self.n_b = n, bs, rng, -(-n // bs)
        self.order, self.i = np.arange(self.n_b), 0

    def __call__(self) -> tuple[int, slice, float]:
        b = self.order[min(self.i, self.n_b - 1)]
        self.order, self.i = (self.rng.permutation(self.order), 0) if self.i == self.n_b else (self.order, self.i + 1)
        start = min(b * self.bs, self.n - self.bs)
        weight = (self.n % self.bs if b == self.n_b - 1 and self.n % self.bs else self.bs) / self.n
        return b, slice(start, start + self.bs), weight


def _numpy_saba_iterations(inner: dict, outer: dict, rng: np.random.Generator, cap: int) -> int:
    """Iterations of benchopt's SABA (rho = gamma = 0.1, batch 64, memory per batch started at zero; float32) from
    z = 0, v = 0, x = -2 until ||grad h(x)||^2 <= EPS ||grad h(x0)||^2, checked every 64 (``cap`` if never). Per
    quantity phi (Dagreou et al. 2022, SAGA): D = phi_b - m_b + sum_b' w_b' m_b', then m_b <- phi_b;
    z -= rho D_z G, v -= rho (D_zz G v + D_z F), x -= gamma (D_xz G v + D_x F)."""
    dz, dx, bs, rho = inner["u"].shape[1], inner["w"].shape[1], 64, F32(0.1)
    grad = _numpy_value_function(inner, outer)[2]
    z, v, x = np.zeros(dz, F32), np.zeros(dz, F32), np.full(dx, -2.0, F32)
    target = BENCHOPT_EPS * np.sum(grad(x.astype(np.float64)) ** 2)
    batches = {"in": _NumpyBatches(len(inner["u"]), bs, rng), "out": _NumpyBatches(len(outer["u"]), bs, rng)}
    memory = {
        "in": np.zeros((batches["in"].n_b, 2 * dz + dx), F32),
        "out": np.zeros((batches["out"].n_b, dz + dx), F32),
    }
    average = {"in": np.zeros(2 * dz + dx, F32), "out": np.zeros(dz + dx, F32)}

    def saga(which: str, b: int, weight: float, phi: np.ndarray) -> np.ndarray:
        change = phi - memory[which][b]
        direction = change + average[which]
        average[which] += F32(weight) * change
        memory[which][b] = phi
        return direction

    for t in range(1, cap + 1):
        b, i, weight = batches["in"]()
        u, c, e, a = (inner[k][i] for k in "ucea")
        g_z = u.T @ (u @ z) / bs + e.T @ (c @ x) / bs + a.mean(0)
        d_in = saga("in", b, weight, np.concatenate([g_z, u.T @ (u @ v) / bs, c.T @ (e @ v) / bs]))
        b, j, weight = batches["out"]()
        u, w, c, e, a, lin_x = (outer[k][j] for k in "uwceab")
        f_z = u.T @ (u @ z) / bs + e.T @ (c @ x) / bs + a.mean(0)
        f_x = w.T @ (w @ x) / bs + c.T @ (e @ z) / bs + lin_x.mean(0)
        d_out = saga("out", b, weight, np.concatenate([f_z, f_x]))
        z, v, x = (
            z - rho * d_in[:dz],
            v - rho * (d_in[dz : 2 * dz] + d_out[:dz]),
            x - rho * (d_in[2 * dz :] + d_out[dz:]),
        )
        if t % 64 == 0 and np.sum(grad(x.astype(np.float64)) ** 2) <= target:
            return t
    return cap


def _saba_iterations(problem: BilevelProblem, cap: int, saba: SABA | None = None) -> int:
    """The same count for the reference SABA (its defaults on quadratic-benchopt unless ``saba`` is given)."""
    form, saba = problem.closed_form, saba or SABA()
    saba.init(problem, 64, 1)
    target = BENCHOPT_EPS * float(form.grad(problem.x0).square().sum())
    for t in range(1, cap + 1):
        saba.step()
        if t % 64 == 0 and float(form.grad(saba.x).square().sum()) <= target:
            return t
    return cap


def _as_numpy(data: tuple[torch.Tensor, ...], dim_z: int, dim_x: int) -> dict[str, np.ndarray]:
    """One of our finite sums in the NumPy re-implementation's layout (its vectors u, w, c, e, a, b, float32)."""
    return {k: v.numpy().astype(F32) for k, v in zip("uwceab", split_vectors(data[0], dim_z, dim_x), strict=True)}


def test_benchopt_quadratic_draws_from_benchmark_bilevels_distribution():
    """At benchopt's defaults (n = m = 1024, d_z = d_x = 100, mu = 0.1, L = 1, L_cross = 0.1), the median PL
    constant of h over 60 draws agrees within 25% with the NumPy re-implementation above of benchmark_bilevel's
    generator (its own random draws). Haar bases instead of benchopt's reflectors give a median about 1.7x larger
    (0.045 against 0.026)."""
    ours, theirs = [], []
    for seed in range(60):
        ours.append(benchopt_problem(1024, 1024, 100, 100, seed=seed).closed_form.pl_constant)
        rng = np.random.default_rng(seed)
        inner, outer = _numpy_simulated(1024, 100, 100, rng), _numpy_simulated(1024, 100, 100, rng)
        accept, pl, _ = _numpy_value_function(inner, outer)
        if accept >= 1e-12 and pl > 0:  # benchopt keeps the draw and h has a minimum
            theirs.append(pl)
    assert len(theirs) >= 54
    assert abs(math.log(statistics.median(ours) / statistics.median(theirs))) < math.log(1.25)


def test_saba_reaches_benchopts_accuracy_in_benchopts_iteration_count():
    """On 8 draws at benchopt's defaults, the reference SABA and the NumPy re-implementation above of benchopt's
    SABA (its step rule, its sampler with its own batch order, float32) reach benchopt's accuracy,
    ||grad h||^2 <= 1e-10 ||grad h(x0)||^2 (its SufficientProgressCriterion counts a decrease below eps = 1e-10 of
    the first value as no progress), in the same number of iterations within one checking period of 64 or 5%.
    The count is the draw's: it ranges from about 1,500 to 8,000 over these draws (1e-10 in 1,472 iterations on
    the best conditioned), while three batch orders of one draw differ by at most 64. A SABA at half benchopt's
    step size needs about twice the iterations on the same draw: the tolerance tells the step rules apart."""

    def agree(ours: int, theirs: int) -> bool:
        return abs(ours - theirs) <= max(64, 0.05 * theirs)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 100 x 100 matrices and batches of 64: a second thread only adds synchronisation
    try:
        with threadpool_limits(1):  # NumPy's BLAS likewise
            counts = []
            for seed in (0, 2, 3, 4, 5, 6, 7, 8):
                problem = benchopt_problem(1024, 1024, 100, 100, seed=seed)
                inner, outer = (_as_numpy(d, 100, 100) for d in (problem.inner_data, problem.outer_data))
                theirs = _numpy_saba_iterations(inner, outer, np.random.default_rng(seed), cap=16_000)
                counts.append((seed, _saba_iterations(problem, cap=16_000), theirs))
            slower = _saba_iterations(problem, cap=16_000, saba=SABA(step_size=0.05))
    finally:
        torch.set_num_threads(threads)
    assert all(theirs < 16_000 for *_, theirs in counts), counts
    assert all(agree(ours, theirs) for _, ours, theirs in counts), counts
    assert not agree(slower, counts[-1][2]), (slower, counts[-1])


def test_soba_and_saba_follow_benchopts_step_rules_on_its_quadratic():
    problem = tiny("quadratic-benchopt")
    soba, saba = SOBA(), SABA()
    soba.init(problem, 4, 0)
    saba.init(problem, 4, 0)
    assert soba.exponents == (0.5, 0.5) and saba.memory == "batch" and not saba.inner.rows.any()
    other = SOBA()
    other.init(tiny("quadratic"), 4, 0)
    assert other.exponents == (0.4, 0.6)


def test_saba_per_batch_memory_is_benchopts_variance_reduction():
    """benchopt's SABA (memory per fixed batch, zero init): D = g_b - m_b + sum_b' w_b' m_b', m_b <- g_b."""
    problem = tiny("quadratic-benchopt")
    saba = SABA(step_size=0.05, outer_ratio=2.0)
    saba.init(problem, 5, 1)  # 12 samples: batches 0-4, 5-9 and 7-11 (benchopt's clamped start), weights 5, 5, 2 / 12
    batches = [torch.arange(0, 5), torch.arange(5, 10), torch.arange(7, 12)]
    weights = [5 / 12, 5 / 12, 2 / 12]
    sizes = {"gz": 4, "hv": 4, "cross": 3, "fz": 4, "fx": 3}
    memory = {q: [torch.zeros(d, dtype=torch.float64) for _ in batches] for q, d in sizes.items()}
    z, v, x = problem.z0.clone(), torch.zeros(4, dtype=torch.float64), problem.x0.clone()
    for _ in range(9):
        b_in, b_out = saba.samplers["inner"], saba.samplers["outer"]
        saba.step()
        new = dict(zip(("gz", "hv", "cross"), problem.inner_oracles(z, x, v, batches[b_in.batch_id]), strict=True))
        new.update(zip(("fz", "fx"), problem.outer_grad(z, x, batches[b_out.batch_id]), strict=True))
        d = {}
        for q, value in new.items():
            b = b_in.batch_id if q in ("gz", "hv", "cross") else b_out.batch_id
            d[q] = value - memory[q][b] + sum(w * m for w, m in zip(weights, memory[q], strict=True))
            memory[q][b] = value
        z, v, x = z - 0.05 * d["gz"], v - 0.05 * (d["hv"] + d["fz"]), x - 0.025 * (d["cross"] + d["fx"])
        torch.testing.assert_close(saba.x, x, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(saba.z, z, rtol=1e-10, atol=1e-12)


def test_saba_full_batch_memory_starts_from_the_sampler_s_batches():
    """Filled per fixed batch, each row is the batch the sampler returns, the last one clamped inside the data
    (benchopt's full init draws its batches from the sampler): 12 samples in batches 0-4, 5-9 and 7-11."""
    problem = tiny("quadratic-benchopt")
    saba = SABA(init_memory="full")
    saba.init(problem, 5, 0)
    z, v, x = problem.z0, torch.zeros_like(problem.z0), problem.x0
    for b, batch in enumerate([torch.arange(0, 5), torch.arange(5, 10), torch.arange(7, 12)]):
        torch.testing.assert_close(saba.inner.rows[b], torch.cat(problem.inner_oracles(z, x, v, batch)))
        fz, fx = problem.outer_grad(z, x, batch)
        torch.testing.assert_close(saba.outer.rows[b], torch.cat([torch.zeros_like(fz), fz, fx]))


# --- tuning in the protocol --------------------------------------------------------------------------------------
def test_every_solver_is_tuned_on_a_held_apart_seed_and_the_case_records_it():
    result = smoke.run_case("bilevel", "soba", {"problem": "quadratic"})
    note = result.note
    assert "tuned over 9 points (budget 9) on held-apart seeds 1000, 1001" in note
    assert "step_size in {0.025, 0.1, 0.4}" in note and "outer_ratio in {0.1, 1, 10}" in note
    chosen = f"chose step_size={result.metrics['tuned_step_size']:.4g}"
    assert chosen in note and result.metrics["tuning_points"] == 9
    assert 1 <= len(result.series["tuning_scores"]) <= 9
    again = smoke.run_case("bilevel", "soba", {"problem": "quadratic"}, seed=1)  # another case seed: same search
    assert again.metrics["tuned_step_size"] == result.metrics["tuned_step_size"]
    assert again.note.endswith("(cached search)")


class DivergesOnTheSecondTuningSeed(SOBA):
    """SOBA that diverges at the step size plain SOBA is tuned to, on held-apart seed 1001 only."""

    diverging_step = 0.0

    def init(self, problem, batch_size, seed):
        super().init(problem, batch_size, seed)
        self.seed = seed

    def step(self):
        super().step()
        if self.seed == 1001 and self.overrides.get("step_size") == self.diverging_step:
            self.x = self.x * math.nan


def test_a_point_that_diverges_on_either_tuning_seed_is_not_chosen():
    """A step that wins on seed 1000 but diverges on 1001 is out: the case must not diverge on a seed of its own."""
    chosen = smoke.run_case("bilevel", "soba", {"problem": "quadratic"}).metrics["tuned_step_size"]
    DivergesOnTheSecondTuningSeed.diverging_step = chosen
    result = smoke.run_case("bilevel", DivergesOnTheSecondTuningSeed(), {"problem": "quadratic"})
    assert result.invalid_reason is None and result.metrics["tuned_step_size"] != chosen
    assert "3 of 9 points failed" in result.note  # the diverging step at each of the 3 outer ratios


def test_values_given_to_the_constructor_are_kept_not_searched():
    result = smoke.run_case("bilevel", SOBA(step_size=0.05), {"problem": "quadratic"})
    assert "tuned_step_size" not in result.metrics and "step_size in" not in result.note
    assert "outer_ratio in {0.1, 1, 10}" in result.note and result.metrics["tuning_points"] == 3


class DeclaredGrid(SOBA):
    tuning_grid = {"quadratic": {"step_size": [0.05, 0.2]}}


class TooBigGrid(SOBA):
    tuning_grid = {"default": {"step_size": [0.01, 0.03, 0.1, 0.3, 1.0], "outer_ratio": [1.0, 10.0]}}


def test_a_solver_declares_its_grid_within_the_same_budget():
    result = smoke.run_case("bilevel", DeclaredGrid(), {"problem": "quadratic"})
    assert "step_size in {0.05, 0.2}" in result.note and result.metrics["tuning_points"] == 2
    with pytest.raises(ValueError, match="10 points .* exceeds the budget of 9 points"):
        smoke.run_case("bilevel", TooBigGrid(), {"problem": "quadratic"})


def test_the_full_batch_baseline_is_not_tuned():
    result = smoke.run_case("bilevel", "full_batch", {"problem": "quadratic"})
    assert result.metrics["tuning_points"] == 0 and result.note.startswith("not tuned")


def test_benchopts_grid_on_its_quadratic():
    result = smoke.run_case("bilevel", "stocbio", {"problem": "quadratic-benchopt"})
    assert "step_size in {0.01, 0.1}, outer_ratio in {0.1, 1, 10, 100}" in result.note
    assert result.metrics["tuning_points"] == 8 and result.checks["suboptimality_decreased"].passed


def test_gpu_smoke_scale_is_a_small_subset_and_runs_on_a_cpu():
    task = get_task("bilevel")
    gpu, small = task.scales["gpu-smoke"], task.scales["small"]
    assert set(gpu.grid["problem"]) <= set(small.grid["problem"])
    assert gpu.config["tuning"]["budget"] == 3
    ctx = smoke.context("bilevel")
    result = run_case(task, SOBA(), gpu, {"problem": "quadratic"}, ctx)
    assert result.invalid_reason is None and result.metrics["tuning_points"] == 3
    assert result.metrics["samples"] >= gpu.config["quadratic"]["budget_samples"]


def test_the_tuning_cache_key_follows_the_helper_modules_beside_a_solver(tmp_path, monkeypatch):
    """A change to a module beside the solver's class (not in its class hierarchy) invalidates its cached search."""
    import importlib.util

    from suites.bilevel.tune import _sources

    (tmp_path / "_helper.py").write_text("STEP = 1\n")
    solver = "from reference_impls.bilevel.soba import SOBA\n\n\nclass Mine(SOBA):\n    pass\n"
    (tmp_path / "mine.py").write_text(solver)
    spec = importlib.util.spec_from_file_location("mine_for_key", tmp_path / "mine.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mine_for_key", module)
    spec.loader.exec_module(module)
    before = _sources(module.Mine())
    (tmp_path / "_helper.py").write_text("STEP = 2\n")
    assert _sources(module.Mine()) != before


class RowOuter(SOBA):
    """Broken: its outer variable as a row (1, dx) instead of x0's shape."""

    def outer_variable(self) -> torch.Tensor:
        return self.x[None]


class ColumnDirections(SOBA):
    """Broken: the D_x it exposes is a column (dx, 1); its own steps use SOBA's."""

    stepping = False

    def step(self) -> None:
        self.stepping = True
        try:
            super().step()
        finally:
            self.stepping = False

    def directions(self, inner_idx, outer_idx):
        d = super().directions(inner_idx, outer_idx)
        return d if self.stepping else dataclasses.replace(d, x=d.x[:, None])


@pytest.mark.parametrize(
    ("solver", "message"),
    [
        (RowOuter, r"RowOuter\.outer_variable returned a tensor of shape \(1, \d+\) float\d+; expected shape \(\d+,\)"),
        (ColumnDirections, r"ColumnDirections\.directions \(D_x\) returned a tensor of shape \(\d+, 1\) float\d+; "
                           r"expected shape \(\d+,\)"),
    ],
)  # fmt: skip
def test_a_return_of_the_wrong_shape_fails_the_case_naming_the_method(solver, message):
    with pytest.raises(ReturnError, match=message):
        smoke.run_case("bilevel", solver(**controls.QUADRATIC), {"problem": "quadratic"})


def test_every_reference_that_exposes_its_directions_gets_the_unbiasedness_check():
    problem = tiny("quadratic")
    for cls in STOCHASTIC:
        check = checks_module.directions_check(cls(step_size=0.05, outer_ratio=1.0), problem, 3, seed=0)
        assert check["directions_unbiased"].passed, (cls.__name__, check)
    assert checks_module.directions_check(FullBatch(), problem, 3, seed=0) == {}  # not exposed: no check
