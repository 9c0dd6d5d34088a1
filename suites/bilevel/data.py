"""Data of the bilevel task: LIBSVM files (IJCNN1, covtype), synthetic sets of their shapes, images for hyper-cleaning.

Every loader returns the data set's name with the tensors; synthetic data says so in its name. Splits and label
corruption use fixed seeds (not the case's seed), so every seed and solver of a case sees the same problem.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ctbench.api.data import DEBIAN_FASHION_MNIST, install_debian_fashion_mnist, load_torchvision, synthetic_images

DATA_SEED = 32  # benchopt's random_state for the hyper-cleaning split (and covtype's)


@dataclass(frozen=True)
class LibsvmSet:
    """A LIBSVM classification data set: its file names in the data root (training then validation file; one
    file is split with DATA_SEED), its number of features, and the share of positive labels its synthetic
    stand-in draws."""

    name: str
    files: tuple[str, ...]
    features: int
    positive_share: float


IJCNN1 = LibsvmSet("ijcnn1", ("ijcnn1", "ijcnn1.t"), 22, 0.097)  # training (49,990) and test (91,701) files
COVTYPE = LibsvmSet("covtype", ("covtype.libsvm.binary.scale",), 54, 0.5)  # 581,012 rows, features in [0, 1]
LIBSVM_SETS = {s.name: s for s in (IJCNN1, COVTYPE)}


class LibsvmFormatError(ValueError):
    """A LIBSVM file that does not parse; the message names the file and the line."""


@dataclass(frozen=True)
class Labelled:
    """Features (n, p), labels (n,) and the data set's name."""

    x: Tensor
    y: Tensor
    dataset: str


