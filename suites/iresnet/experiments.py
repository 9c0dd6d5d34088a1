"""The task's three experiments, each as a ``Setup``: a model, its training batches and loss, its test metrics.

- ``density_2d``: a flow of MLP blocks on a 2-D density with a known log-density (``toy2d``); base N(0, I);
  loss = -mean log p(x); test NLL with the exact log-det (d = 2), beside the true density's NLL on the same points;
- ``density_images``: a multiscale flow of conv blocks on dequantised, logit-transformed images (``images``);
  loss = bits/dim; test bits/dim with the reference estimator below. Simpler than the papers' models: stages are
  separated by squeezes only (no factoring-out of dimensions, no ActNorm);
- ``classification``: the flow's blocks (after a squeeze and injective padding) as an i-ResNet classifier with a
  ReLU, global-average-pool and linear head; cross-entropy, no data augmentation or learning-rate schedule; test
  accuracy (no log-det is used). ``c = None`` is the same network without the Lipschitz constraint.

Test log-likelihoods are computed the same way for every method, so they compare models, not estimators: exact
log-det when the data has at most ``exact_max_dim`` dimensions, else Residual Flows' unbiased estimator with 20
always-evaluated terms (their evaluation setting), one probe per image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ctbench import Context
from suites.iresnet import data, images, toy2d
from suites.iresnet.data import DATASETS
from suites.iresnet.flow import Flow, LogDet, image_flow, mlp_flow
from suites.iresnet.linearise import linearise
from suites.iresnet.series import Roulette, exact_logdet, power_series

EXPERIMENTS = ("density_2d", "density_images", "classification")


@dataclass
class Setup:
    dataset: str
    model: nn.Module  # what is trained: the flow, or the classifier around it
    flow: Flow  # the invertible part
    density: bool
    probe: torch.Tensor  # flow inputs from the test set: inversion, Lipschitz, estimator error
    batches: data.BatchStream  # training batches, restartable
    loss: Callable[[Any, LogDet], torch.Tensor]
    evaluate: Callable[[], dict[str, float]]
    optimizer: Callable[[], torch.optim.Optimizer]

    @property
    def dim(self) -> int:
        return self.probe[0].numel()


def normal_logp(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z.flatten(1) ** 2 + math.log(2 * math.pi)).sum(1)


def reference_logdet(dim: int, exact_max_dim: int, exact_terms: int = 20) -> LogDet:
    """The log-det the protocol evaluates test likelihoods with: exact in low dimensions, else unbiased."""
    if dim <= exact_max_dim:
        return lambda g, h: exact_logdet(g, h)
    roulette = Roulette(exact_terms)

    def estimate(g: nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lin = linearise(g, h)
        logdet = power_series(lin, roulette.weights(roulette.draw()), create_graph=False)
        return (lin.x + lin.gx).detach(), logdet.detach()

    return estimate


def _stages(cfg: Mapping[str, Any], dataset: str) -> list[tuple[int, int]]:
    """The (blocks, width) of each stage: one list for every data set, or a list per data set."""
    stages = cfg["stages"]
    if isinstance(stages, Mapping):
        if dataset not in stages:
            raise ValueError(f"no architecture for {dataset} at this scale; configured for: {', '.join(stages)}")
        stages = stages[dataset]
    return [tuple(s) for s in stages]


def setup(params: Mapping[str, Any], cfg: Mapping[str, Any], ctx: Context) -> Setup:
    experiment, dataset = params["experiment"], params["dataset"]
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; valid: {', '.join(EXPERIMENTS)}")
    if dataset not in DATASETS[experiment]:
        raise ValueError(f"{experiment} has no data set {dataset!r}; valid: {', '.join(DATASETS[experiment])}")
    builder = {"density_2d": _density_2d, "density_images": _density_images, "classification": _classification}
    return builder[experiment](dataset, params["c"], {**cfg, **cfg[experiment]}, ctx)


def _batched_mean(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int) -> float:
    with torch.no_grad():
        return float(torch.cat([fn(part) for part in x.split(batch)]).double().mean())


def _density_2d(dataset: str, c: float | None, cfg: Mapping[str, Any], ctx: Context) -> Setup:
    flow = mlp_flow(2, cfg["blocks"], cfg["width"], cfg["layers"], c, cfg["power_iterations"]).to(ctx.device)
    test = toy2d.sample(dataset, cfg["n_test"], torch.Generator().manual_seed(10_000 + ctx.seed)).to(ctx.device)
    ref = reference_logdet(2, cfg["exact_max_dim"])

    def loss(x: torch.Tensor, logdet: LogDet) -> torch.Tensor:
        z, ld = flow.forward_logdet(x, logdet)
        return -(normal_logp(z) + ld).mean()

    def draw(gen: torch.Generator) -> Iterator[torch.Tensor]:
        while True:
            yield toy2d.sample(dataset, cfg["batch"], gen).to(ctx.device)

    def evaluate() -> dict[str, float]:
        def nll(x: torch.Tensor) -> torch.Tensor:
            z, ld = flow.forward_logdet(x, ref)
            return -(normal_logp(z) + ld)

        return {
            "test_nll": _batched_mean(nll, test, cfg["eval_batch"]),
            "true_nll": float(-toy2d.log_prob(dataset, test.cpu()).mean()),
        }

    return Setup(
        dataset=f"toy2d-{dataset}",
        model=flow,
        flow=flow,
        density=True,
        probe=test[: cfg["probe_batch"]],
        batches=data.BatchStream(ctx.seed, draw),
        loss=loss,
        evaluate=evaluate,
        optimizer=lambda: torch.optim.Adam(flow.parameters(), lr=cfg["lr"]),
    )


def _density_images(dataset: str, c: float | None, cfg: Mapping[str, Any], ctx: Context) -> Setup:
    train, test = data.load_images(dataset, ctx.data_root, cfg["n_train"], cfg["n_test"])
    flow, _ = image_flow(tuple(train.x.shape[1:]), _stages(cfg, dataset), c, cfg["power_iterations"])
    flow.to(ctx.device)
    dim = train.x[0].numel()
    test_y, test_ld = images.to_logit(test.x, cfg["alpha"], torch.Generator().manual_seed(10_000 + ctx.seed))
    test_y, test_ld = test_y.to(ctx.device), test_ld.to(ctx.device)
    ref = reference_logdet(dim, cfg["exact_max_dim"])

    def log_px(y: torch.Tensor, ld_pre: torch.Tensor, logdet: LogDet) -> torch.Tensor:
        z, ld = flow.forward_logdet(y, logdet)
        return normal_logp(z) + ld + ld_pre

    def draw(gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, _ in data.batches(train, cfg["batch"], gen):
            y, ld_pre = images.to_logit(x, cfg["alpha"], gen)
            yield y.to(ctx.device), ld_pre.to(ctx.device)

    def evaluate() -> dict[str, float]:
        idx = torch.arange(len(test_y))
        nll = _batched_mean(lambda i: -log_px(test_y[i], test_ld[i], ref), idx, cfg["eval_batch"])
        # on the data's 256-level scale, like bits/dim: -log p(x~) + D log 256
        return {
            "test_nll": nll + dim * math.log(256),
            "bits_per_dim": float(images.bits_per_dim(torch.tensor(-nll), dim)),
        }

    return Setup(
        dataset=train.dataset,
        model=flow,
        flow=flow,
        density=True,
        probe=test_y[: cfg["probe_batch"]],
        batches=data.BatchStream(ctx.seed, draw),
        loss=lambda b, logdet: images.bits_per_dim(log_px(*b, logdet), dim).mean(),
        evaluate=evaluate,
        optimizer=lambda: torch.optim.Adamax(flow.parameters(), lr=cfg["lr"]),
    )


class Classifier(nn.Module):
    """An i-ResNet body followed by global average pooling and a linear layer."""

    def __init__(self, body: Flow, channels: int, classes: int):
        super().__init__()
        self.body, self.head = body, nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.body(x)).mean((2, 3)))


def _classification(dataset: str, c: float | None, cfg: Mapping[str, Any], ctx: Context) -> Setup:
    train, test = data.load_images(dataset, ctx.data_root, cfg["n_train"], cfg["n_test"])
    shape = tuple(train.x.shape[1:])
    body, (ch, _, _) = image_flow(shape, _stages(cfg, dataset), c, cfg["power_iterations"], cfg["pad_to"])
    model = Classifier(body, ch, cfg["classes"]).to(ctx.device)
    test_x, test_y = test.x.to(ctx.device), test.y.to(ctx.device)

    def draw(gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in data.batches(train, cfg["batch"], gen):
            yield x.to(ctx.device), y.to(ctx.device)

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            logits = torch.cat([model(part) for part in test_x.split(cfg["eval_batch"])])
        return {
            "test_nll": float(F.cross_entropy(logits, test_y)),
            "test_accuracy": float((logits.argmax(1) == test_y).float().mean()),
        }

    return Setup(
        dataset=train.dataset,
        model=model,
        flow=body,
        density=False,
        probe=test_x[: cfg["probe_batch"]],
        batches=data.BatchStream(ctx.seed, draw),
        loss=lambda b, _: F.cross_entropy(model(b[0]), b[1]),
        evaluate=evaluate,
        optimizer=lambda: torch.optim.SGD(
            model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
        ),
    )
