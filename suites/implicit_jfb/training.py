"""The training pieces of the protocol: one forward through a method, its checked backward, a training step
(``Trainer``), the Adam update, the probe run before training and the test-set accuracy and residual.

Every forward goes through ``forward`` and every backward through ``backward``, which check what a method
returns (shape and dtype, finiteness, a graph) and raise with the method's name and what is wrong.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ctbench import expect_tensor
from ctbench.api.data import Split
from suites.implicit_jfb import data
from suites.implicit_jfb.interface import ImplicitBackward
from suites.implicit_jfb.layer import Layer
from suites.implicit_jfb.model import ImplicitNet
from suites.implicit_jfb.solvers import FixedPointSolver, relative_residual


def impl_name(impl: ImplicitBackward) -> str:
    manifest = getattr(impl, "manifest", None)
    return getattr(manifest, "name", type(impl).__name__)


def build_model(cfg: Mapping[str, Any], in_channels: int, image_size: int) -> ImplicitNet:
    return ImplicitNet(
        in_channels,
        image_size,
        cfg["classes"],
        cfg["channels"],
        cfg["latent_layers"],
        cfg["data_width"],
        cfg["data_blocks"],
        cfg["pool"],
        cfg["contraction"],
        cfg.get("stem_stride", 1),
    )


def forward(
    model: ImplicitNet, impl: ImplicitBackward, x: torch.Tensor, solver: FixedPointSolver
) -> tuple[torch.Tensor, Layer]:
    """(z, layer): the method's output at the fixed point of T(., Q(x)) and the layer it used (counted)."""
    v = model.inject(x)
    layer = Layer(model.latent_map(v), v.shape)
    z = impl.forward(layer, torch.zeros_like(v), solver)
    name = impl_name(impl)
    expect_tensor(z, tuple(v.shape), v.dtype, f"{name}.forward (z, the latent)")
    if torch.is_grad_enabled() and not z.requires_grad:
        raise ValueError(f"{name}.forward returned a tensor without a graph: no gradient can reach the parameters")
    return z, layer


def backward(loss: torch.Tensor, model: ImplicitNet, name: str, retain_graph: bool = False) -> None:
    """Gradients of every parameter of ``model``, checked: right shape and finite, or a clear error."""
    params = list(model.parameters())
    try:
        torch.autograd.backward(loss, inputs=params, retain_graph=retain_graph)
    except RuntimeError as exc:
        raise RuntimeError(f"the backward pass of {name} failed: {exc}") from exc
    for pname, p in model.named_parameters():
        if p.grad is None:
            continue
        if p.grad.shape != p.shape:
            raise ValueError(f"{name}: gradient of {pname} has shape {tuple(p.grad.shape)}, expected {tuple(p.shape)}")
        if not torch.isfinite(p.grad).all():
            raise ValueError(f"{name}: the backward produced a non-finite (NaN or inf) gradient for {pname}")


def loss_of(model: ImplicitNet, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of S(z) against the labels."""
    return F.cross_entropy(model.readout(z), y)


@dataclass
class Trainer:
    """Adam on every parameter; ``epoch()`` is one pass over the training split, ``hot_step()`` one step."""

    model: ImplicitNet
    impl: ImplicitBackward
    solver: FixedPointSolver
    train: Split
    cfg: Mapping[str, Any]
    device: torch.device
    seed: int

    def __post_init__(self) -> None:
        self.opt = Adam(list(self.model.parameters()), self.cfg["weight_decay"])
        self.name = impl_name(self.impl)
        self.losses: list[float] = []
        self.forward_evaluations: list[int] = []
        self.epochs = 0

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One power iteration per latent convolution, the method's forward and backward, one Adam update."""
        self.model.train()
        self.model.update_lipschitz()
        z, layer = forward(self.model, self.impl, x.to(self.device), self.solver)
        loss = loss_of(self.model, z, y.to(self.device))
        self.forward_evaluations.append(layer.evaluations)
        self.model.zero_grad(set_to_none=False)
        backward(loss, self.model, self.name)
        self.opt.step(self.learning_rate())
        return float(loss.detach())

    def learning_rate(self) -> float:
        """The base rate, times ``lr_gamma`` every ``lr_step`` epochs (StepLR)."""
        step = self.cfg.get("lr_step")
        return self.cfg["lr"] * (self.cfg.get("lr_gamma", 1.0) ** (self.epochs // step) if step else 1.0)

    def epoch(self) -> None:
        stream = data.batches(self.train, self.cfg["batch"], self.seed * 1000 + self.epochs, self.cfg["augment"])
        for x, y in stream:
            self.losses.append(self.step(x, y))
        self.epochs += 1

    def hot_step(self) -> Callable[[], float]:
        """A closure doing one training step on the next batch (batches cycle over the split)."""
        state = {"stream": iter(())}

        def step() -> float:
            batch = next(state["stream"], None)
            if batch is None:
                state["stream"] = data.batches(self.train, self.cfg["batch"], self.seed, self.cfg["augment"])
                batch = next(state["stream"])
            return self.step(*batch)

        return step


class Adam:
    """Adam (Kingma & Ba 2015) with L2 weight decay, the update of ``torch.optim.Adam`` (tests compare them).

    m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2, p <- p - lr m_hat / (sqrt(v_hat) + eps), g = grad + wd
    p. Written out because constructing any ``torch.optim`` optimizer imports ``torch._dynamo``, seconds of start-up
    in every case's process.
    """

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.params, self.weight_decay, self.betas, self.eps = params, weight_decay, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, lr: float) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p if self.weight_decay else p.grad
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / (1 - b2**self.t)).sqrt_().add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / (1 - b1**self.t))


def latent_residual(layer: Layer, z: torch.Tensor) -> float:
    """Worst sample's relative residual ||T(z) - z|| / ||T(z)|| (uncounted)."""
    with torch.no_grad():
        return float(relative_residual(layer.uncounted(z), z).max())


def probe(
    model: ImplicitNet, impl: ImplicitBackward, x: torch.Tensor, y: torch.Tensor, solver: FixedPointSolver
) -> tuple[float, int]:
    """(residual, evaluations of T) of one forward on a copy of the network, in training mode; if the forward
    converged (or finds no fixed point), a backward too, checked like every backward. Run before anything is
    measured, it rejects a method's bad output early."""
    net = copy.deepcopy(model).train()
    z, layer = forward(net, impl, x, solver)
    residual = latent_residual(layer, z)
    if residual <= solver.tol or not impl.finds_fixed_point:
        backward(loss_of(net, z, y), net, impl_name(impl))
    return residual, layer.evaluations


@torch.no_grad()
def accuracy_and_residual(
    model: ImplicitNet,
    impl: ImplicitBackward,
    split: Split,
    solver: FixedPointSolver,
    batch: int,
    device: torch.device,
) -> tuple[float, float]:
    """(accuracy, worst relative residual over the split) with batch norm in inference mode."""
    model.eval()
    correct, residuals = 0, []
    for start in range(0, len(split), batch):
        x, y = split.x[start : start + batch].to(device), split.y[start : start + batch].to(device)
        z, layer = forward(model, impl, x, solver)
        correct += int((model.readout(z).argmax(1) == y).sum())
        residuals.append(latent_residual(layer, z))
    model.train()
    return correct / len(split), float(torch.tensor(residuals).max())  # NaN propagates
