"""Target samples and initial particles (no generator network: the particles are the generated samples).

2-D targets (deterministic given the seed), each drawn once per case as a fixed sample set like the paper's; the
record's dataset is ``eight-gaussians`` (the paper's own distribution) or ``synthetic-<name>`` (2-D densities
standing in for the paper's image-defined ones):

- ``eight_gaussians`` (Franceschi et al. 2022, GAN(TK)^2's config): 8 modes of std 0.5 at radius 5, centres 5
  (cos 2 pi k / 8, sin 2 pi k / 8);
- ``two_moons``: two interleaved half circles (radius 2.5, Gaussian noise 0.25), centred;
- ``swiss_roll``: the 2-D spiral r = t / 3, t in [1.5 pi, 4.5 pi] (Gaussian noise 0.15).

Images: ``fashion_mnist``, the first n training images of Fashion-MNIST (Debian's ``dataset-fashion-mnist``
offline, else torchvision's own files under the data root), flattened to 784 values in [-1, 1] (the paper uses
MNIST).

Initial particles: x_i ~ N(0, I) in the data's dimension (the paper's source distribution).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

TWO_D = ("eight_gaussians", "two_moons", "swiss_roll")
IMAGES = ("fashion_mnist",)
DATASETS = TWO_D + IMAGES


@dataclass(frozen=True)
class Problem:
    """Target samples y (m, d), initial particles x0 (n, d), the data's name, and its modes where it has
    any."""

    target: torch.Tensor
    particles: torch.Tensor
    dataset: str
    centers: torch.Tensor | None = None
    mode_std: float = 0.0

    @property
    def dim(self) -> int:
        return self.target.shape[1]


def eight_gaussians_centers(radius: float = 5.0, modes: int = 8) -> torch.Tensor:
    angle = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)


def _two_d(name: str, n: int, g: torch.Generator) -> torch.Tensor:
    if name == "eight_gaussians":
        centers = eight_gaussians_centers()
        return centers[torch.randint(len(centers), (n,), generator=g)] + 0.5 * torch.randn(n, 2, generator=g)
    if name == "two_moons":
        upper = torch.rand(n, generator=g) < 0.5
        t = math.pi * torch.rand(n, generator=g)
        outer = torch.stack([torch.cos(t), torch.sin(t)], 1)
        inner = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], 1)
        pts = torch.where(upper[:, None], outer, inner) - torch.tensor([0.5, 0.25])
        return 2.5 * pts + 0.25 * torch.randn(n, 2, generator=g)
    if name == "swiss_roll":
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
        return torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 3 + 0.15 * torch.randn(n, 2, generator=g)
    raise ValueError(f"unknown 2-D dataset {name!r}; valid: {', '.join(TWO_D)}")


def _fashion_mnist(n: int, data_root: Path) -> torch.Tensor:
    from ctbench.api.data import install_debian_fashion_mnist, load_torchvision

    install_debian_fashion_mnist(data_root)
    try:
        split = load_torchvision("FashionMNIST", data_root, train=True)
    except Exception as exc:
        raise FileNotFoundError(
            f"Fashion-MNIST not found under {data_root}/FashionMNIST/raw and not in Debian's "
            f"/usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist): {exc}"
        ) from exc
    return split.x[:n].flatten(1).double() * 2 - 1


def load(name: str, n: int, seed: int, data_root: Path, dtype: torch.dtype, device: torch.device) -> Problem:
    """The target set of ``name`` (n samples) and n initial particles, on ``device`` in ``dtype``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    g = torch.Generator().manual_seed(seed)
    if name in IMAGES:
        target, label, centers, std = _fashion_mnist(n, data_root), "fashion-mnist", None, 0.0
    else:
        target = _two_d(name, n, g).double()
        label = name.replace("_", "-") if name == "eight_gaussians" else "synthetic-" + name.replace("_", "-")
        centers, std = (eight_gaussians_centers(), 0.5) if name == "eight_gaussians" else (None, 0.0)
    particles = torch.randn(n, target.shape[1], generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)

    def put(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(device=device, dtype=dtype)

    return Problem(put(target), put(particles), label, put(centers), std)
