"""Image data for the task: real data sets only, and the dequantised logit space the density flows model.

Fashion-MNIST comes offline from Debian's ``dataset-fashion-mnist``; MNIST and CIFAR-10 through torchvision from the
data root (downloaded where a network exists). A flow models y = logit(a + (1 - 2a) x~) of the uniformly
dequantised x~ = (255 x + u) / 256, u ~ U(0, 1) (Behrmann et al. 2019, following Real NVP, a = 0.05), so

    log p(x~) = log p_flow(y) + sum_i log|dy_i/dx~_i|,   bits/dim = (-log p(x~) + D log 256) / (D log 2),

the second on the 256-level scale of the data (D = C H W).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ctbench.data import Split, install_debian_fashion_mnist, load_torchvision

TORCHVISION = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": "CIFAR10"}


def load(name: str, root: Path, n_train: int, n_test: int) -> tuple[Split, Split]:
    """(train, test) of data set ``name`` cut to the sizes given."""
    if name not in TORCHVISION:
        raise ValueError(f"unknown image data set {name!r}; valid: {', '.join(TORCHVISION)}")
    if name == "fashion-mnist" and not install_debian_fashion_mnist(root):
        raise FileNotFoundError(
            "Fashion-MNIST not found: install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
        )
    download = name != "fashion-mnist"
    try:
        train = load_torchvision(TORCHVISION[name], root, train=True, download=download)
        test = load_torchvision(TORCHVISION[name], root, train=False, download=download)
    except Exception as exc:
        raise FileNotFoundError(
            f"{name}: cannot load from {root} or download it ({type(exc).__name__}: {exc})"
        ) from exc
    return train.take(n_train), test.take(n_test)


def batches(split: Split, batch: int, generator: torch.Generator):
    """Endless shuffled mini-batches (x, y)."""
    while True:
        order = torch.randperm(len(split), generator=generator)
        for start in range(0, len(order) - batch + 1, batch):
            idx = order[start : start + batch]
            yield split.x[idx], split.y[idx]


def to_logit(
    x: torch.Tensor, alpha: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, sum_i log|dy_i/dx~_i|) for images x in [0, 1] after uniform dequantisation."""
    noise = torch.rand(x.shape, generator=generator).to(x)
    s = alpha + (1 - 2 * alpha) * (x * 255 + noise) / 256
    y = torch.log(s) - torch.log1p(-s)
    return y, (math.log(1 - 2 * alpha) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(1)


def bits_per_dim(log_px: torch.Tensor, dim: int) -> torch.Tensor:
    """Bits per dimension on the 256-level scale from log p(x~) of x~ in [0, 1]^D."""
    return (-log_px + dim * math.log(256)) / (dim * math.log(2))
