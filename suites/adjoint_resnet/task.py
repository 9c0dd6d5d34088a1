"""``adjoint_resnet``: fine-tune the deep stage of a ResNet with a memory-free discrete adjoint.

Sander, Ablin, Peyre 2022: a ResNet whose deep stage is smooth in depth is the Euler discretisation of an ODE, so
its activations can be recovered backwards (x_n = x_{n+1} - h Phi_n(x_n), solved by the reversed scheme) instead
of stored. Per case (one method, one depth N, one activation): the working memory and time of one training step
(the engine's measurement), the method's gradient error against exact backprop and reconstruction error of the
stage's input, fine-tuning throughput and the test accuracy reached. The protocol is in ``protocol.py``, the checks
across depths in ``checks.py``.

The activation axis (relu, softplus) is there because it decides the order of the adjoints: the gradient error
is O(h) = O(N^-1) for Euler and O(h^2) at least for Heun when the residual function is smooth (softplus), while
ReLU's kinks make the order erratic (the Jacobian at the reconstructed point differs by O(1) on the units that
cross their kink). The run checks fit both orders over the sweep's depths but the shallowest, decided by the
slope's interval with softplus, informative with ReLU (measured figures in ``checks.py``); gradient errors are
measured in float64 (see ``protocol.grad_rel_error``).
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
    Phase,
    Policy,
    Prepared,
    Ratio,
    RunCheck,
    Scale,
    Step,
    Task,
)
from suites.adjoint_resnet import checks, controls, protocol
from suites.adjoint_resnet.interface import StageGradient

# paired_rounds: (method step, autograd step) pairs timed alternately in each case (step_time_vs_backprop), 6 (the
# fewest whose range is a 95% interval of their median)
_COMMON = {"in_channels": 3, "classes": 10, "lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4, "paired_rounds": 6}
ACTIVATION = ["relu", "softplus"]
# with softplus only the methods whose gradient error has an order to measure (backprop's and checkpointing's are
# exact; their memory and time do not depend on the activation)
SMOOTH_ONLY = {"softplus": ["adjoint_euler", "adjoint_heun", "torchdiffeq"]}


def _vs_depth(name: str, metric: str, label: str, factor: float = 1.0) -> LinePlot:
    return LinePlot(
        name, "param.depth", metric, "depth N", label, xlog=True, ylog=True, scale_y=factor, facet="activation"
    )


class AdjointResNet(Task):
    name = "adjoint_resnet"
    paper = Paper(
        title="Do Residual Neural Networks discretize Neural Ordinary Differential Equations?",
        authors="Michael E. Sander, Pierre Ablin, Gabriel Peyre",
        venue="NeurIPS 2022",
        url="https://arxiv.org/abs/2205.14612",
    )
    summary = (
        "Fine-tune the deep residual stage of a pretrained ResNet with the memory-free discrete adjoint "
        "(Euler, Heun) against backprop, checkpointing and torchdiffeq's continuous adjoint. The gradient error of "
        "Euler's adjoint is first order (about N^-1) and Heun's second order at least with a smooth activation "
        "(softplus); with ReLU neither order is guaranteed, as the Jacobian jumps at the kinks the reconstructed "
        "activations cross (with the smoke configuration Heun's error rises again from depth 128 to 256), so the "
        "ReLU orders are reported, not checked. Gradient errors are measured in float64."
    )
    interface = StageGradient
    primary_metric = "test_accuracy"
    # what the paper is about: exact-enough gradients in memory flat in depth, at a bounded cost in time
    objectives = {"grad_rel_error": "quality", "step_peak_memory_bytes": "memory", "step_time_s": "time"}
    step = Step("one SGD step of the deep stage (forward, the method's backward, update)", {"samples": "images"})
    phases = {"finetune": Phase("fine-tuning the deep stage (the scale's finetune_steps)", {"samples": "images"})}
    metrics = {
        "test_accuracy": Metric("fraction", True, "test accuracy after fine-tuning the deep stage"),
        "pretrained_accuracy": Metric("fraction", None, "test accuracy of the tied network before fine-tuning"),
        "grad_rel_error": Metric("", False, "||g - g_backprop|| / ||g_backprop|| on the stage's parameters"),
        "reconstruction_error": Metric("", False, "||x0_recovered - x0|| / ||x0|| for the stage's input"),
        "step_time_vs_backprop": Metric(
            "x",
            False,
            "the method's step time over plain autograd's at the same depth, median of pairs timed "
            "alternately in the case (the machine's drift between cases cancels)",
            hardware=True,
        ),
        "step_flops_vs_backprop": Metric(
            "x",
            False,
            "the method's step FLOPs over plain autograd's at the same depth, counted from the operators each "
            "dispatches (matrix products and convolutions, forward and backward)",
        ),
    }
    scales = {
        "smoke": Scale(
            "smoke",
            # the orders are fitted on 16..128 (four depths; 8 is pre-asymptotic); deeper cases would take most of
            # the suite's time
            grid={"depth": [8, 16, 32, 64, 128], "activation": ACTIVATION},
            config={
                **_COMMON,
                "width": 8,
                "downsample": 2,
                "batch": 64,
                "n_train": 2048,
                "n_test": 512,
                "pretrain_depth": 8,
                "pretrain_steps": 150,
                "pretrain_lr": 0.05,
                "finetune_steps": 5,
                "lr": 1e-2,
                "lr_milestones": [],
                "augment": False,
                # torchdiffeq's adjoint visits every block's parameters at each of the N steps (O(N^2) per step),
                # so past depth 32 its cases alone would take most of the smoke run; backprop and checkpointing
                # are read by the memory and speed checks at the shallowest and deepest depths only
                "depths_for": {"backprop": [8, 32, 128], "checkpoint": [8, 32, 128], "torchdiffeq": [8, 32]},
                # the paired timing where the speed check reads it: at each method's deepest depth
                "paired_deepest_only": True,
                # softplus only where a claim needs it: the adjoints' orders
                "impls_for": {"softplus": ["adjoint_euler", "adjoint_heun"]},
            },
            timeout_s=300,
            policy=Policy(repeat=3, memory_repeat=5),
        ),
        "small": Scale(
            "small",
            grid={"depth": [8, 32, 64, 128, 256, 1024], "activation": ACTIVATION},
            config={
                **_COMMON,
                "width": 16,
                "downsample": 2,
                "batch": 128,
                "n_train": 10000,
                "n_test": 2000,
                "pretrain_depth": 16,
                "pretrain_steps": 1000,
                "pretrain_lr": 0.05,
                "finetune_steps": 100,
                "lr_milestones": [80],
                "augment": True,
                "impls_for": SMOOTH_ONLY,
            },
            timeout_s=1800,
            policy=Policy(repeat=5, memory_repeat=3),
        ),
        "full": Scale(
            "full",
            grid={"depth": [32, 64, 128, 256, 512, 1024], "activation": ACTIVATION},
            # the paper's fine-tuning: SGD lr 1e-3, momentum 0.9, wd 5e-4, batch 128, 50 epochs, lr/10 at 40
            config={
                **_COMMON,
                "width": 64,
                "downsample": 2,
                "batch": 128,
                "n_train": 50000,
                "n_test": 10000,
                "pretrain_depth": 32,
                "pretrain_steps": 100 * 390,
                "pretrain_lr": 0.1,
                "finetune_steps": 50 * 390,
                "lr_milestones": [40 * 390],
                "augment": True,
                "impls_for": SMOOTH_ONLY,
            },
            timeout_s=6 * 3600,
            policy=Policy(repeat=10, memory_repeat=1),
        ),
        # one GPU, no network needed (scripts/gpu_check.sh): the depth sweep at the full scale's width (64 channels,
        # 32x32 inputs, 8x8 maps in the stage, batch 128), where backprop stores 4 MiB per block (x_n and the
        # activation's output, 2 MiB each; counted tensor by tensor on a CPU): 1 GiB at depth 256, 4 GiB at 1024,
        # while the adjoint's live tensors stay at about 15 MiB; tiny pretraining and two fine-tuning steps.
        # 11 cases: backprop and adjoint_euler at 8, 256, 1024; heun and checkpoint to 256; torchdiffeq at 8.
        "gpu-smoke": Scale(
            "gpu-smoke",
            grid={"depth": [8, 256, 1024], "activation": ["relu"]},
            config={
                **_COMMON,
                "width": 64,
                "downsample": 2,
                "batch": 128,
                "n_train": 2048,
                "n_test": 512,
                "pretrain_depth": 8,
                "pretrain_steps": 30,
                "pretrain_lr": 0.05,
                "finetune_steps": 2,
                "lr": 1e-2,
                "lr_milestones": [],
                "augment": False,
                "download": False,  # no network there: straight to the synthetic stand-in
                "max_depth": {"torchdiffeq": 8, "checkpoint": 256, "adjoint_heun": 256},
            },
            # launch-bound on a data-centre GPU: well under the timeout a case
            timeout_s=90,
            policy=Policy(repeat=3, memory_repeat=1, energy_block_s=0.2, energy_blocks=1),
        ),
    }
    claims = (
        Claim(
            "memory_flat_in_depth",
            "The memory-free discrete adjoint trains a ResNet without storing its activations, recovering them on the "
            "fly by a backward pass of the network, so its memory does not grow with depth (at most 15% growth over "
            "the sweep, decided by the growth's interval from the readings' spread).",
            "Sander, Ablin, Peyre 2022: abstract and the adjoint-method section; fine-tuning experiments "
            "(no memory consumption in the residual layers)",
            controls.memory_flat_in_depth,
        ),
        Claim(
            "backprop_memory_grows",
            "Backpropagation stores every block's activations, so its memory grows linearly with depth (the baseline "
            "the adjoint saves against).",
            "Sander, Ablin, Peyre 2022: the adjoint-method section (motivation); engine sanity check of the "
            "memory measurement",
            controls.backprop_memory_grows,
        ),
        Claim(
            "grad_error_falls_with_depth",
            "The adjoint method succeeds at large depth: the error of its gradient vanishes as the depth N grows "
            "when the residual functions are smooth with depth and Lipschitz in the input.",
            "Sander, Ablin, Peyre 2022: the adjoint-method section (error bound) and its depth experiment",
            controls.grad_error_falls_with_depth,
        ),
        Claim(
            "grad_error_order",
            "The gradient error of Euler's adjoint is O(1/N) (first order), and Heun's method, a second-order scheme, "
            "gives an O(1/N^2) error when the weights are smooth with depth; both checked with a smooth activation "
            "(softplus) by the slope's 95% interval over four depths or more, the ReLU orders reported as measured.",
            "Sander, Ablin, Peyre 2022: the adjoint-method section, its O(1/N) bound for Euler and the Heun variant",
            controls.grad_error_order,
        ),
        Claim(
            "heun_error_below_euler",
            "Heun's method allows for better gradient estimation with the adjoint method than Euler's, and needs "
            "fewer layers to succeed.",
            "Sander, Ablin, Peyre 2022: abstract; the Heun section and its experiment (gradient error against depth)",
            controls.heun_error_below_euler,
        ),
        Claim(
            "step_flops_vs_backprop",
            "The adjoint method trades memory for computation: its backward pass recovers each block's input by "
            "running the scheme backwards and recomputes the block with its gradient, so a step costs at most 5/3 "
            "of backprop's FLOPs with Euler (forward F, reconstruction F, recomputation and backward 3F, against "
            "backprop's F + 2F), 10/3 with Heun (two evaluations per block), and checkpointing at most 4/3 (one "
            "recomputed forward pass); counted at each method's deepest depth. The wall-clock ratio is reported "
            "beside it, not checked.",
            "Sander, Ablin, Peyre 2022: the adjoint-method section (activations recovered on the fly by a backward "
            "pass, at the cost of extra computation) and the Heun section; the cost counts are the algorithms'",
            controls.step_flops_vs_backprop,
        ),
    )
    headline_ratios = (Ratio("backprop vs adjoint", "backprop", ("adjoint_euler", "adjoint_heun"), deepest="depth"),)
    line_plots = (
        _vs_depth("step_memory_vs_depth", "step_peak_memory_bytes", "step working memory (MiB)", 2**-20),
        _vs_depth("step_time_vs_depth", "step_time_s", "step time (s)"),
        _vs_depth("grad_error_vs_depth", "grad_rel_error", "relative gradient error"),
    )
    bench_params = ({"depth": 64},)

    def skip(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        if not protocol.runs_at(impl, scale.config, params["depth"]):
            return f"{impl} is run at depths {protocol.depths_run(impl, scale)} at scale {scale.name}"
        activation = params.get("activation", "relu")
        only = scale.config.get("impls_for", {}).get(activation)
        if only is not None and impl not in only:
            return f"with {activation}, scale {scale.name} runs only {', '.join(only)}"
        return None

    def prepare(self, impl: StageGradient, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
        return protocol.prepare(impl, scale, params, ctx)

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        return checks.depth_checks(self.name, cases)
