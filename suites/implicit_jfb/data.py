"""Data for the task: torchvision's real loaders from the data root; offline, Debian's real Fashion-MNIST;
else a learnable synthetic stand-in, said loudly and named as such in every case.

The subsample a scale uses is cached in ``cache_dir`` by ``ctbench.api.cache.cached`` (the same tensors, loaded
without importing torchvision, written atomically).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ctbench.api.cache import cached
from ctbench.api.data import Split, install_debian_fashion_mnist, load_torchvision, synthetic_images

# dataset name -> (torchvision class, image shape)
DATASETS = {
    "fashion-mnist": ("FashionMNIST", (1, 28, 28)),
    "mnist": ("MNIST", (1, 28, 28)),
    "svhn": ("SVHN", (3, 32, 32)),
    "cifar10": ("CIFAR10", (3, 32, 32)),
}


class _Unavailable(Exception):
    """The real data set is neither under the data root nor downloadable."""


def _subsample(name: str, root: Path, n_train: int, n_test: int) -> dict[str, Any]:
    """The first ``n_train`` / ``n_test`` images of the real data set, as stored in the cache."""
    cls = DATASETS[name][0]
    try:
        if name == "fashion-mnist":
            install_debian_fashion_mnist(root)
        train = load_torchvision(cls, root, train=True, download=name != "fashion-mnist").take(n_train)
        test = load_torchvision(cls, root, train=False, download=False).take(n_test)
    except Exception as exc:  # no files and no network
        raise _Unavailable(f"{type(exc).__name__}: {exc}") from exc
    return {
        "train": (train.x.clone(), train.y.clone()),
        "test": (test.x.clone(), test.y.clone()),
        "dataset": train.dataset,
    }


def load(
    name: str, data_root: Path, cache_dir: Path, n_train: int, n_test: int, log: Any = print
) -> tuple[Split, Split]:
    """(train, test) of ``name`` cut to ``n_train`` / ``n_test``; same-shaped synthetic data if absent."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    path = cache_dir / "implicit_jfb" / f"{name}-{n_train}-{n_test}.pt"
    try:
        saved = cached(path, lambda: _subsample(name, data_root, n_train, n_test))
    except _Unavailable as exc:
        log(
            f"WARNING: {name} not found under {data_root} and not downloadable ({exc}); using SYNTHETIC "
            f"{name}-shaped data: accuracies are not {name} accuracies"
        )
        shape = DATASETS[name][1]
        return synthetic_images(n_train, shape, 10, seed=1), synthetic_images(n_test, shape, 10, seed=2)
    return Split(*saved["train"], saved["dataset"]), Split(*saved["test"], saved["dataset"])


def batches(split: Split, batch_size: int, seed: int, augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled mini-batches (the last partial batch dropped); with ``augment``, random crops
    (pad 4) and horizontal flips, as the paper's CIFAR-10 training."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(split), generator=g)
    for start in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[start : start + batch_size]
        x, y = split.x[idx], split.y[idx]
        yield (_augment(x, g) if augment else x), y


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    i, j = torch.randint(0, 9, (2,), generator=g).tolist()
    return padded[:, :, i : i + h, j : j + w]
