"""Failing controls: each run check of the depth sweep on smoke-shaped case records with the defect it exists to
catch (``record`` builds one case as the runner records it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ctbench import Check, Task
from ctbench.api.claims import named

DEPTHS = (8, 16, 32, 64, 128)  # the smoke scale's sweep
MEMORY = "step_peak_memory_bytes"


def record(
    impl: str,
    depth: int,
    activation: str = "relu",
    spread: Mapping[str, float] | None = None,
    intervals: Mapping[str, tuple[float, float]] | None = None,
    **metrics: float,
) -> dict[str, Any]:
    """One smoke-scale case of the depth sweep as the runner records it (``metrics``, their ``spread`` and 95%
    ``intervals``)."""
    return {
        "task": "adjoint_resnet",
        "impl": impl,
        "status": "ok",
        "scale": "smoke",
        "dataset": "synthetic-3x32x32-10class",
        "seed": 0,
        "params": {"depth": depth, "activation": activation},
        "metrics": dict(metrics),
        "spread": dict(spread or {}),
        "intervals": {name: list(bounds) for name, bounds in (intervals or {}).items()},
    }


def adjoint(
    impl: str,
    depth: int,
    memory: float,
    error: float,
    activation: str = "relu",
    intervals: Mapping[str, tuple[float, float]] | None = None,
    **metrics: float,
) -> dict[str, Any]:
    """A memory-free method's case (it reports ``reconstruction_error``): step memory ``memory`` bytes read with a
    spread of 1%, gradient error ``error``."""
    return record(
        impl,
        depth,
        activation,
        spread={MEMORY: 0.01 * memory},
        intervals=intervals,
        step_peak_memory_bytes=memory,
        step_time_s=1e-3 * depth,
        grad_rel_error=error,
        reconstruction_error=error,
        **metrics,
    )


def checks_of(task: Task, cases: list[dict[str, Any]], name: str) -> list[Check]:
    return named(task.run_checks(cases), name)


def errors(impl: str, law: Callable[[int], float], activation: str = "relu") -> list[dict[str, Any]]:
    """``impl``'s sweep with flat memory and gradient error ``law(depth)``."""
    return [adjoint(impl, n, 2.8e6, law(n), activation) for n in DEPTHS]


def backprop_memory_grows(task: Task) -> list[Check]:
    """A backprop that does not keep its activations: its step memory stays flat in depth (4.4 MB at depth 8,
    4.5 MB at 128, where storing every block's activations grows it about tenfold)."""
    cases = [record("backprop", n, step_peak_memory_bytes=4.4e6 + 1e3 * n, step_time_s=1e-3 * n) for n in DEPTHS]
    return checks_of(task, cases, "backprop_memory_grows")


def memory_flat_in_depth(task: Task) -> list[Check]:
    """An adjoint that stores its activations: adjoint_euler's step memory grows with depth like backprop's
    (2.8 MB at depth 8, 45 MB at 128; readings spread by 1%), and one whose memory merely doubles (2.8 MB at
    depth 8, 5.6 MB at 128, readings spread by 5%: the growth's interval, 0.8 to 1.2, lies all above 15%)."""
    cases = [adjoint("adjoint_euler", n, 0.35e6 * n, 1.0 / n) for n in DEPTHS]
    doubled = [
        record("adjoint_heun", n, spread={MEMORY: 0.05 * m}, step_peak_memory_bytes=m, step_time_s=1e-3 * n,
               grad_rel_error=n**-2.0, reconstruction_error=n**-2.0)
        for n, m in ((n, 2.8e6 * (1 + (n - 8) / 120)) for n in DEPTHS)
    ]  # fmt: skip
    return checks_of(task, cases + doubled, "memory_flat_in_depth")


def grad_error_falls_with_depth(task: Task) -> list[Check]:
    """An adjoint whose reconstruction drifts further with every block: its gradient error grows with depth
    (0.05 at depth 8, 0.4 at 128) instead of falling."""
    return checks_of(task, errors("adjoint_euler", lambda n: 0.05 * (n / 8) ** 0.75), "grad_error_falls_with_depth")


def grad_error_order(task: Task) -> list[Check]:
    """Euler's adjoint at half order with a smooth activation (softplus; error ~ N^-0.5, not N^-1), and Heun's at
    first order with it (~ N^-1, not N^-2): exact power laws, so the fits' intervals are their slopes."""
    cases = errors("adjoint_euler", lambda n: n**-0.5, "softplus") + errors(
        "adjoint_heun", lambda n: 1.0 / n, "softplus"
    )
    return checks_of(task, cases, "grad_error_order")


def heun_error_below_euler(task: Task) -> list[Check]:
    """A Heun adjoint no better than Euler's (its corrector step dropped, plus rounding): its gradient error 1.2x
    Euler's at every depth."""
    cases = errors("adjoint_euler", lambda n: 1.0 / n) + errors("adjoint_heun", lambda n: 1.2 / n)
    return checks_of(task, cases, "heun_error_below_euler")


def step_flops_vs_backprop(task: Task) -> list[Check]:
    """An Euler adjoint that reconstructs each block's input twice (2.0x backprop's FLOPs, against at most 5/3), a
    Heun adjoint that also recomputes its forward pass with gradients (4.0x, against 10/3), and a checkpointing that
    recomputes the forward pass twice (5/3, against 4/3), at the deepest depth."""
    flops = "step_flops_vs_backprop"
    cases = [adjoint("adjoint_euler", n, 2.8e6, 1.0 / n, **{flops: 2.0}) for n in DEPTHS]
    cases += [adjoint("adjoint_heun", n, 2.8e6, 1.0 / n**2, **{flops: 4.0}) for n in DEPTHS]
    cases += [
        record("checkpoint", n, step_peak_memory_bytes=4e6, step_time_s=2e-3 * n, **{flops: 5 / 3}) for n in DEPTHS
    ]
    return checks_of(task, cases, flops)
