"""The protocol of one case: one backward method, one forward solver and tolerance (Fung et al. 2022, sections
3-5). The engine measures the prepared step between ``prepare`` and ``evaluate``.

prepare:
1. build the implicit network N(d) = S(u*), u* = T(u*, Q(d)), T a gamma-contraction, and the forward solver;
2. probe one forward on a fixed training batch: if it does not reach the tolerance within the cap, the case is
   invalid with its residual (a non-contractive layer), never a silent number;
3. the step: one training step (power iteration, the method's forward solve and backward, Adam) on a copy of
   the initial network, so that the epochs below start from the same initialisation and count their own
   losses and forward iterations; the copy counts the forward iterations of the steps the engine measured, and
   ``step_forward_iterations`` is their mean over the steps whose memory the engine read (the engine's
   documented order: warm-up, timings, memory readings, energy), the x of memory against forward iterations.

evaluate:
4. train with Adam for the scale's epochs, each epoch timed (phase ``epoch``), counting T's evaluations per
   forward;
5. test accuracy and the worst fixed-point residual over the test split (invalid if above the tolerance);
6. on the fixed batch, with T's weights fixed: the cosine between the method's gradient of Q's and T's
   parameters and the exact implicit gradient (float64, tight tolerance), the Jacobian products of T spent by
   one backward, then that backward timed again on the retained graph (phase ``backward``: the autograd
   backward alone, the output checks having run on the counted one);
7. the backward's cost in units of a Jacobian-free backward: the method's backward and the task's own one-step
   backward (l(S(T(u*, Q(d)))) with u* = z detached, JFB's gradient) timed alternately, ``PAIRS`` pairs, the
   median of the pairs' ratios (``backward_time_vs_one_step``, IQR as spread). Both run in the same process
   within milliseconds of each other, so the machine's load, which moves a case's absolute times by tens of
   per cent between cases on a shared CPU, largely cancels (JFB's ratio reads 0.99-1.01 on a loaded
   CPU); what is left is the work: for IFT, 1 + (Jacobian products) x (the cost of a vector-Jacobian
   product of T in one-step backwards).
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ctbench import CaseResult, Context, Invalid, Prepared, Scale
from ctbench.api.measure import StepStats, paired_interval
from suites.implicit_jfb import data
from suites.implicit_jfb.checks import case_checks
from suites.implicit_jfb.configs import PAIRS
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
    element = next(model.parameters()).element_size()
    metrics["latent_bytes"] = float(cfg["batch"] * cfg["channels"] * math.prod(model.latent_hw) * element)
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
        if measured.forward_evaluations:
            metrics["step_forward_iterations"] = memory_steps_iterations(measured.forward_evaluations, scale)
        metrics["test_accuracy"], residual = accuracy_and_residual(model, impl, test, solver, cfg["batch"], ctx.device)
        series = {"train_loss": [[i + 1, v] for i, v in enumerate(trainer.losses)]}
        if impl.finds_fixed_point:
            if not residual <= solver.tol:
                metrics["converged"] = 0.0
                raise not_converged(
                    metrics, residual, "on the test split after training", solver, train.dataset, series
                )
            metrics.update(residual=residual, converged=1.0)
        gradient, spread, intervals = gradient_metrics(model, impl, x, y, solver, ctx, scale.policy.repeat)
        metrics.update(gradient)
        checks = case_checks(impl, metrics)
        return CaseResult(metrics, train.dataset, checks=checks, series=series, spread=spread, intervals=intervals)

    return Prepared(measured.hot_step(), evaluate, work={"samples": cfg["batch"]})


def memory_steps_iterations(evaluations: list[int], scale: Scale) -> float:
    """Mean evaluations of T per forward over the steps whose memory the engine read (all steps if fewer ran)."""
    policy = scale.policy
    first = policy.warmup + policy.repeat
    read = evaluations[first : first + policy.memory_repeat]
    return statistics.fmean(read or evaluations)


def gradient_metrics(
    model: ImplicitNet,
    impl: ImplicitBackward,
    x: torch.Tensor,
    y: torch.Tensor,
    solver: FixedPointSolver,
    ctx: Context,
    repeat: int,
) -> tuple[dict[str, float], dict[str, float], dict[str, tuple[float, float]]]:
    """(metrics, spreads, intervals) on one batch, in training mode with T's weights fixed: the Jacobian products of T
    spent by the method's backward, the cosine of its gradient of Q's and T's parameters with the exact implicit
    gradient (methods that find a fixed point), the same backward timed ``repeat`` times on the retained graph,
    then its time over the one-step backward's, timed alternately (steps 6 and 7 of the protocol)."""
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
    method = retained_backward(loss, model)
    ctx.meter.phase("backward", method, repeat=repeat, warmup=1)
    one_step = retained_backward(loss_of(model, model.latent_map(model.inject(x))(z.detach()), y), model)
    one_step()  # warm-up
    paired = paired_interval(method, one_step, ctx.meter.clock, PAIRS)
    metrics["backward_time_vs_one_step"] = paired.median
    return metrics, {"backward_time_vs_one_step": paired.iqr}, {"backward_time_vs_one_step": paired.interval}


def retained_backward(loss: torch.Tensor, model: ImplicitNet) -> Callable[[], None]:
    """A closure backpropagating ``loss`` into every parameter of ``model``, keeping the graph for the next call."""
    params = list(model.parameters())

    def run() -> None:
        torch.autograd.backward(loss, inputs=params, retain_graph=True)

    return run


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
