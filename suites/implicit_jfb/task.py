"""``implicit_jfb``: implicit networks trained with Jacobian-free backpropagation vs implicit differentiation.

Protocol per case (one backward method, one forward solver and tolerance, Fung et al. 2022, sections 3-5):
1. build the implicit network N(d) = S(u*), u* = T(u*, Q(d)), T a gamma-contraction, and the forward solver;
2. probe one forward on a fixed training batch: if it does not reach the tolerance within the cap, the case is
   invalid with its residual (a non-contractive layer), never a silent number;
3. train with Adam for the scale's epochs, timing each epoch and counting T's evaluations per forward;
4. test accuracy and the worst fixed-point residual over the test split (invalid if above the tolerance);
5. on the fixed batch: cosine between the method's gradient of Q's and T's parameters and the exact implicit
   gradient (float64, tight tolerance), the Jacobian products of T spent by one backward, the backward's time
   and the working memory of one step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ctbench import CaseResult, Check, Context, Metric, Paper, PaperNumber, RunCheck, Scale, Task
from ctbench.measure import time_call
from suites.implicit_jfb import data
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.protocol import Trainer, build_model, evaluate, measure, probe
from suites.implicit_jfb.solvers import FixedPointSolver

DESCENT = 0.0  # grad_cosine above this: a descent direction
EXACT = 0.99  # grad_cosine of a method claiming the implicit gradient
SWEEP_EXCLUDED = ("explicit", "ift_cg", "torchdeq_ift", "torchdeq_onestep")  # not run at the tolerance sweep

_MNIST_LIKE = {
    "classes": 10,
    "latent_layers": 2,
    "data_blocks": 0,
    "pool": 3,
    "contraction": 0.5,
    "max_iter": 50,
    "batch": 100,
    "weight_decay": 0.0,
    "augment": False,
}
# smoke: a stride-3 stem instead of full-resolution convolutions then pooling (a 10x10 latent): Q costs
# little, so the latent solve and its backward, what the methods differ in, dominate the step as in the
# paper's models
_SMOKE = {
    **_MNIST_LIKE,
    "dataset": "fashion-mnist",
    "channels": 16,
    "data_width": 16,
    "stem_stride": 3,
    "pool": 1,
    "n_train": 2000,
    "n_test": 1000,
    "epochs": 2,
    "lr": 3e-3,
    "timing_repeat": 5,
}
_SMALL = {
    **_MNIST_LIKE,
    "dataset": "fashion-mnist",
    "channels": 32,
    "data_width": 16,
    "n_train": 20000,
    "n_test": 5000,
    "epochs": 5,
    "lr": 1e-3,
    "timing_repeat": 10,
}
# The paper's three models (section 5, appendix) and the authors' training scripts (github.com/Typal-Research/
# jacobian_free_backprop: Adam, batch 100, epochs, learning rates, weight decay, CIFAR-10 StepLR(200, 0.5)).
_FULL_MODELS = {
    "mnist": {
        **_MNIST_LIKE,
        "channels": 32,
        "data_width": 16,
        "tol": 0.1,
        "epochs": 200,
        "lr": 1e-4,
        "n_train": 60000,
        "n_test": 10000,
    },
    "svhn": {
        **_MNIST_LIKE,
        "channels": 64,
        "latent_layers": 2,
        "data_width": 64,
        "data_blocks": 3,
        "pool": 4,
        "contraction": 0.9,
        "tol": 1e-4,
        "max_iter": 200,
        "epochs": 100,
        "lr": 1e-4,
        "weight_decay": 2e-4,
        "n_train": 73257,
        "n_test": 26032,
    },
    "cifar10": {
        **_MNIST_LIKE,
        "channels": 35,
        "latent_layers": 5,
        "data_width": 35,
        "data_blocks": 8,
        "pool": 4,
        "contraction": 0.5,
        "tol": 0.1,
        "max_iter": 50,
        "epochs": 1000,
        "lr": 1e-3,
        "weight_decay": 1e-3,
        "lr_step": 200,
        "lr_gamma": 0.5,
        "augment": True,
        "n_train": 50000,
        "n_test": 10000,
    },
}


def case_config(scale: Scale, params: Mapping[str, Any]) -> dict[str, Any]:
    """The scale's settings, then the dataset's model (full scale), then the grid point, each overriding."""
    cfg = dict(scale.config)
    models = cfg.pop("models", {})
    dataset = params.get("dataset", cfg.get("dataset"))
    return {**cfg, **models.get(dataset, {}), **params}


class ImplicitJFB(Task):
    name = "implicit_jfb"
    paper = Paper(
        title="JFB: Jacobian-Free Backpropagation for Implicit Networks",
        authors="Samy Wu Fung, Howard Heaton, Qiuwei Li, Daniel McKenzie, Stanley Osher, Wotao Yin",
        venue="AAAI 2022",
        url="https://arxiv.org/abs/2103.12803",
    )
    summary = (
        "Train implicit (fixed-point) networks with Jacobian-free backprop against implicit differentiation "
        "(adjoint iteration, CG), unrolling, an explicit network and torchdeq; gradient quality, Jacobian "
        "products, backward time and memory."
    )
    interface = ImplicitBackward
    primary_metric = "test_accuracy"
    metrics = {
        "test_accuracy": Metric("fraction", True, "test accuracy after training"),
        "epoch_time_s": Metric("s", False, "median wall time of one training epoch"),
        "backward_time_s": Metric("s", False, "median wall time of one backward pass on a fixed batch"),
        "step_peak_memory_bytes": Metric("bytes", False, "working memory of one forward+backward (peak - before)"),
        "forward_iterations": Metric("", None, "evaluations of T per training forward (mean)"),
        "residual": Metric("", False, "worst relative fixed-point residual ||T(z)-z||/||T(z)|| on the test split"),
        "converged": Metric("", True, "1 if every forward reached the tolerance within the cap, else 0"),
        "backward_jacobian_products": Metric("", False, "Jacobian products of T (J^T v or J v) in one backward"),
        "grad_cosine": Metric("", True, "cosine of the gradient of Q's and T's parameters with the exact implicit one"),
        "parameters": Metric("", None, "number of trainable parameters"),
    }
    scales = {
        "smoke": Scale(
            "smoke",
            grid={"solver": ["fixed_point", "anderson"], "tol": [1e-2, 1e-5]},
            config=_SMOKE,
            timeout_s=120,
        ),
        "small": Scale(
            "small",
            grid={"solver": ["fixed_point", "anderson"], "tol": [1e-2, 1e-5]},
            config=_SMALL,
            timeout_s=3600,
        ),
        "full": Scale(
            "full",
            grid={"dataset": ["mnist", "svhn", "cifar10"], "solver": ["fixed_point", "anderson"]},
            config={"timing_repeat": 20, "models": _FULL_MODELS},
            timeout_s=7 * 24 * 3600,
        ),
    }
    paper_numbers = [
        PaperNumber("test_accuracy", 0.994, "jfb", "mnist", "Table 1"),
        PaperNumber("test_accuracy", 0.941, "jfb", "svhn", "Table 1"),
        PaperNumber("test_accuracy", 0.937, "jfb", "cifar10", "Table 1", "with augmentation"),
        PaperNumber("test_accuracy", 0.930, "ResNet-56", "cifar10", "Table 1", "explicit ResNet-56, 0.85M params"),
        *[
            PaperNumber(metric, value, impl, dataset, "Table 2", note)
            for dataset, rows in {
                "mnist": ((28.4, 0.992), (17.6, 0.994)),
                "svhn": ((92.8, 0.901), (36.9, 0.941)),
                "cifar10": ((530.9, 0.879), (146.6, 0.9367)),
            }.items()
            for impl, note, (seconds, accuracy) in zip(
                ("ift_cg", "jfb"), ("Jacobian-based (CG), TITAN X", "TITAN X"), rows, strict=True
            )
            for metric, value in (("epoch_time_s", seconds), ("test_accuracy", accuracy))
        ],
    ]

    def skip(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        first = {k: v[0] for k, v in scale.grid.items()}
        if impl == "explicit" and any(params.get(k) != first.get(k) for k in ("solver", "tol")):
            return "the explicit network solves nothing: run once"
        if impl == "ift_cg" and params.get("solver") != "fixed_point":
            return "the paper's Jacobian-based baseline: plain fixed-point forward only"
        if impl in SWEEP_EXCLUDED and params.get("tol", first.get("tol")) != first.get("tol"):
            return "the tolerance sweep (memory against forward iterations) runs jfb, ift and unrolled"
        if "tol" in params and params["tol"] != first.get("tol") and params.get("solver") != "fixed_point":
            return "the tolerance sweep runs with plain fixed-point iteration"
        return None

    def _setup(
        self, impl: ImplicitBackward, scale: Scale, params: Mapping[str, Any], ctx: Context
    ) -> tuple[dict[str, Any], data.Split, data.Split, Trainer]:
        cfg = case_config(scale, params)
        train, test = data.load(cfg["dataset"], ctx.data_root, ctx.cache_dir, cfg["n_train"], cfg["n_test"], ctx.log)
        torch.manual_seed(ctx.seed)
        model = build_model(cfg, train.x.shape[1], train.x.shape[-1]).to(ctx.device)
        solver = FixedPointSolver(cfg["solver"], float(cfg["tol"]), int(cfg["max_iter"]))
        trainer = Trainer(model, impl, solver, train, cfg, ctx.device, ctx.seed)
        return cfg, train, test, trainer

    def run(self, impl: ImplicitBackward, scale: Scale, params: Mapping[str, Any], ctx: Context) -> CaseResult:
        cfg, train, test, trainer = self._setup(impl, scale, params, ctx)
        model, solver = trainer.model, trainer.solver
        x, y = train.x[: cfg["batch"]].to(ctx.device), train.y[: cfg["batch"]].to(ctx.device)
        metrics: dict[str, float] = {"parameters": sum(p.numel() for p in model.parameters())}
        residual, evaluations = probe(model, impl, x, y, solver)
        if impl.finds_fixed_point and not residual <= solver.tol:
            metrics.update(forward_iterations=evaluations, converged=0.0)
            return self._not_converged(
                metrics, residual, f"{evaluations} evaluations of T at initialisation", solver, train.dataset
            )
        epochs = time_call(trainer.epoch, ctx.device, repeat=cfg["epochs"], warmup=0)
        metrics.update(
            epoch_time_s=epochs.median,
            forward_iterations=sum(trainer.forward_evaluations) / len(trainer.forward_evaluations),
        )
        metrics["test_accuracy"], residual = evaluate(model, impl, test, solver, cfg["batch"], ctx.device)
        series = {"train_loss": [[i + 1, v] for i, v in enumerate(trainer.losses)]}
        if impl.finds_fixed_point:
            if not residual <= solver.tol:
                metrics["converged"] = 0.0
                return self._not_converged(
                    metrics, residual, "on the test split after training", solver, train.dataset, series
                )
            metrics.update(residual=residual, converged=1.0)
        m = measure(model, impl, x, y, solver, ctx.device, cfg["timing_repeat"])
        metrics.update(
            backward_time_s=m.backward.median,
            step_peak_memory_bytes=m.memory.step_bytes,
            backward_jacobian_products=m.jacobian_products,
        )
        if m.grad_cosine is not None:
            metrics["grad_cosine"] = m.grad_cosine
        return CaseResult(
            metrics,
            dataset=train.dataset,
            checks=self._checks(impl, metrics, solver.tol),
            series=series,
            spread={"epoch_time_s": epochs.iqr, "backward_time_s": m.backward.iqr},
        )

    @staticmethod
    def _not_converged(
        metrics: dict[str, float],
        residual: float,
        where: str,
        solver: FixedPointSolver,
        dataset: str,
        series: dict | None = None,
    ) -> CaseResult:
        if math.isfinite(residual):
            metrics["residual"] = residual
            what = f"relative residual {residual:.3g} > tol {solver.tol:g}"
        else:
            what = "the iterates diverged to non-finite values"
        reason = (
            f"forward did not converge ({solver.method}, cap {solver.max_iter}): {what}, {where}; "
            "the latent layer is not contractive enough for this tolerance"
        )
        return CaseResult(metrics, dataset=dataset, series=series or {}, invalid_reason=reason)

    @staticmethod
    def _checks(impl: ImplicitBackward, metrics: Mapping[str, float], tol: float) -> dict[str, Check]:
        checks = {}
        if impl.finds_fixed_point:
            checks["converged"] = Check.at_most(metrics["residual"], tol, "worst test residual <= tol")
            checks["descent_direction"] = Check.at_least(metrics["grad_cosine"], DESCENT, "grad_cosine > 0")
        if impl.exact:
            checks["matches_implicit_gradient"] = Check.at_least(metrics["grad_cosine"], EXACT, "grad_cosine")
        if impl.jacobian_free:
            checks["no_jacobian_products"] = Check.at_most(
                metrics["backward_jacobian_products"], 0, "Jacobian products of T in the backward"
            )
        return checks

    def hot_step(self, impl: ImplicitBackward, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Callable:
        return self._setup(impl, scale, params, ctx)[3].hot_step()

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        from suites.implicit_jfb.checks import run_checks

        return run_checks(self.name, cases)

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from suites.implicit_jfb.plots import plots

        return plots(cases)
