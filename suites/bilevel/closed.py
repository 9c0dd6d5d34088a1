"""The specialised path of a problem's oracles: closed-form derivatives for losses of a known form.

A ``BilevelProblem`` whose losses are generalised linear models (the quadratic, logistic regression) carries an
object with these methods, which computes what the generic autograd oracles compute, by the losses' formulas: no
graph, a handful of matrix-vector products. The problem dispatches every oracle to it (``suites.bilevel.problem``).
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

Data = tuple[Tensor, ...]


class ClosedOracles(Protocol):
    """The oracles of ``BilevelProblem`` in closed form, for losses of a known form. ``inner`` and ``outer`` are
    the problem's data tuples and ``idx`` the batch (None: every sample; ``pick`` selects it from the tensors an
    oracle needs); every result is what the generic (autograd) oracle returns."""

    def inner_grad(self, z: Tensor, x: Tensor, inner: Data, idx: Tensor | None) -> Tensor: ...

    def inner_oracles(
        self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]: ...

    def inner_hvp(self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None) -> Tensor: ...

    def inner_cross(self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None) -> Tensor: ...

    def outer_grad(self, z: Tensor, x: Tensor, outer: Data, idx: Tensor | None) -> tuple[Tensor, Tensor]: ...

    def inner_per_sample(
        self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]: ...

    def outer_per_sample(self, z: Tensor, x: Tensor, outer: Data, idx: Tensor | None) -> tuple[Tensor, Tensor]: ...


def pick(idx: Tensor | None, *tensors: Tensor) -> tuple[Tensor, ...]:
    """The batch ``idx`` of each tensor (all of it when None)."""
    return tensors if idx is None else tuple(t.index_select(0, idx) for t in tensors)
