"""The quadratic bilevel instance of benchopt's bilevel benchmark, with its closed-form value function.

    g_i(z, x) = 1/2 z^T A_i z + 1/2 x^T B_i x + x^T C_i z + a_i^T z + b_i^T x,   f_j likewise with its own samples.

Each A_i = u_i u_i^T, B_i = w_i w_i^T, C_i = c_i e_i^T is rank one (as in benchopt's generator), built from
whitened Gaussian vectors so that the averages have exactly the set spectra: eigenvalues of A and B log-spaced
in [mu, L], singular values of C log-spaced in [min(mu, L_cross), L_cross]. With the averaged matrices,
z*(x) = J x + z_0 (J = -A^-1 C^T, z_0 = -A^-1 a) and h(x) = F(z*(x), x) is the quadratic
H = J^T A' J + B' + C' J + J^T C'^T,  q = J^T A' z_0 + C' z_0 + J^T a' + b',  c = 1/2 z_0^T A' z_0 + a'^T z_0,
whose smallest eigenvalue is the PL constant. A draw whose H is not positive definite is redrawn (benchopt too).

Two generators of the per-sample vectors:
- ``quadratic_problem`` (the task's ``quadratic``): whitened samples, so the averaged matrices have exactly the set
  spectra; x0 = 0; a draw is kept when the smallest eigenvalue of H is at least 1e-3.
- ``benchopt_problem`` (``quadratic-benchopt``): benchopt's ``simulated`` dataset (benchmark_bilevel,
  ``benchmark_utils/gen_matrices.py``): u_i = xi_i R_A with R_A = P diag(sqrt of logspace(mu, L)) P^T, so the averaged
  A is an empirical covariance with that expected spectrum; w_i likewise with an exact zero eigenvalue besides
  logspace(mu, L) on d_x - 1 directions; c_i = Q S xi'_i and e_i = Vh xi'_i from one Gaussian xi'_i, with
  Q S Vh^T the expected cross matrix (S: singular values logspace(mu, L_cross)); a_i, b_i standard Gaussian;
  z0 = 0, x0 = -2 (benchopt's starting point); a draw is kept when H's smallest eigenvalue is at least 1e-12.

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


def _logspace(low: float, high: float, k: int) -> Tensor:
    return torch.logspace(math.log10(low), math.log10(high), k, dtype=DTYPE)


def _samples(n: int, dim_z: int, dim_x: int, mu: float, lip: float, lip_cross: float, gen: torch.Generator):
    """Per-sample vectors (u, w, c, e, a, b) of one finite sum, side by side in the rows of one matrix."""
    root_a = _orthonormal(dim_z, dim_z, gen) * _logspace(mu, lip, dim_z).sqrt()
    root_b = _orthonormal(dim_x, dim_x, gen) * _logspace(mu, lip, dim_x).sqrt()
    k = min(dim_z, dim_x)
    s = _logspace(min(mu, lip_cross), lip_cross, k).sqrt()
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
    """h(x) = 1/2 x^T H x + q^T x + c from the averaged inner and outer matrices (module docstring)."""
    a_in, _, c_in, lin_in, _ = _averages(inner, dim_z, dim_x)
    a_out, b_out, c_out, lin_z_out, lin_x_out = _averages(outer, dim_z, dim_x)
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
    sampling: str = "iid",
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
    return BilevelProblem(
        name=name,
        dataset=dataset,
        g=quadratic_loss,
        f=quadratic_loss,
        inner_data=(inner,),
        outer_data=(outer,),
        z0=torch.zeros(dim_z, dtype=DTYPE),
        x0=torch.full((dim_x,), x0, dtype=DTYPE),
        closed_form=form,
        closed=QuadraticOracles(),
        sampling=sampling,
    )


def _root(d: int, spectrum: Tensor, gen: torch.Generator) -> Tensor:
    """P diag(sqrt(spectrum)) P^T for a random orthogonal P: rows xi R have covariance P diag(spectrum) P^T."""
    basis = _orthonormal(d, d, gen)
    return basis * spectrum.sqrt() @ basis.T


def _benchopt_samples(n: int, dim_z: int, dim_x: int, mu: float, lip: float, lip_cross: float, gen: torch.Generator):
    """Per-sample vectors (u, w, c, e, a, b) of one finite sum, as benchopt's ``gen_matrices`` draws them, side by
    side in the rows of one matrix."""
    root_a = _root(dim_z, _logspace(mu, lip, dim_z), gen)
    root_b = _root(dim_x, torch.cat([torch.zeros(1, dtype=DTYPE), _logspace(mu, lip, dim_x - 1)]), gen)
    k = min(dim_z, dim_x)
    left, _, right_t = torch.linalg.svd(torch.randn(dim_x, dim_z, generator=gen, dtype=DTYPE))
    singular = torch.zeros(dim_x, dim_z, dtype=DTYPE)
    singular[range(k), range(k)] = _logspace(mu, lip_cross, k)
    u = torch.randn(n, dim_z, generator=gen, dtype=DTYPE) @ root_a
    w = torch.randn(n, dim_x, generator=gen, dtype=DTYPE) @ root_b
    xi = torch.randn(n, dim_z, generator=gen, dtype=DTYPE)
    c, e = xi @ (left @ singular).T, xi @ right_t.T
    a, b = torch.randn(n, dim_z, generator=gen, dtype=DTYPE), torch.randn(n, dim_x, generator=gen, dtype=DTYPE)
    return torch.cat([u, w, c, e, a, b], 1)


def benchopt_problem(
    n_inner: int,
    n_outer: int,
    dim_z: int,
    dim_x: int,
    mu: float = 0.1,
    lip: float = 1.0,
    lip_cross: float = 0.1,
    seed: int = 2442,
    min_eig: float = 1e-12,
) -> BilevelProblem:
    """benchopt's ``simulated`` quadratic (module docstring), sampled by benchopt's fixed batches; x0 = -2."""
    draw = _benchopt_samples, (n_inner, n_outer, dim_z, dim_x, mu, lip, lip_cross), seed, min_eig
    dataset = f"benchopt-simulated-{dim_z}x{dim_x}-n{n_inner}-m{n_outer}"
    return _problem("quadratic-benchopt", dataset, *draw, x0=-2.0, sampling="batches")
