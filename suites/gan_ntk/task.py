"""``gan_ntk``: GAN training seen through the discriminator's neural tangent kernel (Franceschi et al. 2022).

Two families of cases, told apart by the ``experiment`` axis of the grid (the other combinations are skipped):

- ``dynamics`` (``width`` None): n particles x ~ N(0, I) move by x <- x + eta v(x), v the velocity given by a
  discriminator trained on (particles, target) for time tau at every step (``dynamics``). Before the run the
  method's kernel on the first training set is checked positive semi-definite (else the case fails, naming the
  smallest eigenvalue). Per case: Sinkhorn divergence, MMD and energy distance as curves over iterations and
  their final values, mode coverage on eight Gaussians, iterations per second and step memory at the final
  state, kernel entries per second on the (2n)^2 training pairs. Particles that blow up make the case
  ``invalid`` with the iteration. For 2-D data the final particles, the target and the velocity field on a
  grid go into the series.
- ``ntk_accuracy`` (``width`` w; the finite network only, on eight-Gaussian points): the relative Frobenius
  error ||Theta_hat_w - Theta|| / ||Theta|| of the empirical NTK of ``ntk_nets`` random networks of width w
  against the analytic NTK, in float64. The run check fits log error against log width: slope near -1/2.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ctbench import CaseResult, Check, Context, Metric, Paper, RunCheck, Scale, Task
from ctbench.measure import Timing, peak_memory, time_call
from suites.gan_ntk import data, dynamics
from suites.gan_ntk.interface import DiscriminatorDynamics, DiscriminatorSpec
from suites.gan_ntk.kernels import Architecture, check_psd, relu_ntk

EXPERIMENTS = ("dynamics", "ntk_accuracy")
FINITE_IMPL = "finite_width"  # the reference method whose discriminator is a finite network
KERNEL_DATASET = "eight_gaussians"
MIN_SINKHORN_REDUCTION = 10.0

# the paper's setting (GAN(TK)^2 configs ``inf_ipm`` / ``ipm_reset`` and ``relu``): 3 hidden ReLU layers,
# weight std 1, bias std 1 (none on the readout), tau = 1; eta = 1000 on the mean loss over 500 particles is
# eta = 2 per particle; Sinkhorn with blur 0.001 and scaling 0.95. MNIST: tau = 1000, eta = 100 over 1024.
_COMMON = {
    "depth": 3,
    "width": 128,
    "sigma_w": 1.0,
    "sigma_b": 1.0,
    "sigma_b_out": 0.0,
    "tau": 1.0,
    "discr_lr": 0.1,
    "eta": 2.0,
    "dtype": "float32",
    "sinkhorn_blur": 1e-3,
    "sinkhorn_scaling": 0.95,
    "diverge_factor": 100.0,
    "mode_radius_std": 3.0,
    "mode_min_fraction": 0.2,
    "field_grid": 15,
    "ntk_points": 8,
    "timing_repeat": 5,
}
_IMAGES = {"fashion_mnist": {"n": 1024, "tau": 1000.0, "eta": 100 / 1024}}


class GanNTK(Task):
    name = "gan_ntk"
    paper = Paper(
        title="A Neural Tangent Kernel Perspective of GANs",
        authors="Jean-Yves Franceschi, Emmanuel de Bezenac, Ibrahim Ayed, Mickael Chen, Sylvain Lamprier, "
        "Patrick Gallinari",
        venue="ICML 2022",
        url="https://arxiv.org/abs/2106.05566",
    )
    summary = (
        "Particles moved by a discriminator trained in the NTK regime (IPM, LSGAN, vanilla losses in closed "
        "form or by ODE, and a finite ReLU net), and the empirical NTK's convergence to the analytic one."
    )
    interface = DiscriminatorDynamics
    primary_metric = "sinkhorn_final"
    metrics = {
        "sinkhorn_final": Metric("", False, "debiased Sinkhorn divergence (blur 1e-3) particles vs target, last"),
        "sinkhorn_initial": Metric("", None, "Sinkhorn divergence of the initial particles"),
        "sinkhorn_reduction": Metric("x", True, "sinkhorn_initial / sinkhorn_final"),
        "mmd_final": Metric("", False, "MMD (Gaussian kernels, median-distance bandwidths) at the end"),
        "energy_final": Metric("", False, "energy distance at the end"),
        "modes_covered": Metric("modes", True, "eight Gaussians: modes holding >= 20% of their share within 3 std"),
        "high_quality_fraction": Metric("fraction", True, "eight Gaussians: particles within 3 std of a mode"),
        "iteration_time_s": Metric("s", False, "median wall time of one generator iteration (fit + move)"),
        "iterations_per_s": Metric("it/s", True, "generator iterations per second"),
        "kernel_entries_per_s": Metric("entries/s", True, "kernel matrix entries per second (one batched call)"),
        "step_peak_memory_bytes": Metric("bytes", False, "working memory of one iteration (ntk: one kernel call)"),
        "kernel_min_eig_rel": Metric("", None, "smallest / largest eigenvalue of the kernel on the training set"),
        "ntk_rel_error": Metric("", False, "||empirical NTK - analytic NTK||_F / ||analytic NTK||_F, mean over nets"),
        "diverged_at_iteration": Metric("iteration", None, "first iteration whose particles blew up"),
    }
    scales = {
        "smoke": Scale(
            "smoke",
            grid={
                "experiment": list(EXPERIMENTS),
                "dataset": list(data.TWO_D),
                "width": [None, 64, 256, 1024],
            },
            config={
                **_COMMON,
                "n": 128,
                "iterations": 40,
                "eval_every": 10,
                "ntk_nets": 6,
                "timing_repeat": 3,
                "per_dataset": _IMAGES,
            },
            timeout_s=180,
        ),
        "small": Scale(
            "small",
            grid={
                "experiment": list(EXPERIMENTS),
                "dataset": list(data.DATASETS),
                "width": [None, 64, 256, 1024, 4096],
            },
            config={
                **_COMMON,
                "n": 500,
                "iterations": 1000,
                "eval_every": 100,
                "ntk_nets": 8,
                "per_dataset": {"fashion_mnist": {**_IMAGES["fashion_mnist"], "iterations": 200}},
            },
            timeout_s=3600,
        ),
        "full": Scale(
            "full",
            grid={
                "experiment": list(EXPERIMENTS),
                "dataset": list(data.DATASETS),
                "width": [None, 64, 128, 256, 512, 1024, 2048, 4096, 8192],
            },
            # GAN(TK)^2's default of 50000 iterations, logged every 1000
            config={
                **_COMMON,
                "n": 500,
                "iterations": 50000,
                "eval_every": 1000,
                "ntk_nets": 16,
                "per_dataset": _IMAGES,
            },
            timeout_s=12 * 3600,
        ),
    }

    def skip(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        experiment, width, dataset = params.get("experiment"), params.get("width"), params.get("dataset")
        if experiment == "dynamics":
            if width is not None:
                return "dynamics cases have width None (the finite discriminator's width is config['width'])"
            if impl == FINITE_IMPL and dataset in data.IMAGES:
                return "finite_width on images: tau / lr = 10^4 gradient steps per generator iteration"
        if experiment == "ntk_accuracy":
            if width is None:
                return "ntk_accuracy cases need a width"
            if impl != FINITE_IMPL:
                return "ntk_accuracy measures a finite network's empirical NTK (finite_width only)"
            if dataset != KERNEL_DATASET:
                return f"ntk_accuracy is measured on {KERNEL_DATASET} points only"
        return None

    def run(self, impl: DiscriminatorDynamics, scale: Scale, params: Mapping[str, Any], ctx: Context) -> CaseResult:
        experiment = params["experiment"]
        if experiment == "dynamics":
            return _run_dynamics(impl, scale, params, ctx)
        if experiment == "ntk_accuracy":
            return _run_ntk_accuracy(impl, scale, params, ctx)
        raise ValueError(f"unknown experiment {experiment!r}; valid: {', '.join(EXPERIMENTS)}")

    def hot_step(self, impl: DiscriminatorDynamics, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Callable:
        if params["experiment"] == "ntk_accuracy":
            cfg, problem, arch = _kernel_setup(scale, params, ctx)
            pts = problem.target
            impl.setup(_spec(cfg, arch, problem.dim, ctx.seed))
            return lambda: impl.kernel(pts, pts)
        cfg, problem = _dynamics_setup(impl, scale, params, ctx)
        step = dynamics.step_fn(impl, problem.target, cfg["eta"])
        return lambda: step(problem.particles)

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        from suites.gan_ntk.checks import ntk_slope_checks

        return ntk_slope_checks(self.name, cases)

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from suites.gan_ntk.plots import task_plots

        return task_plots(cases, records)


def _config(scale: Scale, params: Mapping[str, Any]) -> dict[str, Any]:
    dataset = params["dataset"]
    return {**scale.config, **scale.config.get("per_dataset", {}).get(dataset, {})}


def _arch(cfg: Mapping[str, Any], width: int) -> Architecture:
    return Architecture(cfg["depth"], int(width), cfg["sigma_w"], cfg["sigma_b"], cfg["sigma_b_out"])


def _spec(cfg: Mapping[str, Any], arch: Architecture, in_dim: int, seed: int) -> DiscriminatorSpec:
    return DiscriminatorSpec(arch, cfg["tau"], cfg["discr_lr"], in_dim, seed)


def _rate(count: int, timing: Timing) -> tuple[float, float]:
    """(count / median time, inter-quartile range of count / time) of repeated timings."""
    rates = sorted(count / t for t in timing.times)
    iqr = 0.0
    if len(rates) > 1:
        q = statistics.quantiles(rates, n=4, method="inclusive")
        iqr = q[2] - q[0]
    return count / timing.median, iqr


def _dynamics_setup(
    impl: DiscriminatorDynamics, scale: Scale, params: Mapping[str, Any], ctx: Context
) -> tuple[dict[str, Any], data.Problem]:
    cfg = _config(scale, params)
    dtype = getattr(torch, cfg["dtype"])
    problem = data.load(params["dataset"], cfg["n"], ctx.seed, ctx.data_root, dtype, ctx.device)
    impl.setup(_spec(cfg, _arch(cfg, cfg["width"]), problem.dim, ctx.seed))
    return cfg, problem


def _run_dynamics(impl: DiscriminatorDynamics, scale: Scale, params: Mapping[str, Any], ctx: Context) -> CaseResult:
    cfg, problem = _dynamics_setup(impl, scale, params, ctx)
    repeat = cfg["timing_repeat"]
    z = torch.cat([problem.particles, problem.target])
    lo, top = check_psd(
        impl.kernel(z, z).double(),
        f"{type(impl).__name__}.kernel on the first training set ({len(z)} points)",
    )
    kernel_timing = time_call(lambda: impl.kernel(z, z), ctx.device, repeat, warmup=0)  # warmed by the check
    kernel_rate, kernel_spread = _rate(len(z) ** 2, kernel_timing)

    evaluate = dynamics.Evaluator(problem, cfg)
    traj = dynamics.run(impl, problem, cfg, evaluate)
    if traj.diverged_at is not None:
        reason = (
            f"particles diverged at iteration {traj.diverged_at} of {cfg['iterations']} "
            f"(eta = {cfg['eta']:g}): {traj.diverged_reason}"
        )
        return CaseResult(
            {"diverged_at_iteration": float(traj.diverged_at)},
            problem.dataset,
            series=traj.series,
            invalid_reason=reason,
        )

    metrics = dynamics.final_metrics(traj)
    step = dynamics.step_fn(impl, problem.target, cfg["eta"])
    final = traj.particles

    def hot() -> torch.Tensor:
        return step(final)

    hot()  # warm-up before the memory measurement
    metrics["step_peak_memory_bytes"] = float(peak_memory(hot, ctx.device).step_bytes)
    timing = time_call(hot, ctx.device, repeat=repeat, warmup=0)
    rate, rate_spread = _rate(1, timing)
    metrics.update(
        iteration_time_s=timing.median,
        iterations_per_s=rate,
        kernel_entries_per_s=kernel_rate,
        kernel_min_eig_rel=lo / top,
    )

    checks = {}
    if impl.loss == "ipm" and problem.centers is not None:
        if "sinkhorn_reduction" in metrics:
            checks["sinkhorn_cut_10x"] = Check.at_least(
                metrics["sinkhorn_reduction"],
                MIN_SINKHORN_REDUCTION,
                "Sinkhorn initial / final (IPM, eight Gaussians)",
            )
        checks["all_modes_covered"] = Check.at_least(
            metrics["modes_covered"],
            len(problem.centers),
            "modes covered by the particles (IPM, eight Gaussians)",
        )
    series = dict(traj.series)
    if problem.dim == 2:
        fit_on = [problem.target, final]
        impl.fit(final, problem.target)
        series["field_points"], series["field_vectors"] = dynamics.grid_field(impl, fit_on, cfg["field_grid"])
        series["target"] = _points(problem.target)
        series["final_particles"] = _points(final)
    spread = {
        "iteration_time_s": timing.iqr,
        "iterations_per_s": rate_spread,
        "kernel_entries_per_s": kernel_spread,
    }
    return CaseResult(metrics, problem.dataset, checks=checks, series=series, spread=spread)


def _points(x: torch.Tensor) -> list[list[float]]:
    """2-D points for the record's series, rounded to 1e-4 (plotting precision)."""
    return x.double().round(decimals=4).tolist()


