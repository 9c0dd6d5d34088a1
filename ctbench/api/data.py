"""Data helpers shared by tasks: torchvision's real loaders, offline Fashion-MNIST, learnable synthetic images.

No task downloads silently into a wrong place or fakes a dataset's name: every loader returns the dataset's
name with the tensors, and the name goes into every case record.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import torch

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_LIBS: list[object] = []


def import_torchvision() -> ModuleType:
    """``import torchvision``, working around the CUDA-only wheel on a CPU torch.

    torchvision 0.28's wheel registers its C++ ops (``nms``) only when its CUDA library loads; on a CPU build of
    torch the import raises ``operator torchvision::nms does not exist``. Declaring the two op schemas first lets
    datasets, transforms and models import (``ops.nms`` and image decoding stay unavailable). Where torchvision
    imports normally this does nothing.
    """
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        lib = torch.library.Library("torchvision", "FRAGMENT")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIBS.append(lib)  # the schemas live as long as the library object
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        import torchvision
    return cast(ModuleType, torchvision)  # untyped: no stubs, no py.typed


@dataclass(frozen=True)
class Split:
    """Images (N, C, H, W) in float32 and integer labels, with the dataset's name."""

    x: torch.Tensor
    y: torch.Tensor
    dataset: str

    def __len__(self) -> int:
        return len(self.y)

    def take(self, n: int) -> Split:
        return Split(self.x[:n], self.y[:n], self.dataset)


def _to_split(ds: Any, name: str) -> Split:
    data = torch.as_tensor(ds.data)
    x = data.float().div(255)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return Split(x.contiguous(), torch.as_tensor(ds.targets).long(), name)


def load_torchvision(name: str, root: Path, train: bool, download: bool = False) -> Split:
    """A torchvision dataset (``CIFAR10``, ``MNIST``, ``FashionMNIST``, ``SVHN``) from ``root`` as tensors."""
    datasets = import_torchvision().datasets
    if name == "SVHN":
        ds = datasets.SVHN(str(root), split="train" if train else "test", download=download)
        return Split(torch.as_tensor(ds.data).float().div(255), torch.as_tensor(ds.labels).long(), "svhn")
    ds = getattr(datasets, name)(str(root), train=train, download=download)
    return _to_split(ds, name.lower().replace("fashionmnist", "fashion-mnist"))


def install_debian_fashion_mnist(root: Path) -> bool:
    """Put Debian's ``dataset-fashion-mnist`` files where torchvision's FashionMNIST looks; False if absent."""
    raw = root / "FashionMNIST" / "raw"
    sources = sorted(DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"))
    if not sources:
        return False
    raw.mkdir(parents=True, exist_ok=True)
    for src in sources:
        dst = raw / src.name[: -len(".gz")]
        if not dst.exists():
            tmp = dst.with_suffix(".tmp")
            with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            tmp.rename(dst)
    return True


def synthetic_images(n: int, shape: tuple[int, int, int], classes: int, seed: int, noise: float = 0.5) -> Split:
    """A deterministic, learnable image set: each class is a fixed random pattern plus Gaussian noise.

    x = clip(0.5 + 0.25 (p_y + m_y) + noise * eps, 0, 1), where p_y is a smooth per-class spatial pattern, m_y a
    per-class colour (a constant per channel, so it survives global pooling) and eps ~ N(0, I) from ``seed``.
    p and m come from a generator seeded by ``classes`` and ``shape`` only, so train and test splits share them.
    """
    c, h, w = shape
    g = torch.Generator().manual_seed(1000 + classes + c * h * w)
    coarse = torch.randn(classes, c, max(h // 4, 1), max(w // 4, 1), generator=g)
    patterns = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    patterns = patterns / patterns.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    colours = torch.randn(classes, c, 1, 1, generator=g)
    gs = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=gs)
    x = (0.5 + 0.25 * (patterns[y] + colours[y]) + noise * torch.randn(n, c, h, w, generator=gs)).clamp(0, 1)
    return Split(x, y, f"synthetic-{c}x{h}x{w}-{classes}class")
