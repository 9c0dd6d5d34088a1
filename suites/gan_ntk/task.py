"""``gan_ntk``: GAN training seen through the discriminator's neural tangent kernel (Franceschi et al. 2022).

Two families of cases, told apart by the ``experiment`` axis of the grid (the other combinations are skipped):

- ``dynamics`` (``width`` None): n particles x ~ N(0, I) move by x <- x + eta v(x), v the velocity given by a
  discriminator trained on (particles, target) for time tau at every step (``dynamics``). Before the run the
  method's kernel on the first training set is checked positive semi-definite (else the case fails, naming the
  smallest eigenvalue) and timed (phase ``kernel``, (2n)^2 entries). The engine's step is one generator
  iteration at the initial particles. Per case: Sinkhorn divergence, MMD and energy distance as curves over
  iterations and their final values, mode coverage on eight Gaussians. Particles that blow up make the case
  ``invalid`` with the iteration. For 2-D data the final particles, the target and the velocity field on a
  grid go into the series.
- ``ntk_accuracy`` (``width`` w; the finite network only, on eight-Gaussian points): the engine's step is one
  empirical-NTK evaluation; the relative Frobenius error ||Theta_hat_w - Theta|| / ||Theta|| of the empirical
  NTK of ``ntk_nets`` random networks of width w against the analytic NTK, in float64. The run check fits log
  error against log width: slope near -1/2.

The protocol is in ``protocol.py``, the checks in ``checks.py``, the particle figures in ``plots.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Context, LinePlot, Metric, Paper, Phase, Policy, Prepared, RunCheck, Scale, Step, Task
from ctbench.api.claims import Claim
from suites.gan_ntk import checks, controls, data, protocol
from suites.gan_ntk.interface import DiscriminatorDynamics
from suites.gan_ntk.protocol import EXPERIMENTS, FINITE_IMPL, KERNEL_DATASET

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
}
_IMAGES = {"fashion_mnist": {"n": 1024, "tau": 1000.0, "eta": 100 / 1024}}


def _dynamics_bar(name: str, metric: str, label: str) -> LinePlot:
    """A speed of the dynamics cases, a bar per method and dataset."""
    where = {"experiment": "dynamics"}
    return LinePlot(name, "param.dataset", metric, "dataset", label, ylog=True, where=where, kind="bar")


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
        "kernel_min_eig_rel": Metric("", None, "smallest / largest eigenvalue of the kernel on the training set"),
        "ntk_rel_error": Metric("", False, "||empirical NTK - analytic NTK||_F / ||analytic NTK||_F, mean over nets"),
        "diverged_at_iteration": Metric("iteration", None, "first iteration whose particles blew up"),
    }
    step = Step(
        "one generator iteration (dynamics: fit the discriminator, move the particles) or one empirical-NTK "
        "evaluation (ntk_accuracy)",
        work={"iterations": "generator iterations", "entries": "empirical-NTK matrix entries"},
    )
    phases = {
        "kernel": Phase(
            "one call of the method's kernel on the (2n)^2 pairs of the first training set",
            {"entries": "kernel matrix entries"},
        )
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
                "per_dataset": _IMAGES,
            },
            timeout_s=180,
            policy=Policy(repeat=3),
            seeds=(0, 1, 2),  # its quality is ranked and cheap: three seeds give every row a spread
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
            policy=Policy(repeat=5),
        ),
        # scripts/gpu_check.sh: a subset of small's grid (the paper's eight Gaussians: every loss's dynamics, and
        # the empirical NTK at three widths for the slope check) with small's config over fewer iterations;
        # about 7 cases of a few seconds each
        "gpu-smoke": Scale(
            "gpu-smoke",
            grid={
                "experiment": list(EXPERIMENTS),
                "dataset": [KERNEL_DATASET],
                "width": [None, 256, 1024, 4096],
            },
            config={**_COMMON, "n": 500, "iterations": 200, "eval_every": 50, "ntk_nets": 8, "per_dataset": {}},
            timeout_s=30,
            policy=Policy(repeat=5, energy_block_s=0.5, energy_blocks=2),
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
            policy=Policy(repeat=5),
        ),
    }

    claims = (
        Claim(
            "sinkhorn_cut_10x",
            "With the IPM loss, a discriminator trained in the NTK regime gives the generated particles a gradient "
            "flow of the MMD with the NTK, which transports them onto the target distribution (the eight "
            "Gaussians): the Sinkhorn divergence to the target falls by at least 10x from the initial particles.",
            "Franceschi et al. 2022, section 5 (IPM loss as an MMD flow) and section 6 (GAN(TK)^2 on eight "
            "Gaussians, Sinkhorn divergence); the 10x threshold is this protocol's",
            controls.sinkhorn_cut_10x,
            "case",
        ),
        Claim(
            "all_modes_covered",
            "The IPM loss's NTK dynamics fits every mode of the eight Gaussians: no mode collapse.",
            "Franceschi et al. 2022, section 6 (GAN(TK)^2 on eight Gaussians, generated samples); the coverage "
            "criterion (20% of a mode's share within 3 std) is this protocol's",
            controls.all_modes_covered,
            "case",
        ),
        Claim(
            "ntk_error_slope",
            "The empirical NTK of a random finite-width ReLU network converges to the analytic NTK as the width "
            "grows, its fluctuations falling as width^(-1/2) (log-log slope -1/2 +- 0.3).",
            "Protocol sanity check of the finite_width discriminator, not a claim of Franceschi et al. (whose "
            "analysis, section 4, takes the infinite-width limit): Jacot et al. 2018, Theorem 1; Arora et al. "
            "2019 (finite-width error bounds)",
            controls.ntk_error_slope,
        ),
    )

    line_plots = (
        LinePlot(
            "ntk_error_vs_width",
            "param.width",
            "ntk_rel_error",
            "width",
            "relative NTK error (Frobenius)",
            xlog=True,
            ylog=True,
            where={"experiment": "ntk_accuracy"},
        ),
        _dynamics_bar("speed_iterations", "throughput_iterations_s", "generator iterations / s"),
        _dynamics_bar("speed_kernel", "kernel_throughput_entries_s", "kernel entries / s"),
    )
    bench_params = (
        {"experiment": "dynamics", "dataset": KERNEL_DATASET, "width": None},
        {"experiment": "ntk_accuracy", "dataset": KERNEL_DATASET, "width": 64},
        {"experiment": "ntk_accuracy", "dataset": KERNEL_DATASET, "width": 1024},
    )

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

    def prepare(self, impl: DiscriminatorDynamics, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
        return protocol.prepare(impl, scale, params, ctx)

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        return checks.ntk_slope_checks(self.name, cases)

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from suites.gan_ntk.plots import task_plots

        return task_plots(cases, records)
