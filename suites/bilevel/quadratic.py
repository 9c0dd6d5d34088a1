"""The quadratic bilevel instance of benchopt's bilevel benchmark, with its closed-form value function.

    g_i(z, x) = 1/2 z^T A_i z + 1/2 x^T B_i x + x^T C_i z + a_i^T z + b_i^T x,   f_j likewise with its own samples.

Each A_i = u_i u_i^T, B_i = w_i w_i^T, C_i = c_i e_i^T is rank one (as in benchopt's generator), built from
whitened Gaussian vectors so that the averages have exactly the set spectra: eigenvalues of A and B log-spaced
in [mu, L], singular values of C log-spaced in [min(mu, L_cross), L_cross]. With the averaged matrices,
z*(x) = J x + z_0 (J = -A^-1 C^T, z_0 = -A^-1 a) and h(x) = F(z*(x), x) is the quadratic
H = J^T A' J + B' + C' J + J^T C'^T,  q = J^T A' z_0 + C' z_0 + J^T a' + b',  c = 1/2 z_0^T A' z_0 + a'^T z_0,
whose smallest eigenvalue is the PL constant. A draw whose H is not positive definite is redrawn (benchopt too).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from suites.bilevel.problem import BilevelProblem, ClosedForm, dot

DTYPE = torch.float64


def quadratic_loss(z: Tensor, x: Tensor, u: Tensor, w: Tensor, c: Tensor, e: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """One sample: 1/2 (u.z)^2 + 1/2 (w.x)^2 + (c.x)(e.z) + a.z + b.x (broadcast over leading batch dimensions)."""
    return 0.5 * dot(u, z) ** 2 + 0.5 * dot(w, x) ** 2 + dot(c, x) * dot(e, z) + dot(a, z) + dot(b, x)


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
    """Per-sample vectors (u, w, c, e, a, b) of one finite sum."""
    root_a = _orthonormal(dim_z, dim_z, gen) * _logspace(mu, lip, dim_z).sqrt()
    root_b = _orthonormal(dim_x, dim_x, gen) * _logspace(mu, lip, dim_x).sqrt()
    k = min(dim_z, dim_x)
    s = _logspace(min(mu, lip_cross), lip_cross, k).sqrt()
    left, right = _orthonormal(dim_x, k, gen) * s, _orthonormal(dim_z, k, gen) * s
    zeta = _whitened(n, k, gen)
    return (
        _whitened(n, dim_z, gen) @ root_a.T,
        _whitened(n, dim_x, gen) @ root_b.T,
        zeta @ left.T,
        zeta @ right.T,
        torch.randn(n, dim_z, generator=gen, dtype=DTYPE),
        torch.randn(n, dim_x, generator=gen, dtype=DTYPE),
    )


def _averages(data: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    u, w, c, e, a, b = data
    n = u.shape[0]
    return u.T @ u / n, w.T @ w / n, c.T @ e / n, a.mean(0), b.mean(0)


def closed_form(inner: tuple[Tensor, ...], outer: tuple[Tensor, ...]) -> ClosedForm:
    """h(x) = 1/2 x^T H x + q^T x + c from the averaged inner and outer matrices (module docstring)."""
    a_in, _, c_in, lin_in, _ = _averages(inner)
    a_out, b_out, c_out, lin_z_out, lin_x_out = _averages(outer)
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
    for attempt in range(20):
        gen = torch.Generator().manual_seed(seed + attempt)
        inner = _samples(n_inner, dim_z, dim_x, mu, lip, lip_cross, gen)
        outer = _samples(n_outer, dim_z, dim_x, mu, lip, lip_cross, gen)
        form = closed_form(inner, outer)
        if form.pl_constant >= min_eig:
            break
    else:
        raise ValueError(f"quadratic: no draw with a positive definite value function in 20 tries (seed {seed})")
    return BilevelProblem(
        name="quadratic",
        dataset=f"quadratic-{dim_z}x{dim_x}-n{n_inner}-m{n_outer}",
        g=quadratic_loss,
        f=quadratic_loss,
        inner_data=inner,
        outer_data=outer,
        z0=torch.zeros(dim_z, dtype=DTYPE),
        x0=torch.zeros(dim_x, dtype=DTYPE),
        closed_form=form,
    )
