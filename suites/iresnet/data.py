"""The task's data: which data sets each experiment uses, and the image data sets' loading and batches.

2-D densities are drawn from ``toy2d`` (their log-density is known). Image data sets are real data only:
Fashion-MNIST comes offline from Debian's ``dataset-fashion-mnist``; MNIST and CIFAR-10 through torchvision from
the data root (downloaded where a network exists). Images are float32 in [0, 1], (N, C, H, W). Training batches
come from a ``BatchStream``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ctbench.api.data import Split, install_debian_fashion_mnist, load_torchvision
from suites.iresnet import toy2d

TORCHVISION = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": "CIFAR10"}
DATASETS = {
    "density_2d": toy2d.DATASETS,
    "density_images": tuple(TORCHVISION),
    "classification": tuple(TORCHVISION),
}


def load_images(name: str, root: Path, n_train: int, n_test: int) -> tuple[Split, Split]:
    """(train, test) of image data set ``name`` cut to the sizes given."""
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


def batches(split: Split, batch: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled mini-batches (x, y): a fresh permutation per epoch, the last partial batch dropped."""
    while True:
        order = torch.randperm(len(split), generator=generator)
        for start in range(0, len(order) - batch + 1, batch):
            idx = order[start : start + batch]
            yield split.x[idx], split.y[idx]


class BatchStream:
    """Training batches drawn with a generator seeded by the case's seed; ``restart`` begins the same sequence
    again (the protocol restarts it after the engine's measured steps, so training sees the case's batches)."""

    def __init__(self, seed: int, draw: Callable[[torch.Generator], Iterator[Any]]):
        self.seed, self.draw = seed, draw
        self.restart()

    def restart(self) -> None:
        self.stream = self.draw(torch.Generator().manual_seed(self.seed))

    def next(self) -> Any:
        return next(self.stream)
