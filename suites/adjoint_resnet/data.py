"""CIFAR-10 for the task: torchvision's loader from the data root, else a learnable synthetic stand-in (said loudly)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ctbench.api.data import Split, load_torchvision, synthetic_images


def load(data_root: Path, config: dict[str, Any], log: Any = print) -> tuple[Split, Split]:
    """(train, test) splits of CIFAR-10 cut to the scale's sizes; synthetic CIFAR-shaped data when it is absent.

    ``config["download"]`` False (a scale for a machine without network) looks only on disk, never connects.
    """
    try:
        train = load_torchvision("CIFAR10", data_root, train=True, download=config.get("download", True))
        test = load_torchvision("CIFAR10", data_root, train=False, download=False)
    except Exception as exc:  # no files and no network: say so, then use the stand-in
        log(
            f"WARNING: CIFAR-10 not found under {data_root} and not downloadable ({type(exc).__name__}); "
            "using SYNTHETIC CIFAR-shaped data: accuracies are not CIFAR-10 accuracies"
        )
        train = synthetic_images(config["n_train"], (3, 32, 32), 10, seed=1)
        test = synthetic_images(config["n_test"], (3, 32, 32), 10, seed=2)
    return train.take(config["n_train"]), test.take(config["n_test"])


def batches(split: Split, batch_size: int, seed: int, augment: bool):
    """Endless shuffled mini-batches; with ``augment``, random crops (pad 4) and horizontal flips."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(split), generator=g)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            x, y = split.x[idx], split.y[idx]
            if augment:
                x = _augment(x, g)
            yield x, y


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    i, j = torch.randint(0, 9, (2,), generator=g).tolist()
    return padded[:, :, i : i + h, j : j + w]
