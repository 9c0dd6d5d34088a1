"""``iresnet``: invertible residual networks for density estimation and classification.

Protocol (one case: a log-det method, an experiment and data set, the spectral coefficient c, the series length):
1. training by maximum likelihood (or cross-entropy) with the method's log-det, timed: training throughput; the
   working memory of one more step;
2. with the spectral norms' power iteration converged: test NLL (bits/dim for images, accuracy for classification)
   with the same reference log-det for every method; the estimator's error (low dimensions): the method's total
   log-det against the exact one on test inputs over independent draws; log-det evaluation throughput; inversion
   error and iterations of F^-1(F(x)) with the method's inverse; the largest singular value of each block's
   Jacobian; samples drawn by inverting the flow from N(0, I) (2-D).
A method whose log-det carries no gradient cannot train a density (check ``logdet_differentiable``): it gets step 2
on the untrained flow and no training metrics.
A case with c >= 1 (blocks not contractive) is marked invalid with its inversion residual.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.nn.utils import parametrize

from ctbench import CaseResult, Check, Context, Metric, Paper, PaperNumber, RunCheck, Scale, Task
from ctbench.measure import peak_memory, throughput, time_call
from suites.iresnet import measures
from suites.iresnet.experiments import DATASETS, Setup, setup
from suites.iresnet.interface import ResidualLogDet
from suites.iresnet.spectral import converge

INVERSE_ERROR_MAX = 1e-4  # float32, within the iteration budget, at c = 0.9
NOT_CONVERGED = 1e-3  # a block's inversion residual above this: the fixed point was not reached
LIPSCHITZ_TOL = 0.01
SWEEP_IMPLS = ("iresnet", "residual_flow", "normflows_residual")  # the memory sweep over series terms
# ``config["methods_for"]`` may narrow the sweep and the non-contractive case to fewer methods (smoke's budget)

_COMMON = {
    "exact_max_dim": 16,
    "inverse_tol": 1e-6,
    "inverse_max_iter": 100,
    "lipschitz_iterations": 20,
    "converge_iterations": 50,
    "probe_batch": 256,
    "eval_batch": 500,
    "n_samples": 500,
}


def _images(stages: list | dict, steps: int, batch: int, n_train: int, n_test: int, lr: float) -> dict[str, Any]:
    return {
        "stages": stages,
        "steps": steps,
        "batch": batch,
        "n_train": n_train,
        "n_test": n_test,
        "lr": lr,
        "alpha": 0.05,
        "power_iterations": 1,
    }


def _classifier(stages: list | dict, steps: int, batch: int, n_train: int, n_test: int) -> dict[str, Any]:
    return {
        "stages": stages,
        "pad_to": 16,
        "classes": 10,
        "steps": steps,
        "batch": batch,
        "n_train": n_train,
        "n_test": n_test,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "power_iterations": 1,
    }


class IResNetTask(Task):
    name = "iresnet"
    paper = Paper(
        title="Invertible Residual Networks",
        authors="Jens Behrmann, Will Grathwohl, Ricky T. Q. Chen, David Duvenaud, Joern-Henrik Jacobsen",
        venue="ICML 2019",
        url="https://arxiv.org/abs/1811.00995",
    )
    summary = (
        "Log-determinants of invertible residual blocks x + g(x), Lip(g) <= c < 1: i-ResNet's truncated power "
        "series, Residual Flows' unbiased roulette with Neumann gradients, the exact Jacobian, normflows and FrEIA."
    )
    interface = ResidualLogDet
    primary_metric = "test_nll"
    metrics = {
        "test_nll": Metric("nats", False, "test negative log-likelihood per example (classification: of the label)"),
        "true_nll": Metric("nats", None, "the true density's NLL on the same test points (2-D)"),
        "bits_per_dim": Metric("bits", False, "test bits per dimension (images)"),
        "test_accuracy": Metric("fraction", True, "test accuracy (classification)"),
        "throughput_samples_s": Metric("samples/s", True, "training samples per second"),
        "eval_throughput_samples_s": Metric("samples/s", True, "forward + log-det samples per second, no gradient"),
        "step_peak_memory_bytes": Metric("bytes", False, "working memory of one training step (peak - before)"),
        "inverse_error": Metric("", False, "||F^-1(F(x)) - x|| / ||x|| on test inputs"),
        "inverse_iterations": Metric("evaluations", None, "most evaluations of g one block's inversion used"),
        "inverse_residual": Metric("", None, "largest ||x^ + g(x^) - y|| / ||y|| a block's inversion left"),
        "lipschitz_measured": Metric("", None, "largest ||J_g(x)||_2 over blocks and test inputs (vs c)"),
        "logdet_bias": Metric("nats", None, "mean of (estimated - exact) total log-det, same inputs"),
        "logdet_std": Metric("nats", False, "standard deviation of the estimated total log-det per input"),
    }
    paper_numbers = (
        PaperNumber("bits_per_dim", 1.06, "iresnet", "mnist", "Behrmann et al. 2019, Table 2"),
        PaperNumber("bits_per_dim", 3.45, "iresnet", "cifar10", "Behrmann et al. 2019, Table 2"),
        PaperNumber("bits_per_dim", 0.97, "residual_flow", "mnist", "Chen et al. 2019, Table 1"),
        PaperNumber("bits_per_dim", 3.28, "residual_flow", "cifar10", "Chen et al. 2019, Table 1"),
    )
    scales = {
        "smoke": Scale(
            "smoke",
            grid={"experiment": ["density_2d"], "dataset": ["eight_gaussians"], "c": [0.9, 1.5], "terms": [4, 12]},
            config={
                **_COMMON,
                "estimator_draws": 40,
                "timing_repeat": 5,
                "methods_for": {"terms": ["iresnet", "residual_flow"], "c>=1": ["iresnet"]},
                # cpu_threads 1: 2-D models are too small for intra-op threads (normflows' figure is one thread)
                "density_2d": {
                    "blocks": 4,
                    "width": 32,
                    "layers": 3,
                    "steps": 100,
                    "batch": 256,
                    "lr": 1e-2,
                    "n_test": 2000,
                    "power_iterations": 1,
                    "cpu_threads": 1,
                },
                "density_images": {**_images([[2, 16]], 5, 16, 256, 64, 3e-3), "cpu_threads": 1},
                "classification": {**_classifier([[1, 16], [1, 32]], 5, 16, 256, 64), "cpu_threads": 1},
            },
            timeout_s=120,
        ),
        "small": Scale(
            "small",
            grid={
                "experiment": ["density_2d", "density_images", "classification"],
                "dataset": ["eight_gaussians", "two_moons", "checkerboard", "fashion-mnist"],
                "c": [0.9, 1.5, None],
                "terms": [5, 2, 10, 20],
            },
            config={
                **_COMMON,
                "estimator_draws": 200,
                "timing_repeat": 10,
                # normflows' measured setting: 8 blocks, width 128, batch 256
                "density_2d": {
                    "blocks": 8,
                    "width": 128,
                    "layers": 3,
                    "steps": 3000,
                    "batch": 256,
                    "lr": 1e-3,
                    "n_test": 20000,
                    "power_iterations": 1,
                    "cpu_threads": 1,
                },
                "density_images": _images([[2, 32], [2, 32]], 500, 64, 60000, 2000, 3e-3),
                "classification": _classifier([[2, 32], [2, 64]], 1000, 128, 60000, 10000),
            },
            timeout_s=3600,
        ),
        "full": Scale(
            "full",
            grid={
                "experiment": ["density_2d", "density_images", "classification"],
                "dataset": ["eight_gaussians", "two_moons", "checkerboard", "fashion-mnist", "mnist", "cifar10"],
                "c": [0.9, 1.5, None],
                "terms": [5, 2, 10, 20],
            },
            config={
                **_COMMON,
                "eval_batch": 200,
                "estimator_draws": 1000,
                "timing_repeat": 20,
                # Residual Flows' 2-D setting: 100 blocks of width 128, Adam 1e-3, 50k iterations, batch 500
                "density_2d": {
                    "blocks": 100,
                    "width": 128,
                    "layers": 4,
                    "steps": 50000,
                    "batch": 500,
                    "lr": 1e-3,
                    "n_test": 100000,
                    "power_iterations": 1,
                },
                # the paper's CIFAR-10 model: 16-16-16 blocks x 512 channels, Adamax 3e-3, batch 128, 200 epochs;
                # 28x28 images take two scales (28 -> 14 -> 7)
                "density_images": _images(
                    {"cifar10": [[16, 512]] * 3, "mnist": [[16, 512]] * 2, "fashion-mnist": [[16, 512]] * 2},
                    200 * 390,
                    128,
                    60000,
                    10000,
                    3e-3,
                ),
                # the paper's classifier: 7-7-7 blocks, widths 32/64/128, SGD 0.1, batch 128, wd 5e-4, 200 epochs
                "classification": _classifier(
                    {
                        "cifar10": [[7, 32], [7, 64], [7, 128]],
                        "mnist": [[7, 32], [7, 64]],
                        "fashion-mnist": [[7, 32], [7, 64]],
                    },
                    200 * 390,
                    128,
                    50000,
                    10000,
                ),
            },
            timeout_s=48 * 3600,
        ),
    }

    def skip(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        experiment, dataset, c, terms = params["experiment"], params["dataset"], params["c"], params["terms"]
        if dataset not in DATASETS.get(experiment, ()):
            return f"{dataset} is not a data set of {experiment}"
        if experiment == "classification":
            if impl != "iresnet":
                return "classification uses no log-det: it runs once, with iresnet"
            if c is not None and c >= 1:
                return "classification compares c < 1 with the unconstrained network (c=None)"
            return None if terms == scale.grid["terms"][0] else "classification uses no series"
        if c is None:
            return "c=None (no normalisation) is the classification baseline"
        if impl == "exact" and experiment != "density_2d":
            return "the exact log-det is for low dimensions"
        first = experiment == scale.grid["experiment"][0] and dataset == scale.grid["dataset"][0]
        narrowed = scale.config.get("methods_for", {})
        sweep = narrowed.get("terms", SWEEP_IMPLS)
        if terms != scale.grid["terms"][0] and not (first and impl in sweep and c < 1):
            return f"the sweep over series terms runs for {', '.join(sweep)} on the first data set at c < 1"
        if c >= 1 and not (first and impl in narrowed.get("c>=1", (impl,))):
            return "the non-contractive case (c >= 1) runs on the first data set" + (
                f" for {', '.join(narrowed['c>=1'])}" if "c>=1" in narrowed else ""
            )
        return None

    def run(self, impl: ResidualLogDet, scale: Scale, params: Mapping[str, Any], ctx: Context) -> CaseResult:
        with _cpu_threads(scale.config[params["experiment"]].get("cpu_threads"), ctx.device):
            return self._run(impl, scale, params, ctx)

    def _run(self, impl: ResidualLogDet, scale: Scale, params: Mapping[str, Any], ctx: Context) -> CaseResult:
        cfg, c, terms = scale.config, params["c"], int(params["terms"])
        s = setup(params, cfg, ctx)
        contractive = c is not None and c < 1
        metrics: dict[str, float] = {}
        checks: dict[str, Check] = {}
        series: dict[str, list[list[float]]] = {}
        spread: dict[str, float] = {}

        trains, stopped = _trains(s, impl, terms), ""
        if s.density:
            checks["logdet_differentiable"] = Check.at_least(
                float(trains),
                1.0,
                "log-det carries a gradient, as maximum-likelihood training needs; without one "
                "the method is not trained and its case has no training metrics (NLL, throughput, step memory)",
            )
        if trains:
            step = _train_step(s, impl, terms)
            losses: list[list[float]] = []
            fit = time_call(lambda: _fit(step, cfg[params["experiment"]]["steps"], losses), ctx.device, 1, 0)
            series["train_loss"] = losses[:: max(len(losses) // 200, 1)]
            done = len(losses)
            if done < cfg[params["experiment"]]["steps"]:
                if contractive:
                    raise RuntimeError(f"training diverged at step {done}: non-finite loss at c={c}")
                stopped = f"; training stopped at step {done} (non-finite loss)"
            else:
                metrics["throughput_samples_s"] = throughput(done * cfg[params["experiment"]]["batch"], fit.median)
                metrics["step_peak_memory_bytes"] = peak_memory(step, ctx.device, repeat=3).step_bytes
        s.model.eval()
        converge(s.model, cfg["converge_iterations"])
        if trains:
            metrics.update(s.evaluate())
        if s.density and s.dim <= cfg["exact_max_dim"]:
            err = measures.estimator_error(s.flow, impl, s.probe, terms, cfg["estimator_draws"])
            metrics.update(logdet_bias=err.bias, logdet_std=err.std)
            checks.update(_estimator_checks(impl.series, err, terms))
        timing = time_call(_eval_step(s, impl, terms), ctx.device, repeat=cfg["timing_repeat"])
        rates = [len(s.probe) / t for t in timing.times]
        metrics["eval_throughput_samples_s"] = statistics.median(rates)
        spread["eval_throughput_samples_s"] = _iqr(rates)

        inv = measures.invert(s.flow, impl, s.probe, cfg["inverse_tol"], cfg["inverse_max_iter"])
        metrics.update(inverse_error=inv.error, inverse_iterations=inv.iterations, inverse_residual=inv.residual)
        checks["inverse_error"] = Check.at_most(
            inv.error,
            INVERSE_ERROR_MAX,
            f"relative error of F^-1(F(x)), at most {cfg['inverse_max_iter']} evaluations of g per block",
        )
        metrics["lipschitz_measured"] = measures.lipschitz(s.flow, s.probe, cfg["lipschitz_iterations"])
        if c is not None:
            checks["lipschitz"] = Check.at_most(
                metrics["lipschitz_measured"], c + LIPSCHITZ_TOL, f"largest ||J_g(x)||_2 at most c + {LIPSCHITZ_TOL}"
            )
        if s.density and s.dim == 2 and trains:
            series["samples"] = _samples(s, impl, cfg)
            series["data"] = s.probe.cpu().tolist()

        invalid = _invalid_reason(c, contractive, s.density, inv, cfg["inverse_max_iter"])
        if invalid:  # numbers of a non-invertible model: keep the finite ones, unranked, with the reason
            invalid += stopped
            metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
            checks = {k: v for k, v in checks.items() if math.isfinite(v.value) and math.isfinite(v.threshold)}
        return CaseResult(
            metrics, dataset=s.dataset, checks=checks, series=series, spread=spread, invalid_reason=invalid
        )

    def hot_step(self, impl: ResidualLogDet, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Callable:
        s = setup(params, scale.config, ctx)
        trains = _trains(s, impl, int(params["terms"]))
        if not trains:
            s.model.eval()
        step = (_train_step if trains else _eval_step)(s, impl, int(params["terms"]))
        threads = scale.config[params["experiment"]].get("cpu_threads")

        def hot() -> Any:
            with _cpu_threads(threads, ctx.device):
                return step()

        return hot

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        from suites.iresnet.checks import sweep_checks

        return sweep_checks(self.name, cases)

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from suites.iresnet.plots import task_plots

        return task_plots(cases, records)


@contextlib.contextmanager
def _cpu_threads(threads: int | None, device: torch.device) -> Iterator[None]:
    """Run with ``threads`` intra-op CPU threads (restored after); None: leave torch's setting."""
    if threads is None or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _estimator_checks(kind: str, err: measures.EstimatorError, terms: int) -> dict[str, Check]:
    if kind == "roulette":
        return {
            "logdet_unbiased": Check.at_most(
                abs(err.bias), 3 * err.bias_se, "|mean log-det error| within 3 standard errors"
            )
        }
    if kind == "truncated" and math.isfinite(err.bound):
        return {
            "logdet_bias_bound": Check.at_most(
                abs(err.bias),
                err.bound + 3 * err.bias_se,
                f"|mean log-det error| within the {terms}-term bound -d(log(1-s) + sum_k s^k/k) + 3 SE",
            )
        }
    return {}


