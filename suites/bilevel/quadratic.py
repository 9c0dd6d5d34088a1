"""The quadratic bilevel instance of benchopt's bilevel benchmark, with its closed-form value function.

    g_i(z, x) = 1/2 z^T A_i z + 1/2 x^T B_i x + x^T C_i z + a_i^T z + b_i^T x,   f_j likewise with its own samples.

Each A_i = u_i u_i^T, B_i = w_i w_i^T, C_i = c_i e_i^T is rank one (as in benchopt's generator). With the averaged
matrices, z*(x) = J x + z_0 (J = -A^-1 C^T, z_0 = -A^-1 a) and h(x) = F(z*(x), x) is the quadratic
H = J^T A' J + B' + C' J + J^T C'^T,  q = J^T A' z_0 + C' z_0 + J^T a' + b',  c = 1/2 z_0^T A' z_0 + a'^T z_0,
whose smallest eigenvalue is the PL constant.

Two generators of the per-sample vectors:
- ``quadratic_problem`` (the task's ``quadratic``): whitened Gaussian vectors and Haar-random bases, so that the
  averages have exactly the set spectra (eigenvalues of A and B log-spaced in [mu, L], singular values of C
  log-spaced in [min(mu, L_cross), L_cross]); float64; x0 = 0; a draw whose H has its smallest eigenvalue below
  ``min_eig`` (1e-3) is redrawn with the next seed.
- ``suites.bilevel.simulated.benchopt_problem`` (``quadratic-benchopt``): benchmark_bilevel's ``simulated``
  generator, its distribution, dtype, acceptance test and starting point.

Every g_i is a generalised linear model in (z, x): its derivatives are rank-one rows with per-sample scalar
coefficients (``QuadraticOracles``, the problem's closed-form oracles):
    d_z g_i = (u.z) u + (c.x) e + a,   d2_zz g_i v = (u.v) u,   d2_xz g_i v = (e.v) c,
    d_x g_i = (w.x) w + (e.z) c + b.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from suites.bilevel.closed import Data
from suites.bilevel.problem import BilevelProblem, ClosedForm, dot

DTYPE = torch.float64


def split(m: Tensor, dim_z: int, dim_x: int) -> tuple[Tensor, ...]:
    """Views (u, w, c, e, a, b) of the samples' vectors, stored side by side in the rows of ``m`` (one gather
    selects a batch of all six)."""
    return torch.split(m, (dim_z, dim_x, dim_x, dim_z, dim_z, dim_x), -1)


def quadratic_loss(z: Tensor, x: Tensor, m: Tensor) -> Tensor:
    """One sample (the row ``m`` of its vectors): 1/2 (u.z)^2 + 1/2 (w.x)^2 + (c.x)(e.z) + a.z + b.x (broadcast over
    leading batch dimensions)."""
    u, w, c, e, a, b = split(m, z.shape[-1], x.shape[-1])
    return 0.5 * dot(u, z) ** 2 + 0.5 * dot(w, x) ** 2 + dot(c, x) * dot(e, z) + dot(a, z) + dot(b, x)


class QuadraticOracles:
    """The quadratic's oracles in closed form (module docstring): one gather selects the batch's vectors, a batch
    mean is the batch's rows summed by one matrix-vector product per term."""

    @staticmethod
    def _batch(z: Tensor, x: Tensor, data: Data, idx: Tensor | None) -> tuple[Tensor, ...]:
        return split(data[0] if idx is None else data[0].index_select(0, idx), z.numel(), x.numel())

    def inner_grad(self, z: Tensor, x: Tensor, inner: Data, idx: Tensor | None) -> Tensor:
        u, _, c, e, a, _ = self._batch(z, x, inner, idx)
        return (u.T @ (u @ z) + e.T @ (c @ x)) / u.shape[0] + a.mean(0)

    def inner_hvp(self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None) -> Tensor:
        u = self._batch(z, x, inner, idx)[0]
        return u.T @ (u @ v) / u.shape[0]

    def inner_cross(self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None) -> Tensor:
        _, _, c, e, _, _ = self._batch(z, x, inner, idx)
        return c.T @ (e @ v) / c.shape[0]

    def inner_oracles(
        self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        u, _, c, e, a, _ = self._batch(z, x, inner, idx)
        n = u.shape[0]
        gz = (u.T @ (u @ z) + e.T @ (c @ x)) / n + a.mean(0)
        return gz, u.T @ (u @ v) / n, c.T @ (e @ v) / n

    def outer_grad(self, z: Tensor, x: Tensor, outer: Data, idx: Tensor | None) -> tuple[Tensor, Tensor]:
        u, w, c, e, a, b = self._batch(z, x, outer, idx)
        n = u.shape[0]
        return (u.T @ (u @ z) + e.T @ (c @ x)) / n + a.mean(0), (w.T @ (w @ x) + c.T @ (e @ z)) / n + b.mean(0)

    def inner_per_sample(
        self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        u, _, c, e, a, _ = self._batch(z, x, inner, idx)
        gz = torch.addcmul(torch.addcmul(a, (u @ z)[:, None], u), (c @ x)[:, None], e)
        return gz, (u @ v)[:, None] * u, (e @ v)[:, None] * c

    def outer_per_sample(self, z: Tensor, x: Tensor, outer: Data, idx: Tensor | None) -> tuple[Tensor, Tensor]:
        u, w, c, e, a, b = self._batch(z, x, outer, idx)
        fz = torch.addcmul(torch.addcmul(a, (u @ z)[:, None], u), (c @ x)[:, None], e)
        return fz, torch.addcmul(torch.addcmul(b, (w @ x)[:, None], w), (e @ z)[:, None], c)

    def linear_model(self, inner: Data, outer: Data) -> None:
        """None: a sample's rows are not a scalar times its features (A_i z is a vector)."""
        return None


def _whitened(n: int, d: int, gen: torch.Generator) -> Tensor:
    """(n, d) Gaussian rows whose empirical second moment is exactly the identity."""
    xi = torch.randn(n, d, generator=gen, dtype=DTYPE)
    chol = torch.linalg.cholesky(xi.T @ xi / n)
    return torch.linalg.solve_triangular(chol, xi.T, upper=False).T


def _orthonormal(d: int, k: int, gen: torch.Generator) -> Tensor:
    return torch.linalg.qr(torch.randn(d, k, generator=gen, dtype=DTYPE))[0]


def logspace(low: float, high: float, k: int) -> Tensor:
    """k values log-spaced from ``low`` to ``high``, float64."""
    return torch.logspace(math.log10(low), math.log10(high), k, dtype=DTYPE)


def _samples(n: int, dim_z: int, dim_x: int, mu: float, lip: float, lip_cross: float, gen: torch.Generator):
    """Per-sample vectors (u, w, c, e, a, b) of one finite sum, side by side in the rows of one matrix."""
    root_a = _orthonormal(dim_z, dim_z, gen) * logspace(mu, lip, dim_z).sqrt()
    root_b = _orthonormal(dim_x, dim_x, gen) * logspace(mu, lip, dim_x).sqrt()
    k = min(dim_z, dim_x)
    s = logspace(min(mu, lip_cross), lip_cross, k).sqrt()
    left, right = _orthonormal(dim_x, k, gen) * s, _orthonormal(dim_z, k, gen) * s
    zeta = _whitened(n, k, gen)
    return torch.cat([
        _whitened(n, dim_z, gen) @ root_a.T,
        _whitened(n, dim_x, gen) @ root_b.T,
        zeta @ left.T,
        zeta @ right.T,
        torch.randn(n, dim_z, generator=gen, dtype=DTYPE),
        torch.randn(n, dim_x, generator=gen, dtype=DTYPE),
    ], 1)  # fmt: skip


def _averages(data: Tensor, dim_z: int, dim_x: int) -> tuple[Tensor, ...]:
    u, w, c, e, a, b = split(data, dim_z, dim_x)
    n = u.shape[0]
    return u.T @ u / n, w.T @ w / n, c.T @ e / n, a.mean(0), b.mean(0)


def closed_form(inner: Tensor, outer: Tensor, dim_z: int, dim_x: int) -> ClosedForm:
    """h(x) = 1/2 x^T H x + q^T x + c from the averaged inner and outer matrices (module docstring), in float64."""
    a_in, _, c_in, lin_in, _ = _averages(inner.to(DTYPE), dim_z, dim_x)
    a_out, b_out, c_out, lin_z_out, lin_x_out = _averages(outer.to(DTYPE), dim_z, dim_x)
    jac = -torch.linalg.solve(a_in, c_in.T)
    z_0 = -torch.linalg.solve(a_in, lin_in)
    cross = c_out @ jac
    hess = jac.T @ a_out @ jac + b_out + cross + cross.T
    linear = jac.T @ (a_out @ z_0) + c_out @ z_0 + jac.T @ lin_z_out + lin_x_out
    const = float(0.5 * z_0 @ (a_out @ z_0) + lin_z_out @ z_0)
    return ClosedForm(0.5 * (hess + hess.T), linear, const)


def quadratic_problem(
    n_inner: int,
    n_outer: int,
    dim_z: int,
    dim_x: int,
    mu: float = 0.1,
    lip: float = 1.0,
    lip_cross: float = 0.1,
    seed: int = 2442,
    min_eig: float = 1e-3,
) -> BilevelProblem:
    """A quadratic instance whose value function is mu_h-strongly convex with mu_h >= ``min_eig``."""
    if n_inner < dim_z or n_outer < dim_z or min(n_inner, n_outer) < dim_x:
        raise ValueError(f"quadratic: need at least as many samples as dimensions, got n={n_inner}, m={n_outer}")
    draw = _samples, (n_inner, n_outer, dim_z, dim_x, mu, lip, lip_cross), seed, min_eig
    return _problem("quadratic", f"quadratic-{dim_z}x{dim_x}-n{n_inner}-m{n_outer}", *draw, x0=0.0)


def _problem(
    name: str,
    dataset: str,
    sampler: Callable[..., Tensor],
    sizes: tuple[int, int, int, int, float, float, float],
    seed: int,
    min_eig: float,
    x0: float,
) -> BilevelProblem:
    """The problem whose inner and outer samples ``sampler`` draws, redrawn (the seed advanced) until its value
    function's Hessian has its smallest eigenvalue >= ``min_eig``, in 20 draws at most; z0 = 0, x0 = ``x0``."""
    n_inner, n_outer, dim_z, dim_x, mu, lip, lip_cross = sizes
    for attempt in range(20):
        gen = torch.Generator().manual_seed(seed + attempt)
        inner = sampler(n_inner, dim_z, dim_x, mu, lip, lip_cross, gen)
        outer = sampler(n_outer, dim_z, dim_x, mu, lip, lip_cross, gen)
        form = closed_form(inner, outer, dim_z, dim_x)
        if form.pl_constant >= min_eig:
            break
    else:
        raise ValueError(f"{name}: no draw with a positive definite value function in 20 tries (seed {seed})")
    return assemble(name, dataset, (inner, outer), (dim_z, dim_x), form, x0, "iid")


def assemble(
    name: str,
    dataset: str,
    samples: tuple[Tensor, Tensor],
    dims: tuple[int, int],
    form: ClosedForm,
    x0: float,
    sampling: str,
) -> BilevelProblem:
    """The quadratic problem on the (inner, outer) ``samples`` (in their dtype) with value function ``form``:
    z0 = 0, x0 = ``x0``, minibatches by ``sampling``."""
    (inner, outer), (dim_z, dim_x) = samples, dims
    return BilevelProblem(
        name=name,
        dataset=dataset,
        g=quadratic_loss,
        f=quadratic_loss,
        inner_data=(inner,),
        outer_data=(outer,),
        z0=torch.zeros(dim_z, dtype=inner.dtype),
        x0=torch.full((dim_x,), x0, dtype=inner.dtype),
        closed_form=form,
        closed=QuadraticOracles(),
        sampling=sampling,
    )
