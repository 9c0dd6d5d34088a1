"""``implicit_jfb``: implicit networks trained with Jacobian-free backpropagation vs implicit differentiation.

Fung et al. 2022: an implicit network N(d) = S(u*), u* = T(u*, Q(d)) with T a gamma-contraction, trained by
backpropagating through the fixed point. JFB drops the Jacobian term of the implicit gradient (the backward of
one application of T at u*); IFT solves the adjoint equation w = g + J^T w. Per case (one backward method, one
forward solver and tolerance): the engine's measurement of one training step, then the scale's epochs (each
timed), test accuracy and fixed-point residual, the cosine with the exact implicit gradient, the Jacobian
products of one backward and that backward's time, alone and against a Jacobian-free backward timed alternately
in the same process. A forward that misses its tolerance makes the case invalid. The protocol is in
``protocol.py`` (training pieces in ``training.py``), the checks in ``checks.py``, the scales' settings in
``configs.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import (
    Claim,
    Context,
    LinePlot,
    Metric,
    Paper,
    PaperNumber,
    Phase,
    Policy,
    Prepared,
    Ratio,
    RunCheck,
    Scale,
    Step,
    Task,
)
from suites.implicit_jfb import checks, controls, protocol
from suites.implicit_jfb.configs import FULL_MODELS, GPU_SMOKE, SMALL, SMOKE
from suites.implicit_jfb.interface import ImplicitBackward

SWEEP_EXCLUDED = ("explicit", "ift_cg", "torchdeq_ift", "torchdeq_onestep")  # not run at the tolerance sweep


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
    step = Step(
        "one training step (power iteration, the method's forward solve and backward, Adam update)",
        {"samples": "training images"},
    )
    phases = {
        "epoch": Phase("one training epoch over the training split", {"samples": "training images"}),
        "backward": Phase("one backward pass of the method on a fixed batch's retained graph"),
    }
    metrics = {
        "test_accuracy": Metric("fraction", True, "test accuracy after training"),
        "forward_iterations": Metric("", None, "evaluations of T per training forward (mean)"),
        "step_forward_iterations": Metric("", None, "evaluations of T per forward in the engine's measured steps"),
        "latent_bytes": Metric("bytes", None, "bytes of one latent u (batch x channels x height x width)"),
        "residual": Metric("", False, "worst relative fixed-point residual ||T(z)-z||/||T(z)|| on the test split"),
        "converged": Metric("", True, "1 if every forward reached the tolerance within the cap, else 0"),
        "backward_jacobian_products": Metric("", False, "Jacobian products of T (J^T v or J v) in one backward"),
        "backward_time_vs_one_step": Metric(
            "",
            False,
            "backward time over that of one backprop through S(T(u*, Q(d))) (JFB's gradient, built by the task) on "
            "the same batch, the two timed alternately in the same process (median of the pairs' ratios)",
            hardware=True,
        ),
        "grad_cosine": Metric("", True, "cosine of the gradient of Q's and T's parameters with the exact implicit one"),
        "parameters": Metric("", None, "number of trainable parameters"),
    }
    # policy.repeat: the step's timings, and the backward's on the retained graph (phase "backward");
    # policy.memory_repeat: five readings at smoke scale, the memory checks weigh their range
    scales = {
        "smoke": Scale(
            "smoke",
            grid={"solver": ["fixed_point", "anderson"], "tol": [1e-2, 1e-5]},
            config=SMOKE,
            seeds=(0, 1, 2),  # its quality is ranked and cheap: three seeds give every row a spread
            timeout_s=120,
            policy=Policy(repeat=5, memory_repeat=5),
        ),
        # scripts/gpu_check.sh on one GPU: the tolerance sweep (memory and backward speed-up against forward
        # iterations) with plain iteration; smoke's model, one short epoch (configs.GPU_SMOKE), a few seconds a case
        "gpu-smoke": Scale(
            "gpu-smoke",
            grid={"solver": ["fixed_point"], "tol": [1e-2, 1e-5]},
            config=GPU_SMOKE,
            timeout_s=30,
            policy=Policy(repeat=5, memory_repeat=5, energy_block_s=0.2, energy_blocks=1),
        ),
        "small": Scale(
            "small",
            grid={"solver": ["fixed_point", "anderson"], "tol": [1e-2, 1e-5]},
            config=SMALL,
            timeout_s=3600,
            policy=Policy(repeat=10, memory_repeat=3),
        ),
        "full": Scale(
            "full",
            grid={"dataset": ["mnist", "svhn", "cifar10"], "solver": ["fixed_point", "anderson"]},
            config={"models": FULL_MODELS},
            timeout_s=7 * 24 * 3600,
            policy=Policy(repeat=20, memory_repeat=3),
        ),
    }
    paper_numbers = (
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
    )
    claims = (
        Claim(
            "descent_direction",
            "For a contractive T, the JFB gradient (the implicit gradient with the Jacobian-based inverse replaced "
            "by the identity) is a descent direction.",
            "Fung et al. 2022: section 3 (Backpropagation), its descent-direction theorem",
            controls.descent_direction,
            "case",
        ),
        Claim(
            "matches_implicit_gradient",
            "Implicit differentiation (the Jacobian-based equation of the implicit function theorem) gives the exact "
            "gradient of the loss through the fixed point.",
            "Fung et al. 2022: section 3, the implicit gradient through (I - J)^-1; checked to cosine 0.999",
            controls.matches_implicit_gradient,
            "case",
        ),
        Claim(
            "no_jacobian_products",
            "JFB circumvents the Jacobian-based equation: its backward is one backward step through T at the fixed "
            "point, with no Jacobian product of T.",
            "Fung et al. 2022: section 3 and Figure 4 (backpropagation schemes)",
            controls.no_jacobian_products,
            "case",
        ),
        Claim(
            "unrolled_memory_grows",
            "Traditional backpropagation through the forward iterations requires memory proportional to their number.",
            "Fung et al. 2022: Figure 4 caption (backpropagation schemes for implicit depth models)",
            controls.unrolled_memory_grows,
        ),
        Claim(
            "memory_flat_in_iterations",
            "Implicit networks are trained with memory that does not grow with depth (the forward iterations): "
            "neither JFB nor the Jacobian-based backward stores the forward's intermediate quantities.",
            "Fung et al. 2022: section 'Why implicit networks?' (constant-memory training) and Figure 4",
            controls.memory_flat_in_iterations,
        ),
        Claim(
            "jfb_backward_speedup_vs_ift",
            "JFB makes implicit networks faster to train by avoiding the costly Jacobian-based solve in "
            "backpropagation: its backward faster than IFT's at the solved tolerance, decided by the ratio's "
            "interval; the size of the speed-up, which moves with IFT's Jacobian products and the machine, is "
            "reported.",
            "Fung et al. 2022: abstract and section 5 (Experiments: Jacobian-based against JFB backprop)",
            controls.jfb_backward_speedup_vs_ift,
        ),
        Claim(
            "jfb_speedup_grows_with_iterations",
            "The Jacobian-based equation is costly to solve, and its cost grows with the accuracy of the fixed point "
            "while JFB's one backward step does not: the speed-up grows with the forward iterations.",
            "Fung et al. 2022: section 3 (the Jacobian-based equation solved iteratively); a consequence this "
            "benchmark measures across tolerances",
            controls.jfb_speedup_grows_with_iterations,
        ),
        Claim(
            "jfb_epoch_faster_than_torchdeq_ift",
            "Training with JFB takes less time per epoch than training with Jacobian-based backpropagation.",
            "Fung et al. 2022: Table 2 (training time per epoch, JFB against Jacobian-based); here against "
            "torchdeq's IFT",
            controls.jfb_epoch_faster_than_torchdeq_ift,
        ),
        Claim(
            "jfb_accuracy_near_ift",
            "JFB makes implicit networks faster to train without sacrificing test accuracy (within 0.01 of IFT's "
            "here).",
            "Fung et al. 2022: abstract, Table 2 (test accuracy, JFB against Jacobian-based)",
            controls.jfb_accuracy_near_ift,
        ),
    )
    # the whole training step and epoch first (what JFB saves in training), the backward alone beside them (what it
    # changes), then the step's memory
    headline_ratios = (
        Ratio("IFT vs JFB, training step time", "ift", ("jfb",), "step_time_s"),
        Ratio("IFT vs JFB, epoch time", "ift", ("jfb",), "epoch_time_s"),
        Ratio("IFT vs JFB, backward time alone", "ift", ("jfb",), "backward_time_s"),
        Ratio("IFT vs JFB, step memory", "ift", ("jfb",)),
    )
    line_plots = (
        LinePlot(
            "memory_vs_forward_iterations",
            "step_forward_iterations",
            "step_peak_memory_bytes",
            "evaluations of T per forward (the steps whose memory was read)",
            "step working memory (MiB)",
            scale_y=2**-20,
            facet="solver",
        ),
        LinePlot(
            "backward_cost_vs_jacobian_products",
            "backward_jacobian_products",
            "backward_time_vs_one_step",
            "Jacobian products of T in one backward",
            "backward time / one-step (JFB) backward time",
            facet="solver",
        ),
    )
    bench_params = ({"solver": "fixed_point", "tol": 1e-2},)

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

    def prepare(self, impl: ImplicitBackward, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
        return protocol.prepare(impl, scale, params, ctx)

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        solved = {name: min(scale.grid["tol"]) for name, scale in self.scales.items() if scale.grid.get("tol")}
        return checks.run_checks(self.name, cases, solved)

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from suites.implicit_jfb.plots import plots

        return plots(cases)
