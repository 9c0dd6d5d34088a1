"""The protocol of one case: one backward method, one forward solver and tolerance (Fung et al. 2022, sections
3-5). The engine measures the prepared step between ``prepare`` and ``evaluate``.

prepare:
1. build the implicit network N(d) = S(u*), u* = T(u*, Q(d)), T a gamma-contraction, and the forward solver;
2. probe one forward on a fixed training batch: if it does not reach the tolerance within the cap, the case is
   invalid with its residual (a non-contractive layer), never a silent number;
3. the step: one training step (power iteration, the method's forward solve and backward, Adam) on a copy of
   the initial network, so that the epochs below start from the same initialisation and count their own
   losses and forward iterations.

evaluate:
4. train with Adam for the scale's epochs, each epoch timed (phase ``epoch``), counting T's evaluations per
   forward;
5. test accuracy and the worst fixed-point residual over the test split (invalid if above the tolerance);
6. on the fixed batch, with T's weights fixed: the cosine between the method's gradient of Q's and T's
   parameters and the exact implicit gradient (float64, tight tolerance), the Jacobian products of T spent by
   one backward, then that backward timed again on the retained graph (phase ``backward``).
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Mapping
from typing import Any

import torch

from ctbench import CaseResult, Context, Invalid, Prepared, Scale
from ctbench.measure import StepStats
from suites.implicit_jfb import data
from suites.implicit_jfb.checks import case_checks
from suites.implicit_jfb.exact import cosine, flat, implicit_gradient
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.model import ImplicitNet
from suites.implicit_jfb.solvers import FixedPointSolver
from suites.implicit_jfb.training import (
    Trainer,
    accuracy_and_residual,
    backward,
    build_model,
    forward,
    impl_name,
    loss_of,
    probe,
)


def case_config(scale: Scale, params: Mapping[str, Any]) -> dict[str, Any]:
    """The scale's settings, then the dataset's model (full scale), then the grid point, each overriding."""
    cfg = dict(scale.config)
    models = cfg.pop("models", {})
    dataset = params.get("dataset", cfg.get("dataset"))
    return {**cfg, **models.get(dataset, {}), **params}


def prepare(impl: ImplicitBackward, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
    cfg = case_config(scale, params)
    train, test = data.load(cfg["dataset"], ctx.data_root, ctx.cache_dir, cfg["n_train"], cfg["n_test"], ctx.log)
    torch.manual_seed(ctx.seed)
    model = build_model(cfg, train.x.shape[1], train.x.shape[-1]).to(ctx.device)
    solver = FixedPointSolver(cfg["solver"], float(cfg["tol"]), int(cfg["max_iter"]))
    x, y = train.x[: cfg["batch"]].to(ctx.device), train.y[: cfg["batch"]].to(ctx.device)
    metrics: dict[str, float] = {"parameters": float(sum(p.numel() for p in model.parameters()))}
    residual, evaluations = probe(model, impl, x, y, solver)
    if impl.finds_fixed_point and not residual <= solver.tol:
        metrics.update(forward_iterations=float(evaluations), converged=0.0)
        where = f"{evaluations} evaluations of T at initialisation"
        raise not_converged(metrics, residual, where, solver, train.dataset)
    measured = Trainer(copy.deepcopy(model), impl, solver, train, cfg, ctx.device, ctx.seed)
    trainer = Trainer(model, impl, solver, train, cfg, ctx.device, ctx.seed)

    def evaluate(_: StepStats | None) -> CaseResult:
        samples = len(train) // cfg["batch"] * cfg["batch"]  # an epoch drops the last partial batch
        ctx.meter.phase("epoch", trainer.epoch, repeat=cfg["epochs"], warmup=0, work={"samples": samples})
        metrics["forward_iterations"] = statistics.fmean(trainer.forward_evaluations)
        metrics["test_accuracy"], residual = accuracy_and_residual(model, impl, test, solver, cfg["batch"], ctx.device)
        series = {"train_loss": [[i + 1, v] for i, v in enumerate(trainer.losses)]}
        if impl.finds_fixed_point:
            if not residual <= solver.tol:
                metrics["converged"] = 0.0
                raise not_converged(
                    metrics, residual, "on the test split after training", solver, train.dataset, series
                )
            metrics.update(residual=residual, converged=1.0)
        metrics.update(gradient_metrics(model, impl, x, y, solver, ctx, scale.policy.repeat))
        return CaseResult(metrics, train.dataset, checks=case_checks(impl, metrics, solver.tol), series=series)

    return Prepared(measured.hot_step(), evaluate, work={"samples": cfg["batch"]})


def gradient_metrics(
    model: ImplicitNet,
    impl: ImplicitBackward,
    x: torch.Tensor,
    y: torch.Tensor,
    solver: FixedPointSolver,
    ctx: Context,
    repeat: int,
) -> dict[str, float]:
    """On one batch, in training mode with T's weights fixed: the Jacobian products of T spent by the method's
    backward, the cosine of its gradient of Q's and T's parameters with the exact implicit gradient (methods
    that find a fixed point), then the same backward timed ``repeat`` times on the retained graph."""
    model.train()
    exact = implicit_gradient(model, x, y) if impl.finds_fixed_point else None
    name = impl_name(impl)
    model.zero_grad(set_to_none=True)
    z, layer = forward(model, impl, x, solver)
    loss = loss_of(model, z, y)
    before = layer.jacobian_products
    backward(loss, model, name, retain_graph=True)
    metrics = {"backward_jacobian_products": float(layer.jacobian_products - before)}
    if exact is not None:
        params = model.implicit_parameters()
        metrics["grad_cosine"] = cosine(flat([p.grad for p in params], params), exact)
    ctx.meter.phase("backward", lambda: backward(loss, model, name, retain_graph=True), repeat=repeat, warmup=1)
    return metrics


def not_converged(
    metrics: dict[str, float],
    residual: float,
    where: str,
    solver: FixedPointSolver,
    dataset: str,
    series: dict[str, list[list[float]]] | None = None,
) -> Invalid:
    """The case's ``Invalid``: the forward missed its tolerance, with the residual when it is finite."""
    if math.isfinite(residual):
        metrics["residual"] = residual
        what = f"relative residual {residual:.3g} > tol {solver.tol:g}"
    else:
        what = "the iterates diverged to non-finite values"
    reason = (
        f"forward did not converge ({solver.method}, cap {solver.max_iter}): {what}, {where}; "
        "the latent layer is not contractive enough for this tolerance"
    )
    return Invalid(reason, dataset, metrics, series)
