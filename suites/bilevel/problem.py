"""A finite-sum bilevel problem and its stochastic oracles: minibatch means and per-sample values.

    min_x h(x) = F(z*(x), x),   z*(x) = argmin_z G(z, x),
    G(z, x) = 1/n sum_i g_i(z, x),   F(z, x) = 1/m sum_j f_j(z, x).

Dagreou et al. (2022), Section 2: with v*(x) = -[d2_zz G]^-1 d_z F the solution of the linear system, the
hypergradient is grad h(x) = d_x F + d2_xz G v*, and the three directions their framework follows are

    D_z = d_z G(z, x),   D_v = d2_zz G(z, x) v + d_z F(z, x),   D_x = d2_xz G(z, x) v + d_x F(z, x),

each a mean over samples, so a mean over a minibatch is an unbiased estimate. Losses are written for one sample
and broadcast over leading batch dimensions of every argument (samples, and z and x too: ``dot`` and ``matvec``
below take a variable that is one vector or one copy per sample). Minibatch means come
from reverse mode on the batched loss: a gradient d_z G_B with its graph, then one double-backward with v gives
d2_zz G_B v and d2_xz G_B v together. Per-sample values (what variance-reduced methods store) come from the same
two passes on one copy (z_i, x_i) of the variables per sample: sum_i g_i(z_i, x_i) has d/dz_i = d_z g_i, and
its double-backward with v gives every d2_zz g_i v and d2_xz g_i v at once, vectorised over the batch without a
Python loop. (``torch.func``'s ``vmap(vjp(grad(g)))`` computes the same rows, and the tests check that it does;
at these sizes it was measured 2-3x slower, its overhead per call dominating.)

A problem whose g_i depends on x only through x[i] (data hyper-cleaning: one weight per training sample) says
so with ``per_sample_x``: its per-sample cross terms are scalars, stored as one column, scattered into x.
Every oracle call adds its batch size to ``samples`` (one sample = one g_i or f_j evaluated with its
derivatives), which the protocol reads as the cost axis "samples processed", and counts itself in ``oracles``
(``OracleCounts``): one call and its batch size in samples for each kind of quantity it returns (``ORACLES``:
d_z g, d2_zz g v, d2_xz g v, (d_z f, d_x f), g, f), batch means and per-sample rows alike; a call on all samples
counts n. ``inner_oracles`` is one call of each of the three inner kinds. A solver that forms these quantities
itself (from ``linear_model()``) counts them with ``count``. The protocol reads the counts per iteration.

Specialised path: a problem whose losses have a known closed form (a generalised linear model: the quadratic,
logistic regression) carries ``closed``, an object computing the same oracles by their formulas without autograd
(``ClosedOracles``). Every oracle then takes that path, for every solver and for the protocol's reference SGD
step alike; the generic autograd path stays the default of any other problem, and ``generic()`` returns the
same problem without the specialised path (the tests check that both give the same values).

Sampling: ``sampler`` hands a solver its source of minibatches: ``iid`` (default) draws ``batch_size`` indices
uniformly with replacement; ``batches`` is benchopt's sampler: the samples cut into contiguous batches, visited
in an order reshuffled after every pass (the first pass in order; each pass draws its last batch twice, as
benchopt's does), each batch's id kept in ``batch_id`` (``suites.bilevel.sampling.FixedBatches``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from suites.bilevel.closed import ClosedOracles, LinearModel
from suites.bilevel.sampling import SAMPLINGS, FixedBatches

Loss = Callable[..., Tensor]  # loss(z, x, *sample) -> scalar for one sample, (B,) for a batch of them

# The kinds of oracle a call is counted as: the quantity it returns (a batch mean or per-sample rows alike).
INNER_GRAD, INNER_HVP, INNER_CROSS = "inner_grad", "inner_hvp", "inner_cross"  # d_z g, d2_zz g v, d2_xz g v
OUTER_GRAD = "outer_grad"  # (d_z f, d_x f), one call
INNER_VALUE, OUTER_VALUE = "inner_value", "outer_value"  # g, f
INNER = (INNER_GRAD, INNER_HVP, INNER_CROSS)  # what ``inner_oracles`` and ``inner_per_sample`` return
ORACLES = (*INNER, OUTER_GRAD, INNER_VALUE, OUTER_VALUE)
QUANTITY = {INNER_GRAD: "d_z g", INNER_HVP: "d2_zz g v (Hessian-vector product)", INNER_CROSS: "d2_xz g v (cross "
            "derivative times v)", OUTER_GRAD: "(d_z f, d_x f)", INNER_VALUE: "g", OUTER_VALUE: "f"}  # fmt: skip


@dataclass
class OracleCounts:
    """Calls of each oracle kind (``ORACLES``) and the samples they processed (a call on a batch of b samples
    counts b): integer increments, cheap enough to stay on in every step."""

    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ORACLES, 0))
    samples: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ORACLES, 0))

    def add(self, batch: int, kinds: tuple[str, ...]) -> None:
        for kind in kinds:
            self.calls[kind] += 1
            self.samples[kind] += batch

    def copy(self) -> OracleCounts:
        return OracleCounts(dict(self.calls), dict(self.samples))

    def since(self, before: OracleCounts) -> OracleCounts:
        """The calls and samples counted after ``before`` (a ``copy`` taken then)."""
        return OracleCounts({k: v - before.calls[k] for k, v in self.calls.items()},
                            {k: v - before.samples[k] for k, v in self.samples.items()})  # fmt: skip


@dataclass(frozen=True)
class ClosedForm:
    """A problem whose value function is the quadratic h(x) = 1/2 x^T H x + q^T x + c (known h*, PL constant)."""

    hessian: Tensor
    linear: Tensor
    constant: float

    def value(self, x: Tensor) -> float:
        x = x.to(self.hessian)
        return float(0.5 * x @ (self.hessian @ x) + self.linear @ x + self.constant)

    def grad(self, x: Tensor) -> Tensor:
        return self.hessian @ x.to(self.hessian) + self.linear

    @property
    def minimiser(self) -> Tensor:
        return -torch.linalg.solve(self.hessian, self.linear)

    @property
    def minimum(self) -> float:
        return self.value(self.minimiser)

    @property
    def pl_constant(self) -> float:
        """Smallest eigenvalue of H: h is mu-strongly convex, hence mu-PL."""
        return float(torch.linalg.eigvalsh(self.hessian)[0])


@dataclass
class BilevelProblem:
    """Data and per-sample losses of a bilevel problem, with its batched oracles.

    ``inner_data`` and ``outer_data`` are tuples of tensors whose first dimension indexes samples; ``g`` and
    ``f`` are per-sample losses ``g(z, x_i, *sample)`` (``x_i = x[i]`` when ``per_sample_x``, else x) and
    ``f(z, x, *sample)``. ``test`` and ``accuracy`` give the test accuracy of an inner solution, where the
    problem has a test set.
    """

    name: str
    dataset: str
    g: Loss
    f: Loss
    inner_data: tuple[Tensor, ...]
    outer_data: tuple[Tensor, ...]
    z0: Tensor
    x0: Tensor
    per_sample_x: bool = False
    outer_uses_x: bool = True
    test: tuple[Tensor, ...] | None = None
    accuracy: Callable[[Tensor, tuple[Tensor, ...]], float] | None = None
    closed_form: ClosedForm | None = None
    closed: ClosedOracles | None = None
    sampling: str = "iid"
    samples: int = field(default=0, compare=False)
    oracles: OracleCounts = field(default_factory=OracleCounts, compare=False)
    # linear_model()'s layout of the data, built once: the problem's data, shared by every init of every solver
    _linear: list[LinearModel | None] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def kind(self) -> str:
        """``quadratic``, ``hyperparam`` or ``datacleaning``: the name without its variant (``-covtype``, ``-p0.7``)."""
        return self.name.split("-", 1)[0]

    @property
    def n_inner(self) -> int:
        return self.inner_data[0].shape[0]

    @property
    def n_outer(self) -> int:
        return self.outer_data[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.z0.device

    @property
    def dtype(self) -> torch.dtype:
        return self.z0.dtype

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> BilevelProblem:
        """A copy on ``device``; floating tensors cast to ``dtype`` (labels and indices keep theirs)."""

        def move(t: Tensor) -> Tensor:
            return t.to(device, dtype) if (dtype is not None and t.is_floating_point()) else t.to(device)

        def move_all(ts: tuple[Tensor, ...] | None) -> tuple[Tensor, ...] | None:
            return None if ts is None else tuple(move(t) for t in ts)

        return replace(
            self,
            inner_data=move_all(self.inner_data),
            outer_data=move_all(self.outer_data),
            z0=move(self.z0),
            x0=move(self.x0),
            test=move_all(self.test),
            samples=0,
            oracles=OracleCounts(),
        )

    def linear_model(self) -> LinearModel | None:
        """The problem's generalised-linear-model form (two scalars per sample), where its specialised path has one.
        Its data (laid out for one gather) is built on the first call and kept by the problem: it is the problem's
        data, as its other tensors, and every later call returns the same model."""
        if not self._linear:
            self._linear.append(
                None if self.closed is None else self.closed.linear_model(self.inner_data, self.outer_data)
            )
        return self._linear[0]

    def generic(self) -> BilevelProblem:
        """The same problem on the generic (autograd) oracles, without its specialised path."""
        return replace(self, closed=None, samples=0, oracles=OracleCounts())

    # --- sampling -------------------------------------------------------------------------------------------
    def draw(self, which: str, batch_size: int, generator: torch.Generator) -> Tensor:
        """``batch_size`` indices drawn uniformly with replacement from the inner or outer samples."""
        n = self.n_inner if which == "inner" else self.n_outer
        return torch.randint(n, (min(batch_size, n),), generator=generator, device=self.device)

    def sampler(self, which: str, batch_size: int, generator: torch.Generator) -> Callable[[], Tensor]:
        """A solver's source of inner or outer minibatches under the problem's ``sampling``."""
        if self.sampling == "batches":
            return FixedBatches(self.n_inner if which == "inner" else self.n_outer, batch_size, generator, self.device)
        if self.sampling != "iid":
            raise ValueError(f"{self.name}: unknown sampling {self.sampling!r}; valid: {', '.join(SAMPLINGS)}")
        return lambda: self.draw(which, batch_size, generator)

    # --- helpers --------------------------------------------------------------------------------------------
    @staticmethod
    def _select(data: tuple[Tensor, ...], idx: Tensor | None) -> tuple[Tensor, ...]:
        return data if idx is None else tuple(t[idx] for t in data)

    def count(self, batch: int, *kinds: str) -> None:
        """Count one call of each of ``kinds`` on ``batch`` samples, and the samples once (what every oracle does;
        for a solver that forms the oracles' quantities itself, e.g. from ``linear_model()``)."""
        self.samples += batch
        self.oracles.add(batch, kinds)

    def _count(self, n: int, idx: Tensor | None, *kinds: str) -> None:
        self.count(n if idx is None else idx.shape[0], *kinds)

    def _x_local(self, x: Tensor, idx: Tensor | None) -> Tensor:
        return x if (idx is None or not self.per_sample_x) else x[idx]

    @property
    def _x_dim(self) -> int | None:
        return 0 if self.per_sample_x else None

    def rows_to_x(self, rows: Tensor, idx: Tensor | None) -> Tensor:
        """Sum of per-sample cross terms ``rows`` (from ``inner_per_sample``) as a vector in x's space."""
        if not self.per_sample_x:
            return rows.sum(0)
        out = torch.zeros_like(self.x0, dtype=rows.dtype)
        return out + rows[:, 0] if idx is None else out.index_add_(0, idx, rows[:, 0])

    # --- values ---------------------------------------------------------------------------------------------
    def _inner_mean(self, z: Tensor, x: Tensor, idx: Tensor | None) -> Tensor:
        return self.g(z, self._x_local(x, idx), *self._select(self.inner_data, idx)).mean()

    def _outer_mean(self, z: Tensor, x: Tensor, idx: Tensor | None) -> Tensor:
        return self.f(z, x, *self._select(self.outer_data, idx)).mean()

    def inner_value(self, z: Tensor, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """G_B(z, x): the mean of g_i over the batch ``idx`` (all samples when None)."""
        self._count(self.n_inner, idx, INNER_VALUE)
        return self._inner_mean(z, x, idx)

    def outer_value(self, z: Tensor, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """F_B(z, x): the mean of f_j over the batch ``idx``."""
        self._count(self.n_outer, idx, OUTER_VALUE)
        return self._outer_mean(z, x, idx)

    # --- batch-mean oracles (reverse mode on the batched loss) ----------------------------------------------
    def inner_grad(self, z: Tensor, x: Tensor, idx: Tensor | None) -> Tensor:
        """d_z G_B(z, x)."""
        self._count(self.n_inner, idx, INNER_GRAD)
        if self.closed is not None:
            return self.closed.inner_grad(z, x, self.inner_data, idx)
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            return torch.autograd.grad(self._inner_mean(z, x, idx), z)[0]

    def inner_hvp(self, z: Tensor, x: Tensor, v: Tensor, idx: Tensor | None) -> Tensor:
        """d2_zz G_B(z, x) v."""
        self._count(self.n_inner, idx, INNER_HVP)
        if self.closed is not None:
            return self.closed.inner_hvp(z, x, v, self.inner_data, idx)
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            gz = torch.autograd.grad(self._inner_mean(z, x, idx), z, create_graph=True)[0]
            return _grads(gz, (z,), v)[0]

    def inner_hessian(self, z: Tensor, x: Tensor) -> Tensor:
        """The dense full-batch Hessian d2_zz G(z, x), one Hessian-vector product per column (small dim z)."""
        columns = [self.inner_hvp(z, x, e, None) for e in torch.eye(z.numel(), dtype=z.dtype, device=z.device)]
        return torch.stack(columns, 1)

    def inner_cross(self, z: Tensor, x: Tensor, v: Tensor, idx: Tensor | None) -> Tensor:
        """d2_xz G_B(z, x) v, in x's space."""
        self._count(self.n_inner, idx, INNER_CROSS)
        if self.closed is not None:
            return self.closed.inner_cross(z, x, v, self.inner_data, idx)
        with torch.enable_grad():
            z, x = z.detach().requires_grad_(True), x.detach().requires_grad_(True)
            gz = torch.autograd.grad(self._inner_mean(z, x, idx), z, create_graph=True)[0]
            return _grads(gz, (x,), v)[0]

    def inner_oracles(self, z: Tensor, x: Tensor, v: Tensor, idx: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """(d_z G_B, d2_zz G_B v, d2_xz G_B v): a gradient, then one double-backward with v."""
        self._count(self.n_inner, idx, *INNER)
        if self.closed is not None:
            return self.closed.inner_oracles(z, x, v, self.inner_data, idx)
        with torch.enable_grad():
            z, x = z.detach().requires_grad_(True), x.detach().requires_grad_(True)
            gz = torch.autograd.grad(self._inner_mean(z, x, idx), z, create_graph=True)[0]
            hv, cross = _grads(gz, (z, x), v)
        return gz.detach(), hv, cross

    def outer_grad(self, z: Tensor, x: Tensor, idx: Tensor | None) -> tuple[Tensor, Tensor]:
        """(d_z F_B, d_x F_B)."""
        self._count(self.n_outer, idx, OUTER_GRAD)
        if self.closed is not None:
            return self.closed.outer_grad(z, x, self.outer_data, idx)
        with torch.enable_grad():
            z, x = z.detach().requires_grad_(True), x.detach().requires_grad_(self.outer_uses_x)
            grads = _grads(self._outer_mean(z, x, idx), (z, x) if self.outer_uses_x else (z,))
        return grads if self.outer_uses_x else (grads[0], torch.zeros_like(x))

    # --- per-sample oracles (reverse mode on one copy of the variables per sample) -------------------------
    def inner_per_sample(self, z: Tensor, x: Tensor, v: Tensor, idx: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample (d_z g_i, d2_zz g_i v, d2_xz g_i v) as rows; cross rows are (B, 1) when ``per_sample_x``."""
        self._count(self.n_inner, idx, *INNER)
        if self.closed is not None:
            return self.closed.inner_per_sample(z, x, v, self.inner_data, idx)
        data = self._select(self.inner_data, idx)
        with torch.enable_grad():
            zs = _copies(z, data[0].shape[0])
            xs = self._x_local(x, idx) if self.per_sample_x else _copies(x, data[0].shape[0])
            xs = xs.detach().requires_grad_(True)
            gz = torch.autograd.grad(self.g(zs, xs, *data).sum(), zs, create_graph=True)[0]
            hv, cross = _grads(gz, (zs, xs), v)
        return gz.detach(), hv, cross.reshape(cross.shape[0], -1)

    def outer_per_sample(self, z: Tensor, x: Tensor, idx: Tensor | None) -> tuple[Tensor, Tensor]:
        """Per-sample (d_z f_j, d_x f_j) as rows; the x rows have width 0 when F does not depend on x."""
        self._count(self.n_outer, idx, OUTER_GRAD)
        if self.closed is not None:
            return self.closed.outer_per_sample(z, x, self.outer_data, idx)
        data = self._select(self.outer_data, idx)
        with torch.enable_grad():
            zs = _copies(z, data[0].shape[0])
            if not self.outer_uses_x:
                fz = _grads(self.f(zs, x, *data).sum(), (zs,))[0]
                return fz, fz.new_zeros(fz.shape[0], 0)
            xs = _copies(x, data[0].shape[0])
            return _grads(self.f(zs, xs, *data).sum(), (zs, xs))


def dot(data: Tensor, variable: Tensor) -> Tensor:
    """Inner products over the last dimension of samples' ``data`` with a ``variable`` that is one vector (a
    matrix-vector product: fast on a full batch) or one copy per sample (per-sample oracles)."""
    return data @ variable if variable.dim() == 1 else (data * variable).sum(-1)


def matvec(data: Tensor, variable: Tensor, columns: int) -> Tensor:
    """data @ Z for the matrix Z (dim data x ``columns``) that ``variable`` holds flat, or one such per sample."""
    z = variable.view(*variable.shape[:-1], data.shape[-1], columns)
    return data @ z if variable.dim() == 1 else (data.unsqueeze(-2) @ z).squeeze(-2)


def _copies(t: Tensor, n: int) -> Tensor:
    """n copies of ``t`` along a new first dimension (a view), a leaf that requires grad."""
    return t.detach().expand(n, *t.shape).requires_grad_(True)


def _grads(output: Tensor, inputs: tuple[Tensor, ...], weight: Tensor | None = None) -> tuple[Tensor, ...]:
    """d <output, weight> / d inputs, with zeros for inputs the output does not depend on."""
    weight = None if weight is None else weight.expand_as(output)
    found = torch.autograd.grad(output, inputs, grad_outputs=weight, allow_unused=True)
    return tuple(torch.zeros_like(i) if g is None else g for g, i in zip(found, inputs, strict=True))
