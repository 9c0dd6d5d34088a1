"""``adjoint_resnet``: fine-tune the deep stage of a ResNet with a memory-free discrete adjoint.

Sander, Ablin, Peyre 2022: a ResNet whose deep stage is smooth in depth is the Euler discretisation of an ODE, so
its activations can be recovered backwards (x_n = x_{n+1} - h Phi_n(x_n), solved by the reversed scheme) instead
of stored. Per case (one method, one depth N): the working memory and time of one training step (the engine's
measurement), the method's gradient error against exact backprop and reconstruction error of the stage's input,
fine-tuning throughput and the test accuracy reached. The protocol is in ``protocol.py``, the checks across
depths in ``checks.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import (
    CaseResult,
    Context,
    LinePlot,
    Metric,
    Paper,
    Phase,
    Policy,
    Prepared,
    RunCheck,
    Scale,
    Step,
    Task,
)
from suites.adjoint_resnet import checks, protocol
from suites.adjoint_resnet.interface import StageGradient

_COMMON = {"in_channels": 3, "classes": 10, "lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4}


def _vs_depth(name: str, metric: str, label: str, factor: float = 1.0) -> LinePlot:
    return LinePlot(name, "param.depth", metric, "depth N", label, xlog=True, ylog=True, scale_y=factor)


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
        "(Euler, Heun) against backprop, checkpointing and torchdiffeq's continuous adjoint."
    )
    interface = StageGradient
    primary_metric = "test_accuracy"
    step = Step("one SGD step of the deep stage (forward, the method's backward, update)", {"samples": "images"})
    phases = {"finetune": Phase("fine-tuning the deep stage (the scale's finetune_steps)", {"samples": "images"})}
    metrics = {
        "test_accuracy": Metric("fraction", True, "test accuracy after fine-tuning the deep stage"),
        "pretrained_accuracy": Metric("fraction", None, "test accuracy of the tied network before fine-tuning"),
        "grad_rel_error": Metric("", False, "||g - g_backprop|| / ||g_backprop|| on the stage's parameters"),
        "reconstruction_error": Metric("", False, "||x0_recovered - x0|| / ||x0|| for the stage's input"),
    }
    scales = {
        "smoke": Scale(
            "smoke",
            grid={"depth": [8, 64, 256]},
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
                # torchdiffeq's adjoint visits every block's parameters at each of the N steps (O(N^2));
                # measured here: 3.8 s per step at depth 256 against backprop's 0.13 s
                "max_depth": {"torchdiffeq": 64},
            },
            timeout_s=300,
            policy=Policy(repeat=3, memory_repeat=5),
        ),
        "small": Scale(
            "small",
            grid={"depth": [8, 64, 256, 1024]},
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
            },
            timeout_s=1800,
            policy=Policy(repeat=5, memory_repeat=3),
        ),
        "full": Scale(
            "full",
            grid={"depth": [32, 128, 512, 1024]},
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
            },
            timeout_s=6 * 3600,
            policy=Policy(repeat=10, memory_repeat=1),
        ),
    }
    line_plots = (
        _vs_depth("step_memory_vs_depth", "step_peak_memory_bytes", "step working memory (MB)", 1e-6),
        _vs_depth("step_time_vs_depth", "step_time_s", "step time (s)"),
        _vs_depth("grad_error_vs_depth", "grad_rel_error", "relative gradient error"),
    )
    bench_params = ({"depth": 64},)

    def skip(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        limit = scale.config.get("max_depth", {}).get(impl)
        if limit is not None and params["depth"] > limit:
            return f"{impl} is run up to depth {limit} at scale {scale.name}"
        return None

    def prepare(self, impl: StageGradient, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
        return protocol.prepare(impl, scale, params, ctx)

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        return checks.depth_checks(self.name, cases)
