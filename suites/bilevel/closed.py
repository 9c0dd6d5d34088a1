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

    def linear_model(self, inner: Data, outer: Data) -> LinearModel | None:
        """The problem's generalised-linear-model form, where its losses have one (else None)."""
        ...


def pick(idx: Tensor | None, *tensors: Tensor) -> tuple[Tensor, ...]:
    """The batch ``idx`` of each tensor (all of it when None)."""
    return tensors if idx is None else tuple(t.index_select(0, idx) for t in tensors)


class LinearModel(Protocol):
    """Per-sample rows that are a scalar times the sample's features, plus a part no sample changes (a generalised
    linear model): with d_k the features of sample k (inner samples, then outer ones), t_k = (d_k.z, d_k.v) and
    scalars (a_k, b_k) = ``scalars(t_k, y_k)``,
        d_z g_i = a_i d_i + R_z,   d2_zz g_i v = b_i d_i + R_v,   d2_xz g_i v = R_x,   d_z f_j = a_j d_j,   d_x f_j = 0,
    with (R_z, R_v, R_x) = ``shared``. A variance-reduced method then needs two numbers per sample, not its rows
    (``reference_impls.bilevel._scalar_table``)."""

    data: Tensor  # (n + m, p + 1): each sample's features d_k and its label y_k, the inner samples then the outer

    def scalars(self, t: Tensor, y: Tensor) -> Tensor:
        """(k, 2): (a_k, b_k) of each sample from t = d @ [z v] (k, 2) and its labels y (k, 1); b_k is unused for
        outer samples."""
        ...

    def shared(self, vz: Tensor, x: Tensor, d_vz: Tensor) -> Tensor:
        """Add [R_z; R_v] to ``d_vz`` (2, p) in place, at vz = [z; v] (2, p) and x; return R_x."""
        ...