def _kernel_setup(
    scale: Scale, params: Mapping[str, Any], ctx: Context
) -> tuple[dict[str, Any], data.Problem, Architecture]:
    """The ``ntk_points`` target points (float64) the kernels are compared on, and the width's
    architecture."""
    cfg = _config(scale, params)
    problem = data.load(params["dataset"], cfg["ntk_points"], ctx.seed, ctx.data_root, torch.float64, ctx.device)
    return cfg, problem, _arch(cfg, params["width"])


def _run_ntk_accuracy(impl: DiscriminatorDynamics, scale: Scale, params: Mapping[str, Any], ctx: Context) -> CaseResult:
    cfg, problem, arch = _kernel_setup(scale, params, ctx)
    pts = problem.target
    exact = relu_ntk(pts, pts, arch)
    errors = []
    for net in range(cfg["ntk_nets"]):
        impl.setup(_spec(cfg, arch, problem.dim, ctx.seed * 100003 + net))
        k = impl.kernel(pts, pts)
        check_psd(k, f"empirical NTK of network {net} at width {arch.width}")
        errors.append(float((k - exact).norm() / exact.norm()))

    def kernel() -> torch.Tensor:
        return impl.kernel(pts, pts)

    timing = time_call(kernel, ctx.device, repeat=cfg["timing_repeat"])
    rate, rate_spread = _rate(len(pts) ** 2, timing)
    metrics = {
        "ntk_rel_error": statistics.fmean(errors),
        "kernel_entries_per_s": rate,
        "step_peak_memory_bytes": float(peak_memory(kernel, ctx.device).step_bytes),
    }
    spread = {
        "ntk_rel_error": statistics.stdev(errors) if len(errors) > 1 else 0.0,
        "kernel_entries_per_s": rate_spread,
    }
    return CaseResult(
        metrics,
        problem.dataset,
        series={"ntk_rel_error_by_net": [[i, e] for i, e in enumerate(errors)]},
        spread=spread,
    )
