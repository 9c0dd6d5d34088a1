"""The protocol of one gan_ntk case: prepare the discriminator and data, hand the engine the step, evaluate.

- ``dynamics``: set up the discriminator and the n initial particles x ~ N(0, I); check the method's kernel on
  the first training set z = (x, y) positive semi-definite (else the case fails, naming the smallest eigenvalue)
  and time it as the phase ``kernel`` ((2n)^2 entries per call). The engine's step is one generator iteration
  x -> x + eta v(x) at the initial particles, run on a copy of the method so that the random draws of the
  trajectory (a finite net is re-drawn at every fit) do not depend on how often the engine calls the step. The
  evaluation runs the trajectory (``dynamics.run``); particles that blow up raise ``ctbench.Invalid``.
- ``ntk_accuracy``: the step is one empirical-NTK evaluation K(p, p) of network 0 on the ``ntk_points`` points
  (n^2 entries); the evaluation takes the relative Frobenius error ||Theta_hat - Theta||_F / ||Theta||_F against
  the analytic NTK over ``ntk_nets`` random networks, in float64.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Mapping
from typing import Any

import torch

from ctbench import CaseResult, Context, Invalid, Prepared, Scale, expect_tensor
from suites.gan_ntk import checks, data, dynamics
from suites.gan_ntk.interface import DiscriminatorDynamics, DiscriminatorSpec
from suites.gan_ntk.kernels import Architecture, check_psd, psd_rtol, relu_ntk

EXPERIMENTS = ("dynamics", "ntk_accuracy")
FINITE_IMPL = "finite_width"  # the reference method whose discriminator is a finite network
KERNEL_DATASET = "eight_gaussians"


def prepare(impl: DiscriminatorDynamics, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
    experiment = params["experiment"]
    if experiment == "dynamics":
        return prepare_dynamics(impl, scale, params, ctx)
    if experiment == "ntk_accuracy":
        return prepare_ntk_accuracy(impl, scale, params, ctx)
    raise ValueError(f"unknown experiment {experiment!r}; valid: {', '.join(EXPERIMENTS)}")


def config(scale: Scale, params: Mapping[str, Any]) -> dict[str, Any]:
    """The scale's settings with the dataset's own overrides (``per_dataset``) applied."""
    return {**scale.config, **scale.config.get("per_dataset", {}).get(params["dataset"], {})}


def kernel(impl: DiscriminatorDynamics, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The method's kernel on (x, y), checked: shape (n, m) in the points' dtype (else the case fails)."""
    what = f"{type(impl).__name__}.kernel"
    return expect_tensor(impl.kernel(x, y), (len(x), len(y)), x.dtype, what)


def architecture(cfg: Mapping[str, Any], width: int) -> Architecture:
    return Architecture(cfg["depth"], int(width), cfg["sigma_w"], cfg["sigma_b"], cfg["sigma_b_out"])


def spec(cfg: Mapping[str, Any], arch: Architecture, in_dim: int, seed: int) -> DiscriminatorSpec:
    return DiscriminatorSpec(arch, cfg["tau"], cfg["discr_lr"], in_dim, seed)


def prepare_dynamics(impl: DiscriminatorDynamics, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
    cfg = config(scale, params)
    problem = data.load(params["dataset"], cfg["n"], ctx.seed, ctx.data_root, getattr(torch, cfg["dtype"]), ctx.device)
    impl.setup(spec(cfg, architecture(cfg, cfg["width"]), problem.dim, ctx.seed))
    stepper = copy.deepcopy(impl)  # the measured step's own copy: its fits draw no random numbers of the run's
    z = torch.cat([problem.particles, problem.target])
    gram = kernel(impl, z, z)  # checked in float64 within the rounding of the dtype it was computed in
    lo, top = check_psd(
        gram.double(), f"{type(impl).__name__}.kernel on the first training set ({len(z)} points)", psd_rtol(gram.dtype)
    )
    repeat = scale.policy.repeat  # warmed up by the check
    ctx.meter.phase("kernel", lambda: kernel(impl, z, z), repeat=repeat, work={"entries": len(z) ** 2})
    move = dynamics.step_fn(stepper, problem.target, cfg["eta"])
    x0 = problem.particles

    def evaluate(_: Any) -> CaseResult:
        traj = dynamics.run(impl, problem, cfg, dynamics.Evaluator(problem, cfg))
        if traj.diverged_at is not None:
            reason = (
                f"particles diverged at iteration {traj.diverged_at} of {cfg['iterations']} "
                f"(eta = {cfg['eta']:g}): {traj.diverged_reason}"
            )
            raise Invalid(reason, problem.dataset, {"diverged_at_iteration": float(traj.diverged_at)}, traj.series)
        metrics = {**dynamics.final_metrics(traj), "kernel_min_eig_rel": lo / top}
        series = dict(traj.series)
        final = traj.particles
        if problem.dim == 2:
            impl.fit(final, problem.target)
            series["field_points"], series["field_vectors"] = dynamics.grid_field(
                impl, [problem.target, final], cfg["field_grid"]
            )
            series["target"], series["final_particles"] = _points(problem.target), _points(final)
        case_checks = checks.dynamics_checks(impl.loss, problem, metrics)
        return CaseResult(metrics, problem.dataset, checks=case_checks, series=series)

    return Prepared(lambda: move(x0), evaluate, work={"iterations": 1})


def _points(x: torch.Tensor) -> list[list[float]]:
    """2-D points for the record's series, rounded to 1e-4 (plotting precision)."""
    return x.double().round(decimals=4).tolist()


def prepare_ntk_accuracy(
    impl: DiscriminatorDynamics, scale: Scale, params: Mapping[str, Any], ctx: Context
) -> Prepared:
    cfg = config(scale, params)
    problem = data.load(params["dataset"], cfg["ntk_points"], ctx.seed, ctx.data_root, torch.float64, ctx.device)
    arch, pts = architecture(cfg, params["width"]), problem.target

    def net_spec(net: int) -> DiscriminatorSpec:
        return spec(cfg, arch, problem.dim, ctx.seed * 100003 + net)

    impl.setup(net_spec(0))

    def evaluate(_: Any) -> CaseResult:
        exact = relu_ntk(pts, pts, arch)
        errors = []
        for net in range(cfg["ntk_nets"]):
            impl.setup(net_spec(net))
            k = kernel(impl, pts, pts)
            check_psd(k, f"empirical NTK of network {net} at width {arch.width}")
            errors.append(float((k - exact).norm() / exact.norm()))
        return CaseResult(
            {"ntk_rel_error": statistics.fmean(errors)},
            problem.dataset,
            series={"ntk_rel_error_by_net": [[i, e] for i, e in enumerate(errors)]},
            spread={"ntk_rel_error": statistics.stdev(errors) if len(errors) > 1 else 0.0},
        )

    return Prepared(lambda: kernel(impl, pts, pts), evaluate, work={"entries": len(pts) ** 2})
