"""The protocol of one case (Sander, Ablin, Peyre 2022, section 5): pretrain a ResNet whose deep stage has tied weights
(smooth in depth), untie the stage into N blocks, and bind the gradient method to a training step of that stage. The
engine measures the step; the evaluation compares it with plain autograd's step through the same depth (with
``paired_deepest_only``, at the method's deepest depth only): their FLOPs, counted (``step_flops_vs_backprop``, the
cost the claim checks), and their wall-clock times alternately (``step_time_vs_backprop``, the median of
``paired_rounds`` pairs with its 95% interval, immune to the machine's drift between cases; a measurement). It then
fine-tunes, then measures the test accuracy and, on a fresh float64 copy with the pretrained weights, the method's
gradient error against exact backprop through the same stage and its reconstruction error of the stage's input. The
stage's activation (``params["activation"]``, relu by default) is part of the pretrained network and of its cache
key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from ctbench import CaseResult, Context, Prepared, Scale, expect_tensor
from ctbench.api.cache import cached, key
from ctbench.api.flops import count_flops
from ctbench.api.measure import paired_interval
from suites.adjoint_resnet import data
from suites.adjoint_resnet.checks import FLOPS, PAIRED
from suites.adjoint_resnet.interface import StageGradient
from suites.adjoint_resnet.model import Net

PRETRAIN_VERSION = 3  # part of the checkpoint cache key: bump when pretraining changes
PRETRAIN_KEYS = ("width", "downsample", "in_channels", "classes", "pretrain_depth", "pretrain_steps", "pretrain_lr",
                 "batch", "n_train")  # fmt: skip


def runs_at(impl: str, config: Mapping[str, Any], depth: int) -> bool:
    """Whether the scale's ``config`` runs ``impl`` at ``depth`` (its ``max_depth`` and ``depths_for``)."""
    limit = config.get("max_depth", {}).get(impl)
    only = config.get("depths_for", {}).get(impl)
    return (limit is None or depth <= limit) and (only is None or depth in only)


def depths_run(impl: str, scale: Scale) -> list[int]:
    """The depths of the scale's grid at which ``impl`` runs."""
    return [d for d in scale.grid["depth"] if runs_at(impl, scale.config, d)]


def prepare(impl: StageGradient, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
    cfg, depth = scale.config, int(params["depth"])
    train, test = data.load(ctx.data_root, cfg, ctx.log)
    tied = pretrained(cfg, params.get("activation", "relu"), train, ctx)
    net = stage_model(tied, depth, impl.scheme, ctx.device)
    step, opt = training_step(net, impl, train, cfg, ctx)

    def evaluate(_: Any) -> CaseResult:
        metrics, spread, intervals = {}, {}, {}
        name = impl.manifest.name
        deepest = depth >= max(depths_run(name, scale), default=depth)  # a --param sweep may go deeper
        # its step, alternately with autograd's through the same depth (where the scale asks for it)
        if name != "backprop" and (deepest or not cfg.get("paired_deepest_only", False)):
            baseline = training_step(stage_model(tied, depth, "euler", ctx.device), Autograd(), train, cfg, ctx)[0]
            metrics[FLOPS] = count_flops(step) / count_flops(baseline)
            paired = paired_interval(step, baseline, ctx.meter.clock, cfg["paired_rounds"])
            metrics[PAIRED], spread[PAIRED], intervals[PAIRED] = paired.median, paired.iqr, paired.interval
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, cfg["lr_milestones"], gamma=0.1)
        steps = cfg["finetune_steps"]
        ctx.meter.phase("finetune", lambda: finetune(step, sched, steps), work={"samples": steps * cfg["batch"]})
        metrics["test_accuracy"] = accuracy(net, test, cfg["batch"], ctx.device)
        fresh = stage_model(tied, depth, impl.scheme, ctx.device)  # the pretrained weights, untouched
        x, y = (t.to(ctx.device) for t in next(data.batches(train, cfg["batch"], ctx.seed, augment=False)))
        metrics["pretrained_accuracy"] = accuracy(fresh, test, cfg["batch"], ctx.device)
        fresh, x = fresh.double(), x.double()  # the discretisation's error, not float32's (or TF32's) rounding
        metrics["grad_rel_error"] = grad_rel_error(fresh, impl, x, y)
        recon = reconstruction_error(fresh, impl, x)
        if recon is not None:
            metrics["reconstruction_error"] = recon
        return CaseResult(metrics, dataset=train.dataset, spread=spread, intervals=intervals)

    return Prepared(step, evaluate, work={"samples": cfg["batch"]})


