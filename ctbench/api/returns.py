"""Checks of what a submission returns to a protocol: a tensor of the shape and dtype its interface promises.

A protocol calls ``expect_tensor`` on every tensor a method hands back before using it, so that a wrong shape (a
log-det of shape (N, 1) where (N,) is promised, which broadcasting would silently accept) fails the case with
one clear error naming the method, what was expected and what was received, instead of a wrong number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class ReturnError(ValueError):
    """A method returned something other than the tensor its interface promises (the case fails with it)."""


def describe(shape: Sequence[int | None] | None, dtype: torch.dtype | None) -> str:
    """``shape (4,) float32``; ``None`` in a shape (or for the shape, or the dtype) is "any"."""
    parts = []
    if shape is not None:
        dims = ", ".join("*" if d is None else str(d) for d in shape)
        parts.append(f"shape ({dims}{',' if len(shape) == 1 else ''})")
    if dtype is not None:
        parts.append(str(dtype).removeprefix("torch."))
    return " ".join(parts) or "any shape"


def expect_tensor(value: Any, shape: Sequence[int | None] | None, dtype: torch.dtype | None, what: str) -> torch.Tensor:
    """``value`` if it is a tensor of ``shape`` (``None`` entries match any size) and ``dtype``; else raises
    ``ReturnError``: "``what`` returned <received>; expected <shape and dtype>". ``what`` names the method, e.g.
    ``"MyMethod.forward (log-det)"``."""
    expected = describe(shape, dtype)
    if not isinstance(value, torch.Tensor):
        raise ReturnError(f"{what} returned {type(value).__name__}; expected a tensor of {expected}")
    fits = shape is None or (
        value.dim() == len(shape) and all(d is None or d == n for d, n in zip(shape, value.shape, strict=True))
    )
    if not fits or (dtype is not None and value.dtype != dtype):
        got = describe(tuple(value.shape), value.dtype)
        raise ReturnError(f"{what} returned a tensor of {got}; expected {expected}")
    return value


def method_name(impl: Any, method: str) -> str:
    """``Class.method`` of an implementation, for the messages above."""
    return f"{type(impl).__name__}.{method}"
