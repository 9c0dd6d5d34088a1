"""Failing controls: the case checks (``checks.case_checks``) on a case's metrics with the defect each exists to
catch, and the run checks (``checks.run_checks``) on case records shaped like the runner's (``record``, ``memory``
and ``backward`` build them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from ctbench import Check, Task
from ctbench.api.claims import named
from suites.implicit_jfb import checks
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.solvers import FixedPointSolver


def record(
    impl: str,
    tol: float,
    spread: Mapping[str, float] | None = None,
    solver: str = "fixed_point",
    **metrics: float,
) -> dict[str, Any]:
    """One case as the runner records it: ``metrics`` and their ``spread``, at ``solver`` and ``tol``."""
    return {
        "task": "implicit_jfb",
        "impl": impl,
        "scale": "small",
        "dataset": "fashion-mnist",
        "seed": 0,
        "status": "ok",
        "params": {"solver": solver, "tol": tol},
        "metrics": metrics,
        "spread": dict(spread or {}),
    }


def memory(
    impl: str, tol: float, iterations: float, mb: float, spread_mb: float = 0.0, solver: str = "fixed_point"
) -> dict[str, Any]:
    """A record of the tolerance sweep: step memory ``mb`` (range ``spread_mb``) over ``iterations``, 1 MB latents."""
    common = {"test_accuracy": 0.9, "epoch_time_s": 1.0, "latent_bytes": 1e6, "forward_iterations": iterations}
    return record(
        impl,
        tol,
        {"step_peak_memory_bytes": spread_mb * 1e6},
        solver,
        step_forward_iterations=iterations,
        step_peak_memory_bytes=mb * 1e6,
        **common,
    )


def backward(
    impl: str, tol: float, cost: float, products: float, spread: float = 0.0, **metrics: float
) -> dict[str, Any]:
    """A record with its backward's cost in one-step backwards (``cost``, spread ``spread``) and Jacobian
    products."""
    common = {"test_accuracy": 0.9, "epoch_time_s": 1.0, "forward_iterations": 5.0 if tol > 1e-3 else 9.0}
    return record(
        impl,
        tol,
        {"backward_time_vs_one_step": spread},
        backward_time_vs_one_step=cost,
        backward_jacobian_products=products,
        **{**common, **metrics},
    )


class StandIn(ImplicitBackward):
    """What a method claims, and nothing more: the case checks read only these flags and the case's metrics."""

    def forward(self, layer: Layer, u0: torch.Tensor, solver: FixedPointSolver) -> torch.Tensor:
        raise NotImplementedError("a control's stand-in: its case checks read its claims only")


class JacobianFreeStandIn(StandIn):
    jacobian_free: ClassVar[bool] = True


class ExactStandIn(StandIn):
    exact: ClassVar[bool] = True


def case(impl: ImplicitBackward, name: str, **broken: float) -> list[Check]:
    """``name`` of ``case_checks`` on a converged case's metrics (JFB's at smoke scale) with ``broken`` over them."""
    metrics = {"residual": 4e-4, "converged": 1.0, "grad_cosine": 0.9999, "backward_jacobian_products": 0.0}
    return [checks.case_checks(impl, {**metrics, **broken})[name]]


def descent_direction(task: Task) -> list[Check]:
    """A gradient pointing uphill: cosine -0.3 with the exact implicit gradient."""
    return case(JacobianFreeStandIn(), "descent_direction", grad_cosine=-0.3)


def matches_implicit_gradient(task: Task) -> list[Check]:
    """A method claiming the implicit gradient that returns JFB's one-step gradient instead (cosine 0.991 with the
    exact implicit gradient, JFB's own at smoke and small)."""
    return case(ExactStandIn(), "matches_implicit_gradient", grad_cosine=0.991, backward_jacobian_products=1.0)


def no_jacobian_products(task: Task) -> list[Check]:
    """A JFB whose backward runs the full IFT: 8 Jacobian products of T in its backward."""
    return case(JacobianFreeStandIn(), "no_jacobian_products", backward_jacobian_products=8.0)


def unrolled_memory_grows(task: Task) -> list[Check]:
    """An unrolled method whose memory stays flat in the iterations (it backpropagates through the last iterate
    only): 0.25 latents stored per extra forward iteration, +- 0.5."""
    cases = [memory("unrolled", 1e-2, 4, 10, spread_mb=1), memory("unrolled", 1e-5, 8, 11, spread_mb=1)]
    return named(task.run_checks(cases), "unrolled_memory_grows")


def memory_flat_in_iterations(task: Task) -> list[Check]:
    """A JFB and an IFT that keep the graph of every forward iteration: 3 latents stored per extra iteration,
    +- 0.5."""
    cases = [
        memory(impl, tol, k, mb, spread_mb=1)
        for impl in ("jfb", "ift")
        for tol, k, mb in ((1e-2, 4, 20), (1e-5, 8, 32))
    ]
    return named(task.run_checks(cases), "memory_flat_in_iterations")


def jfb_backward_speedup_vs_ift(task: Task) -> list[Check]:
    """A JFB whose backward runs the full IFT and then its one-step backward: 0.85x IFT's speed (5.2 against 4.4
    one-step backwards, each +- 0.04) at the tightest tolerance."""
    cases = [backward("jfb", 1e-5, 5.2, 8, 0.04), backward("ift", 1e-5, 4.4, 8, 0.04)]
    return named(task.run_checks(cases), "jfb_backward_speedup_vs_ift")


def jfb_speedup_grows_with_iterations(task: Task) -> list[Check]:
    """A speed-up that shrinks as IFT's forward iterations grow: 3.0x at tol 1e-2 (5 iterations), 1.5x at 1e-5 (9),
    each median +- 1%."""
    cases = [backward("jfb", 1e-2, 1.0, 0, 0.01), backward("ift", 1e-2, 3.0, 3, 0.01)]
    cases += [backward("jfb", 1e-5, 1.0, 0, 0.01), backward("ift", 1e-5, 1.5, 8, 0.01)]
    return named(task.run_checks(cases), "jfb_speedup_grows_with_iterations")


def jfb_epoch_faster_than_torchdeq_ift(task: Task) -> list[Check]:
    """A JFB epoch twice as long as torchdeq's IFT's (2 s against 1 s, beyond the stated +-22% noise floor)."""
    cases = [backward("jfb", 1e-2, 1.0, 0, epoch_time_s=2.0), backward("torchdeq_ift", 1e-2, 5.0, 12, epoch_time_s=1.0)]
    return named(task.run_checks(cases), "jfb_epoch_faster_than_torchdeq_ift")


def jfb_accuracy_near_ift(task: Task) -> list[Check]:
    """JFB's test accuracy 5 points below IFT's at the small scale (0.85 against 0.90)."""
    cases = [backward("jfb", 1e-2, 1.0, 0, test_accuracy=0.85), backward("ift", 1e-2, 2.0, 3, test_accuracy=0.9)]
    return named(task.run_checks(cases), "jfb_accuracy_near_ift")