class Autograd(StageGradient):
    """Plain autograd through the stage (every activation stored): the baseline each method's step is counted
    and timed against within its own case (``step_flops_vs_backprop``, ``step_time_vs_backprop``)."""

    def forward(self, stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return stage(x)


def pretrained(cfg: Mapping[str, Any], activation: str, train: data.Split, ctx: Context) -> Net:
    """The tied network with ``activation`` in its blocks, pretrained with backprop and gradient clipping (cached
    per configuration, activation, dataset, seed, device type and CPU threads).

    Deterministic: the initialisation draws from its own generator seeded by the case's seed (not from the global
    one, whose state depends on what ran before in the process), and the batches' order from another, so an empty
    cache gives the same network on the same machine. The thread count is part of the key because a CPU kernel's
    rounding depends on how it splits the work, and 150 SGD steps amplify a last-bit difference into another network.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(ctx.seed)
        net = Net.tied(
            cfg["in_channels"], cfg["width"], cfg["downsample"], cfg["classes"], cfg["pretrain_depth"], activation
        )
    where = {"device": ctx.device.type, "threads": torch.get_num_threads() if ctx.device.type == "cpu" else None}
    pretrain_cfg = {**{k: cfg[k] for k in PRETRAIN_KEYS}, "activation": activation, **where}
    name = key(PRETRAIN_VERSION, pretrain_cfg, train.dataset, ctx.seed)
    path = ctx.cache_dir / "adjoint_resnet" / f"pretrained-{name}.pt"
    net.load_state_dict(cached(path, lambda: _pretrain(net, cfg, train, ctx)))
    return net


def _pretrain(net: Net, cfg: Mapping[str, Any], train: data.Split, ctx: Context) -> dict[str, torch.Tensor]:
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
    return {k: v.cpu() for k, v in net.state_dict().items()}


def stage_model(tied: Net, depth: int, scheme: str, device: torch.device) -> Net:
    """The untied network at ``depth`` with only the deep stage trainable."""
    net = tied.with_stage(depth, scheme).to(device)
    for module in (net.stem, net.head):
        module.requires_grad_(False)
    return net


def through(impl: StageGradient, stage: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """x_0 -> impl.forward(stage, x_0), its return checked: x_N has x_0's shape and dtype (else a clear error)."""
    what = f"{type(impl).__name__}.forward"

    def run(x: torch.Tensor) -> torch.Tensor:
        return expect_tensor(impl.forward(stage, x), tuple(x.shape), x.dtype, what)

    return run


def _loss(net: Net, run_stage: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    return nn.functional.cross_entropy(net.head(run_stage(net.stem(x))), y)


def _stage_gradient(net: Net, run_stage: Callable, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    net.stage.zero_grad(set_to_none=True)
    _loss(net, run_stage, x, y).backward()
    grad = torch.cat([p.grad.flatten() for p in net.stage.parameters()])
    net.stage.zero_grad(set_to_none=True)
    return grad


def grad_rel_error(net: Net, impl: StageGradient, x: torch.Tensor, y: torch.Tensor) -> float:
    """||g_method - g_exact|| / ||g_exact||, g_exact by autograd through the same stage on the same batch.

    The evaluation calls it on a float64 copy, so that it measures the scheme's error and not rounding. In float32
    the comparison bottoms out (measured, Heun with ReLU: 2e-6 at depth 512 at smoke's width 8; 3.5e-5 at both
    128 and 512 at the small scale's width 16, where float64 gives 1.7e-6 and 2.7e-8), and on a GPU cuDNN's TF32
    convolutions (PyTorch's default) round at about 1e-3: either would hide the order of Heun's error.
    """
    exact = _stage_gradient(net, net.stage, x, y)
    approx = _stage_gradient(net, through(impl, net.stage), x, y)
    return float((approx - exact).norm() / exact.norm())


def reconstruction_error(net: Net, impl: StageGradient, x: torch.Tensor) -> float | None:
    """||x0_recovered - x0|| / ||x0||, or None for a method that stores its activations."""
    with torch.no_grad():
        x0 = net.stem(x)
        y = net.stage(x0)
        recovered = impl.reverse(net.stage, y)
    if recovered is None:
        return None
    expect_tensor(recovered, tuple(y.shape), y.dtype, f"{type(impl).__name__}.reverse")
    return float((recovered - x0).norm() / x0.norm())


def training_step(
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
    run_stage = through(impl, net.stage)

    def step() -> float:
        x, y = next(stream)
        opt.zero_grad(set_to_none=False)
        loss = _loss(net, run_stage, x.to(ctx.device), y.to(ctx.device))
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step, opt


def finetune(step: Callable[[], float], sched: Any, steps: int) -> None:
    for _ in range(steps):
        step()
        sched.step()


@torch.no_grad()
def accuracy(net: Net, split: data.Split, batch: int, device: torch.device) -> float:
    correct = 0
    for start in range(0, len(split), batch):
        logits = net(split.x[start : start + batch].to(device))
        correct += int((logits.argmax(1).cpu() == split.y[start : start + batch]).sum())
    return correct / len(split)
