"""Shared fixtures: a private cache per session, the real Fashion-MNIST from Debian, submission files."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from ctbench.data import install_debian_fashion_mnist

REPO = Path(__file__).resolve().parent.parent


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
