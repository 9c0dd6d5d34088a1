"""adjoint_resnet: the gradient methods' properties, the protocol end to end, and its real data loaders."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch

from ctbench import smoke
from ctbench.data import import_torchvision, load_torchvision
from ctbench.measure import peak_memory
from ctbench.registry import get_task
from reference_impls.adjoint_resnet._adjoint import DiscreteAdjoint
from reference_impls.adjoint_resnet.adjoint_euler import AdjointEuler
from reference_impls.adjoint_resnet.adjoint_heun import AdjointHeun
from reference_impls.adjoint_resnet.backprop import Backprop
from reference_impls.adjoint_resnet.checkpoint import Checkpoint
from reference_impls.adjoint_resnet.torchdiffeq_adjoint import TorchdiffeqAdjoint
from suites.adjoint_resnet.model import Net, Residual, ResidualStage


class SmoothResidual(torch.nn.Module):
    """f(x) = conv(tanh(conv(x))): smooth, as the convergence theory assumes (ReLU's kinks make it erratic)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x):
        return self.conv2(torch.tanh(self.conv1(x)))


def smooth_stage(depth: int, scheme: str, width: int = 4) -> ResidualStage:
    """A stage whose weights are smooth in depth: theta_n = theta(n / N), theta(t) = a + sin(2 pi t) b / 2."""
    torch.manual_seed(0)
    a, b = SmoothResidual(width), SmoothResidual(width)
    blocks = []
    for n in range(depth):
        block = SmoothResidual(width)
        with torch.no_grad():
            for p, pa, pb in zip(block.parameters(), a.parameters(), b.parameters(), strict=True):
                p.copy_(pa + 0.5 * np.sin(2 * np.pi * n / depth) * pb)
        blocks.append(block)
    return ResidualStage(blocks, scheme).double()


def stage_grad(stage: ResidualStage, method, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    stage.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    (method.forward(stage, x) ** 2).sum().backward()
    return torch.cat([p.grad.flatten() for p in stage.parameters()]), x.grad


def rel_error(depth: int, method: DiscreteAdjoint) -> float:
    stage = smooth_stage(depth, method.scheme)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    exact, _ = stage_grad(stage, Backprop(), x)
    approx, _ = stage_grad(stage, method, x)
    return float((approx - exact).norm() / exact.norm())


@pytest.mark.parametrize(("method", "order"), [(AdjointEuler(), 1), (AdjointHeun(), 2)])
def test_adjoint_gradient_converges_at_the_scheme_order(method, order):
    errors = [rel_error(n, method) for n in (8, 32)]
    # 4x the depth: the error falls about 4**order times; ask for half of that
    assert errors[0] / errors[1] > 0.5 * 4**order, errors
    assert errors[1] < 0.05


def test_heun_error_below_euler_at_equal_depth():
    for depth in (8, 32):
        assert rel_error(depth, AdjointHeun()) < rel_error(depth, AdjointEuler())


def test_adjoint_input_gradient_matches_backprop():
    stage = smooth_stage(64, "heun")
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    _, exact = stage_grad(stage, Backprop(), x)
    _, approx = stage_grad(stage, AdjointHeun(), x)
    assert float((approx - exact).norm() / exact.norm()) < 1e-3


def test_checkpoint_gradient_equals_backprop():
    stage = smooth_stage(10, "euler")
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    exact, _ = stage_grad(stage, Backprop(), x)
    approx, _ = stage_grad(stage, Checkpoint(), x)
    torch.testing.assert_close(approx, exact)


def test_torchdiffeq_forward_is_the_euler_resnet():
    stage = smooth_stage(12, "euler")
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(TorchdiffeqAdjoint().forward(stage, x), stage(x))


@pytest.mark.parametrize("method", [AdjointEuler(), AdjointHeun()])
def test_reversal_recovers_the_input(method):
    stage = smooth_stage(64, method.scheme)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    recovered = method.reverse(stage, stage(x))
    assert float((recovered - x).norm() / x.norm()) < 1e-2


def step_memory(method, depth: int) -> int:
    """Working memory of forward + backward through a stage (16 channels, 16x16 maps, batch 16)."""
    torch.manual_seed(0)
    stage = ResidualStage([Residual(16) for _ in range(depth)], method.scheme)
    x = torch.randn(16, 16, 16, 16)

    def step():
        stage.zero_grad(set_to_none=False)
        method.forward(stage, x).square().mean().backward()

    step()
    return peak_memory(step, torch.device("cpu"), repeat=3).step_bytes


def test_adjoint_memory_is_flat_in_depth_while_backprop_grows():
    # one activation is 16*16*16*16*4 B = 256 KiB; backprop stores several per block
    backprop = [step_memory(Backprop(), d) for d in (8, 128)]
    adjoint = [step_memory(AdjointEuler(), d) for d in (8, 128)]
    assert backprop[1] > 8 * backprop[0]
    assert backprop[1] - backprop[0] > 100 * 256 * 1024  # at least ~1 activation per extra block
    assert adjoint[1] < 1.5 * adjoint[0] + 2 * 256 * 1024  # generous: flat up to allocator noise
    assert adjoint[1] < backprop[1] / 10


def test_protocol_end_to_end_on_smoke_scale():
    result = smoke.run_case("adjoint_resnet", "adjoint_heun", {"depth": 16})
    m = result.metrics
    assert result.dataset.startswith("synthetic") or result.dataset == "cifar10"
    assert 0 < m["grad_rel_error"] < 0.1 and 0 < m["reconstruction_error"] < 0.1
    assert m["step_peak_memory_bytes"] > 0 and m["step_time_s"] > 0 and m["throughput_samples_s"] > 0
    assert m["test_accuracy"] > 0.2, "the synthetic data is learnable: well above the 0.1 of chance"
    assert set(smoke.run_case("adjoint_resnet", "backprop", {"depth": 8}).metrics) == set(m) - {"reconstruction_error"}


def test_run_checks_flag_what_they_should():
    task = get_task("adjoint_resnet")

    def case(impl, depth, mem, err=None, spread=0.0):
        metrics = {"step_peak_memory_bytes": mem, "step_time_s": 1.0}
        if err is not None:
            metrics.update(grad_rel_error=err, reconstruction_error=err)
        return {
            "impl": impl,
            "status": "ok",
            "scale": "smoke",
            "dataset": "d",
            "seed": 0,
            "params": {"depth": depth},
            "metrics": metrics,
            "spread": {"step_peak_memory_bytes": spread},
        }

    checks = task.run_checks(
        [
            case("backprop", 8, 1e6),
            case("backprop", 256, 3e7),
            case("adjoint_euler", 8, 1e6, 0.1),
            case("adjoint_euler", 256, 2e6, 0.01),
            case("adjoint_heun", 8, 1e6, 0.01),
            case("adjoint_heun", 256, 1.05e6, 0.001),
            case("noisy", 8, 1e6, 0.1, spread=2e5),  # +25%, within 15% + the readings' spread (40%)
            case("noisy", 256, 1.25e6, 0.01, spread=2e5),
            case("quiet", 8, 1e6, 0.1),  # the same growth without spread
            case("quiet", 256, 1.25e6, 0.01),
        ]
    )
    by = {(c.name, c.scope.get("impl"), c.scope.get("depth")): c.check.passed for c in checks}
    assert by[("backprop_memory_grows", "backprop", None)]
    assert not by[("memory_flat_in_depth", "adjoint_euler", None)]
    assert by[("memory_flat_in_depth", "adjoint_heun", None)]
    assert by[("memory_flat_in_depth", "noisy", None)] and not by[("memory_flat_in_depth", "quiet", None)]
    assert by[("grad_error_falls_with_depth", "adjoint_euler", None)]
    assert by[("heun_error_below_euler", None, 8)] and by[("heun_error_below_euler", None, 256)]


def _write_cifar(root):
    """The real CIFAR-10 python layout: 5 train batches + test_batch pickles and batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {
            "data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
            "labels": list(rng.integers(0, 10, 20)),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return {n: hashlib.md5((folder / n).read_bytes()).hexdigest() for n in names + ["batches.meta"]}


def test_cifar_files_load_through_torchvision(tmp_path, monkeypatch):
    md5 = _write_cifar(tmp_path)
    datasets = import_torchvision().datasets
    # torchvision checks every file's md5 against the official archive's: point it at the files written here
    monkeypatch.setattr(datasets.CIFAR10, "train_list", [[n, md5[n]] for n in md5 if n.startswith("data_batch")])
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setitem(datasets.CIFAR10.meta, "md5", md5["batches.meta"])
    train = load_torchvision("CIFAR10", tmp_path, train=True)
    test = load_torchvision("CIFAR10", tmp_path, train=False)
    assert train.x.shape == (100, 3, 32, 32) and test.x.shape == (20, 3, 32, 32)
    assert train.dataset == "cifar10" and 0 <= float(train.x.min()) and float(train.x.max()) <= 1


def test_real_fashion_mnist_trains_the_network(fashion_mnist_root):
    train = load_torchvision("FashionMNIST", fashion_mnist_root, train=True)
    test = load_torchvision("FashionMNIST", fashion_mnist_root, train=False)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    torch.manual_seed(0)
    net = Net.tied(1, 8, 2, 10, depth=4)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for i in range(0, 64 * 150, 64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(train.x[i : i + 64]), train.y[i : i + 64]).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    with torch.no_grad():
        accuracy = (net(test.x[:1000]).argmax(1) == test.y[:1000]).float().mean()
    assert accuracy > 0.4, "real Fashion-MNIST is learnable in 150 steps (chance: 0.1)"
