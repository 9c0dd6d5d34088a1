"""``adjoint_resnet``: fine-tune the deep stage of a ResNet with a memory-free discrete adjoint.

Protocol (Sander, Ablin, Peyre 2022, section 5): pretrain a ResNet whose deep stage has tied weights (smooth in
depth), untie the stage into N blocks, fine-tune only that stage with each gradient method. Per case (one method,
one depth N) it measures: the relative error of the method's stage gradient against exact backprop through the
same network on the same batch; the reconstruction error of the stage's input; the working memory and wall time of
one training step; fine-tuning throughput and the test accuracy reached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ctbench import CaseResult, Context, Metric, Paper, RunCheck, Scale, Task
from ctbench.measure import peak_memory, pinned_mmap_threshold, throughput, time_call
from suites.adjoint_resnet import data
from suites.adjoint_resnet.interface import StageGradient
from suites.adjoint_resnet.model import Net

FLAT_MEMORY_TOLERANCE = 0.15  # deepest within 15% of shallowest
GROWTH_FACTOR = 2.0  # backprop's step memory at the deepest case at least twice the shallowest's
PRETRAIN_VERSION = 2  # part of the checkpoint cache key: bump when pretraining changes

_COMMON = {"in_channels": 3, "classes": 10, "lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4}


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
    metrics = {
        "test_accuracy": Metric("fraction", True, "test accuracy after fine-tuning the deep stage"),
        "pretrained_accuracy": Metric("fraction", None, "test accuracy of the tied network before fine-tuning"),
        "grad_rel_error": Metric("", False, "||g - g_backprop|| / ||g_backprop|| on the stage's parameters"),
        "reconstruction_error": Metric("", False, "||x0_recovered - x0|| / ||x0|| for the stage's input"),
        "step_peak_memory_bytes": Metric("bytes", False, "working memory of one training step (peak - before)"),
        "device_used_bytes": Metric("bytes", None, "device memory in use after the step, as NVML sees it (CUDA)"),
        "step_time_s": Metric("s", False, "median wall time of one training step"),
        "throughput_samples_s": Metric("samples/s", True, "training samples per second while fine-tuning"),
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
                "timing_repeat": 3,
                "memory_repeat": 5,
                # torchdiffeq's adjoint visits every block's parameters at each of the N steps (O(N^2));
                # measured here: 3.8 s per step at depth 256 against backprop's 0.13 s
                "max_depth": {"torchdiffeq": 64},
            },
            timeout_s=300,
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
                "timing_repeat": 5,
                "memory_repeat": 3,
            },
            timeout_s=1800,
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
                "timing_repeat": 10,
                "memory_repeat": 1,
            },
            timeout_s=6 * 3600,
        ),
    }

    def skip(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        limit = scale.config.get("max_depth", {}).get(impl)
        if limit is not None and params["depth"] > limit:
            return f"{impl} is run up to depth {limit} at scale {scale.name}"
        return None

    def run(self, impl: StageGradient, scale: Scale, params: Mapping[str, Any], ctx: Context) -> CaseResult:
        cfg, depth = scale.config, int(params["depth"])
        train, test = data.load(ctx.data_root, cfg, ctx.log)
        tied = _pretrained(cfg, train, ctx)
        net = _stage_model(tied, depth, impl.scheme, ctx.device)
        step, opt = _training_step(net, impl, train, cfg, ctx)
        step()  # warm-up: gradient buffers and momentum exist before anything is measured
        timing = time_call(step, ctx.device, repeat=cfg["timing_repeat"], warmup=0)
        # memory right after the timings, before evaluations and gradient checks leave a fragmented heap behind
        with pinned_mmap_threshold():
            memory = peak_memory(step, ctx.device, repeat=cfg["memory_repeat"])
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, cfg["lr_milestones"], gamma=0.1)
        fit = time_call(lambda: _finetune(step, sched, cfg["finetune_steps"]), ctx.device, repeat=1, warmup=0)
        metrics = {
            "step_time_s": timing.median,
            "step_peak_memory_bytes": memory.step_bytes,
            "throughput_samples_s": throughput(cfg["finetune_steps"] * cfg["batch"], fit.median),
            "test_accuracy": _accuracy(net, test, cfg["batch"], ctx.device),
        }
        if memory.device_used_bytes is not None:  # NVML's view of the device beside the allocator's peak
            metrics["device_used_bytes"] = memory.device_used_bytes
        # gradient and reconstruction errors on the pretrained weights, in a fresh copy of the untied network
        fresh = _stage_model(tied, depth, impl.scheme, ctx.device)
        x, y = (t.to(ctx.device) for t in next(data.batches(train, cfg["batch"], ctx.seed, augment=False)))
        metrics["pretrained_accuracy"] = _accuracy(fresh, test, cfg["batch"], ctx.device)
        metrics["grad_rel_error"] = _grad_rel_error(fresh, impl, x, y)
        recon = _reconstruction_error(fresh, impl, x)
        if recon is not None:
            metrics["reconstruction_error"] = recon
        spread = {"step_time_s": timing.iqr, "step_peak_memory_bytes": float(memory.spread_bytes)}
        return CaseResult(metrics, dataset=train.dataset, spread=spread)

    def hot_step(self, impl: StageGradient, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Callable:
        cfg = scale.config
        train, _ = data.load(ctx.data_root, cfg, ctx.log)
        net = _stage_model(_pretrained(cfg, train, ctx), int(params["depth"]), impl.scheme, ctx.device)
        return _training_step(net, impl, train, cfg, ctx)[0]

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        from suites.adjoint_resnet.checks import depth_checks

        return depth_checks(self.name, cases, FLAT_MEMORY_TOLERANCE, GROWTH_FACTOR)

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from suites.adjoint_resnet.plots import depth_plots

        return depth_plots(cases)


def _config_key(cfg: Mapping[str, Any], dataset: str, seed: int) -> str:
    keys = (
        "width",
        "downsample",
        "in_channels",
        "classes",
        "pretrain_depth",
        "pretrain_steps",
        "pretrain_lr",
        "batch",
        "n_train",
    )
    body = json.dumps([PRETRAIN_VERSION, {k: cfg[k] for k in keys}, dataset, seed], sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _pretrained(cfg: Mapping[str, Any], train: data.Split, ctx: Context) -> Net:
    """The tied network, pretrained with backprop and gradient clipping (cached per configuration, dataset, seed)."""
    net = Net.tied(cfg["in_channels"], cfg["width"], cfg["downsample"], cfg["classes"], cfg["pretrain_depth"])
    path = ctx.cache_dir / "adjoint_resnet" / f"pretrained-{_config_key(cfg, train.dataset, ctx.seed)}.pt"
    if path.exists():
        net.load_state_dict(torch.load(path, map_location="cpu"))
        return net
    net.to(ctx.device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg["pretrain_lr"], momentum=0.9, weight_decay=5e-4)
    stream = data.batches(train, cfg["batch"], ctx.seed + 1, augment=cfg["augment"])
    for _ in range(cfg["pretrain_steps"]):
        x, y = next(stream)
        opt.zero_grad()
        nn.functional.cross_entropy(net(x.to(ctx.device)), y.to(ctx.device)).backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # the tied block's gradient sums N uses of it
        opt.step()
    if not all(torch.isfinite(p).all() for p in net.parameters()):
        raise RuntimeError(f"pretraining diverged (lr {cfg['pretrain_lr']}): the tied network has non-finite weights")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{id(net)}.tmp")
    torch.save(net.cpu().state_dict(), tmp)
    tmp.replace(path)
    return net


def _stage_model(tied: Net, depth: int, scheme: str, device: torch.device) -> Net:
    """The untied network at ``depth`` with only the deep stage trainable."""
    net = tied.with_stage(depth, scheme).to(device)
    for module in (net.stem, net.head):
        module.requires_grad_(False)
    return net


def _loss(net: Net, run_stage: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    return nn.functional.cross_entropy(net.head(run_stage(net.stem(x))), y)


def _stage_gradient(net: Net, run_stage: Callable, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    net.stage.zero_grad(set_to_none=True)
    _loss(net, run_stage, x, y).backward()
    grad = torch.cat([p.grad.flatten() for p in net.stage.parameters()])
    net.stage.zero_grad(set_to_none=True)
    return grad


def _grad_rel_error(net: Net, impl: StageGradient, x: torch.Tensor, y: torch.Tensor) -> float:
    """||g_method - g_exact|| / ||g_exact||, g_exact by autograd through the same stage on the same batch."""
    exact = _stage_gradient(net, net.stage, x, y)
    approx = _stage_gradient(net, lambda z: impl.forward(net.stage, z), x, y)
    return float((approx - exact).norm() / exact.norm())


def _reconstruction_error(net: Net, impl: StageGradient, x: torch.Tensor) -> float | None:
    with torch.no_grad():
        x0 = net.stem(x)
        recovered = impl.reverse(net.stage, net.stage(x0))
    if recovered is None:
        return None
    return float((recovered - x0).norm() / x0.norm())


def _training_step(
    net: Net, impl: StageGradient, train: data.Split, cfg: Mapping[str, Any], ctx: Context
) -> tuple[Callable[[], float], torch.optim.Optimizer]:
    """One SGD step on the deep stage; gradient buffers are zeroed in place, never freed, between steps.

    ``foreach=False``: the multi-tensor SGD allocates a temporary copy of every gradient at once, which would make
    the step's memory grow with the (untied) parameter count and hide whether the activations' memory is flat.
    """
    opt = torch.optim.SGD(
        net.stage.parameters(),
        lr=cfg["lr"],
        momentum=cfg["momentum"],
        weight_decay=cfg["weight_decay"],
        foreach=False,
    )
    stream: Iterator = data.batches(train, cfg["batch"], ctx.seed + 2, augment=cfg["augment"])

    def step() -> float:
        x, y = next(stream)
        opt.zero_grad(set_to_none=False)
        loss = _loss(net, lambda z: impl.forward(net.stage, z), x.to(ctx.device), y.to(ctx.device))
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step, opt


def _finetune(step: Callable[[], float], sched: Any, steps: int) -> None:
    for _ in range(steps):
        step()
        sched.step()


@torch.no_grad()
def _accuracy(net: Net, split: data.Split, batch: int, device: torch.device) -> float:
    correct = 0
    for start in range(0, len(split), batch):
        logits = net(split.x[start : start + batch].to(device))
        correct += int((logits.argmax(1).cpu() == split.y[start : start + batch]).sum())
    return correct / len(split)
