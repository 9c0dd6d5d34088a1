"""Shared fixtures: a private cache per session, the real Fashion-MNIST from Debian, submission files, the
template task in a temporary root."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from ctbench.api.data import install_debian_fashion_mnist

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "template"
TinyTask = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def fashion_mnist_root(tmp_path_factory) -> Path:
    """A data root with Debian's real Fashion-MNIST where torchvision looks (package dataset-fashion-mnist)."""
    root = tmp_path_factory.mktemp("data")
    assert install_debian_fashion_mnist(root), "Debian's dataset-fashion-mnist is not installed (see .ci/run)"
    return root


@pytest.fixture
def write_module(tmp_path):
    """Write a Python file in tmp_path from dedented source; returns its path."""

    def write(name: str, source: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    """Environment for running ``python -m ctbench_cli`` in a subprocess with a private results folder."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="session")
def tiny_task() -> TinyTask:
    """``tiny_task(root, cache, files)``: the template task (``tests/template``, a task that is two folders) copied
    into ``root`` with ``files`` (name -> source) beside it; returns the environment in which a ``ctbench``
    subprocess finds it (``CTBENCH_PATH``), caches in ``cache`` and imports this checkout."""

    def make(root: Path, cache: Path, files: Mapping[str, str] | None = None) -> dict[str, str]:
        shutil.copytree(TEMPLATE, root, dirs_exist_ok=True)
        for name, source in (files or {}).items():
            (root / name).write_text(source)
        cache.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "CTBENCH_PATH": str(root), "CTBENCH_CACHE": str(cache), "PYTHONPATH": str(REPO)}

    return make