def _bad_line(path: Path) -> tuple[int, str, str] | None:
    """The first line of ``path`` that is not ``label index:value ...`` with increasing indices (1-based line
    number, reason, text), or None."""
    with open(path, errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            label, *pairs = text.split()
            try:
                float(label)
            except ValueError:
                return number, f"label {label!r} is not a number", line.rstrip("\n")
            previous = -1
            for pair in pairs:
                index, sep, value = pair.partition(":")
                try:
                    float(value)
                    if not sep or int(index) <= previous:
                        raise ValueError
                except ValueError:
                    return number, f"{pair!r} is not an index:value pair with increasing index", line.rstrip("\n")
                previous = int(index)
    return None


def read_libsvm(path: Path, n_features: int) -> tuple[Tensor, Tensor]:
    """Features and labels of a LIBSVM file (sklearn's reader); a malformed file raises with file and line."""
    from sklearn.datasets import load_svmlight_file

    try:
        features, labels = load_svmlight_file(str(path), n_features=n_features)
    except ValueError as exc:
        bad = _bad_line(path)
        if bad is None:
            raise LibsvmFormatError(f"{path}: cannot read LIBSVM file: {exc}") from exc
        number, reason, text = bad
        raise LibsvmFormatError(f"{path}, line {number}: cannot parse LIBSVM line ({reason}): {text[:120]!r}") from exc
    return torch.as_tensor(features.toarray()), torch.as_tensor(labels)


def synthetic_classification(spec: LibsvmSet, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A deterministic classification set of ``spec``'s shape: correlated features in (0, 1), labels in {-1, 1}
    drawn from a logistic model without intercept (the model the task fits) whose weights are shifted so that
    a share ``spec.positive_share`` of labels is positive. The model is fixed (seed 0); ``seed`` draws the
    samples."""
    p = spec.features
    model = torch.Generator().manual_seed(0)
    mixing = torch.randn(p, p, generator=model, dtype=torch.float64) / 3
    w = 3 * torch.randn(p, generator=model, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    x = torch.sigmoid(torch.randn(n, p, generator=gen, dtype=torch.float64) @ mixing)
    low, high = -20.0, 20.0  # shift of every weight: bisection on the share of positive logits
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if torch.sigmoid(x @ (w - mid)).mean() > spec.positive_share else (low, mid)
    prob = torch.sigmoid(x @ (w - low))
    y = torch.where(torch.rand(n, generator=gen, dtype=torch.float64) < prob, 1.0, -1.0)
    return x, y


def _signed(*labels: Tensor) -> tuple[Tensor, ...]:
    """Two-class labels as {-1, +1}, the larger label +1 (IJCNN1's files use -1 and 1, covtype's 1 and 2)."""
    classes = torch.cat(labels).unique()
    if len(classes) > 2:
        raise ValueError(f"expected two classes, found {len(classes)}: {classes[:5].tolist()}")
    return tuple(torch.where(y == classes[-1], 1.0, -1.0) for y in labels)


def hyperparam_data(data_root: Path, dataset: str, n_train: int, n_val: int) -> tuple[Labelled, Labelled]:
    """Training and validation splits of a LIBSVM set from its files in ``data_root``, else of its synthetic
    stand-in. Two files: the first ``n_train`` rows of the first, ``n_val`` of the second; one file: rows
    shuffled with DATA_SEED, then ``n_train`` for training and the next ``n_val`` for validation."""
    spec = LIBSVM_SETS[dataset]
    paths = [data_root / name for name in spec.files]
    present = [p.exists() for p in paths]
    if any(present) and not all(present):
        missing = ", ".join(str(p) for p, here in zip(paths, present, strict=True) if not here)
        raise FileNotFoundError(f"{dataset}: found {paths[present.index(True)]} but not {missing}")
    if not all(present):
        (x_tr, y_tr), (x_va, y_va) = (synthetic_classification(spec, n, seed) for n, seed in ((n_train, 1), (n_val, 2)))
        name = f"synthetic-{dataset}-shape"
    elif len(paths) == 2:
        (x_tr, y_tr), (x_va, y_va) = (read_libsvm(p, spec.features) for p in paths)
        name = dataset
    else:
        x, y = read_libsvm(paths[0], spec.features)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(DATA_SEED))
        x_tr, y_tr = x[order[:n_train]], y[order[:n_train]]
        x_va, y_va = x[order[n_train : n_train + n_val]], y[order[n_train : n_train + n_val]]
        name = dataset
    x_tr, x_va = x_tr[:n_train], x_va[:n_val]
    y_tr, y_va = _signed(y_tr[:n_train], y_va[:n_val])
    name = f"{name}-{len(y_tr)}x{len(y_va)}"
    return Labelled(x_tr.float(), y_tr.float(), name), Labelled(x_va.float(), y_va.float(), name)


def _images(data_root: Path, train: bool) -> tuple[Tensor, Tensor, str]:
    """MNIST from ``data_root`` when torchvision finds it, else Debian's Fashion-MNIST, else synthetic images."""
    try:
        split = load_torchvision("MNIST", data_root, train=train)
    except (RuntimeError, FileNotFoundError):
        if install_debian_fashion_mnist(data_root):
            split = load_torchvision("FashionMNIST", data_root, train=train)
        else:
            split = synthetic_images(60000 if train else 10000, (1, 28, 28), 10, seed=0 if train else 1)
    return split.x, split.y, split.dataset


def cleaning_data(
    data_root: Path, cache_dir: Path, n_train: int, n_val: int, n_test: int, image_size: int, corruption: float
) -> tuple[Labelled, Labelled, Labelled]:
    """Hyper-cleaning splits (``_cleaning_splits``), kept in ``cache_dir`` once made: later cases of a run load
    them without importing torchvision. The cache key holds the settings and which image sources exist."""
    if not 0.0 <= corruption <= 1.0:
        raise ValueError(f"datacleaning: corruption must be in [0, 1], got {corruption}")
    sources = [data_root / "MNIST" / "raw", data_root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST]
    key = json.dumps([str(data_root.resolve()), [p.exists() for p in sources], n_train, n_val, n_test, image_size,
                      corruption, DATA_SEED])  # fmt: skip
    path = cache_dir / "bilevel" / f"cleaning-{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt"
    if path.exists():
        return tuple(Labelled(**split) for split in torch.load(path))
    splits = _cleaning_splits(data_root, n_train, n_val, n_test, image_size, corruption)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save([dataclasses.asdict(split) for split in splits], tmp)
    tmp.replace(path)
    return splits


def _cleaning_splits(
    data_root: Path, n_train: int, n_val: int, n_test: int, image_size: int, corruption: float
) -> tuple[Labelled, Labelled, Labelled]:
    """Hyper-cleaning splits (benchopt's recipe): train and validation drawn from the training images, each
    training label replaced with probability ``corruption`` by a uniform random class, features standardised
    with the training statistics; images average-pooled to ``image_size`` (28: unchanged)."""
    x_all, y_all, name = _images(data_root, train=True)
    x_test, y_test, _ = _images(data_root, train=False)
    if n_train + n_val > len(y_all) or n_test > len(y_test):
        raise ValueError(
            f"datacleaning: {name} has {len(y_all)}/{len(y_test)} images, asked {n_train}+{n_val}/{n_test}"
        )
    gen = torch.Generator().manual_seed(DATA_SEED)
    order = torch.randperm(len(y_all), generator=gen)
    tr, va = order[:n_train], order[n_train : n_train + n_val]

    def features(x: Tensor) -> Tensor:
        if image_size != x.shape[-1]:
            x = torch.nn.functional.adaptive_avg_pool2d(x, image_size)
        return x.flatten(1)

    x_tr, x_va, x_te = features(x_all[tr]), features(x_all[va]), features(x_test[:n_test])
    mean, std = x_tr.mean(0), x_tr.std(0).clamp_min(1e-6)
    y_tr = y_all[tr].clone()
    corrupted = torch.rand(n_train, generator=gen) < corruption
    y_tr[corrupted] = torch.randint(10, (int(corrupted.sum()),), generator=gen)
    label = f"{name}-{image_size}px-{n_train}/{n_val}/{n_test}-p{corruption:g}"
    return (
        Labelled((x_tr - mean) / std, y_tr, label),
        Labelled((x_va - mean) / std, y_all[va], label),
        Labelled((x_te - mean) / std, y_test[:n_test], label),
    )