def _trains(s: Setup, impl: ResidualLogDet, terms: int) -> bool:
    """Whether the method can train this experiment: its log-det carries a gradient (classification uses none)."""
    if not s.density:
        return True
    with torch.enable_grad():
        _, logdet = s.flow.forward_logdet(s.probe[:4].clone(), lambda g, h: impl.forward(g, h, terms))
    return logdet.requires_grad


def _train_step(s: Setup, impl: ResidualLogDet, terms: int) -> Callable[[], float]:
    """One optimiser step; returns the loss, or NaN (and does not step) when the loss is not finite."""
    opt = s.optimizer()

    def logdet(g: torch.nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return impl.forward(g, h, terms)

    def step() -> float:
        s.model.train()
        batch = s.next_batch()
        opt.zero_grad(set_to_none=False)
        with parametrize.cached():
            loss = s.loss(batch, logdet)
            if not torch.isfinite(loss):
                return math.nan
            loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def _fit(step: Callable[[], float], steps: int, losses: list[list[float]]) -> None:
    for i in range(steps):
        loss = step()
        if not math.isfinite(loss):
            return
        losses.append([i, loss])


def _eval_step(s: Setup, impl: ResidualLogDet, terms: int) -> Callable[[], Any]:
    """Forward + log-det of the probe batch without gradients (classification: inference)."""

    def step() -> None:
        with torch.no_grad():
            if s.density:
                s.flow.forward_logdet(s.probe, lambda g, h: impl.forward(g, h, terms))
            else:
                s.model(s.probe)

    return step


def _samples(s: Setup, impl: ResidualLogDet, cfg: Mapping[str, Any]) -> list[list[float]]:
    """x = F^-1(z), z ~ N(0, I), with the method's inverse."""
    z = torch.randn(cfg["n_samples"], s.dim, generator=torch.Generator().manual_seed(1)).to(s.probe)
    x = s.flow.inverse(z, lambda g, y: impl.inverse(g, y, cfg["inverse_tol"], cfg["inverse_max_iter"]))
    return x.detach().cpu().tolist()


def _invalid_reason(
    c: float | None, contractive: bool, density: bool, inv: measures.Inversion, limit: int
) -> str | None:
    failed = max(inv.residual, inv.error) > NOT_CONVERGED
    where = (
        f"fixed-point inversion {'did not converge' if failed else 'converged'}: residual {inv.residual:.2e}, "
        f"reconstruction error {inv.error:.2e}, {inv.iterations} evaluations of g (limit {limit})"
    )
    if not contractive and (density or c is not None):
        return f"c = {c} requested: blocks are not guaranteed contractive (need c < 1); {where}"
    if density and failed:
        return f"not invertible: {where}"
    return None


def _iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[2] - q[0]
