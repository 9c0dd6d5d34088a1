"""benchmark_bilevel's ``simulated`` quadratic (``quadratic-benchopt``): its generator's distribution, dtype,
acceptance test and starting point (``benchmark_utils/gen_matrices.py``, ``datasets/simulated.py``,
``objective.py`` of github.com/benchopt/benchmark_bilevel).

The quadratic and its value function are those of ``suites.bilevel.quadratic``: g_i has A_i = u_i u_i^T,
B_i = w_i w_i^T, C_i = c_i e_i^T and linear terms a_i, b_i; f_j likewise from its own draw. One finite sum draws

    u_i = R_A xi_i,    R_A = P_A diag(sqrt(logspace(mu, L, d_z))) P_A^T,
    w_i = R_B zeta_i,  R_B = P_B diag(0, sqrt(logspace(mu, L, d_x - 1))) P_B^T,
    c_i = U D xi'_i,   e_i = V^T xi'_i,      a_i ~ N(0, I_{d_z}),  b_i ~ N(0, I_{d_x}),

xi_i, zeta_i, xi'_i standard Gaussian, so E[A_i] = R_A^2, E[B_i] = R_B^2 (an exact zero eigenvalue) and
E[C_i] = U D V with D the (d_x, d_z) diagonal logspace(mu, L_cross). U, V are the singular bases of a (d_x, d_z)
Gaussian matrix. P_A and P_B are the left singular basis of ONE (d, 1) Gaussian vector g each: the Householder
reflector that LAPACK's SVD returns for such a matrix (columns up to sign, which R = P D P^T does not see),

    P = I - 2 w w^T / |w|^2,   w = g + sign(g_1) |g| e_1,

close to the identity, not a Haar basis: P_11 = -|g_1| / |g| and P_ii = 1 - g_i^2 / (|g| (|g| + |g_1|)), so
E mean_i |P_ii| = 1 - 2/d + (2/d) E|g_1|/|g| (0.982 for d = 100; a Haar basis gives about sqrt(2 / (pi d))).

The samples are stored in float32 (JAX's default dtype: benchopt does not enable x64); h* and the acceptance test
use them in float64. z0 = 0, x0 = -2 (benchopt's objective). ONE draw, kept when benchopt's test passes:

    lambda_min(J^T A'_f J + B'_f + 1/2 (C'_f J + J^T C'_f^T)) >= 1e-12,   J = -A'_g^-1 C'_g^T,

benchopt's matrix, whose cross term is half of the value function's Hessian's (C'_f J + J^T C'_f^T). benchopt
retries 20 times but re-splits the same key, so a draw that fails fails every try and it raises: so does this
generator, and it raises as well when the test passes but H itself is not positive definite (h unbounded below,
no h*). Minibatches come from benchopt's sampler (``sampling="batches"``, ``suites.bilevel.sampling``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from suites.bilevel.problem import BilevelProblem
from suites.bilevel.quadratic import DTYPE, assemble, closed_form, logspace, split

STORED = torch.float32  # JAX's default dtype, benchopt's
ACCEPT = 1e-12  # benchopt's threshold on its matrix's smallest eigenvalue
X0 = -2.0  # benchopt's outer starting point (inner: 0)


def reflector(g: Tensor) -> Tensor:
    """P = I - 2 w w^T / |w|^2, w = g + sign(g_1) |g| e_1: the left singular basis of the (d, 1) matrix g
    (LAPACK's, up to the signs of columns)."""
    w = g.clone()
    w[0] += math.copysign(float(g.norm()), float(g[0]))
    return torch.eye(g.numel(), dtype=g.dtype) - 2 * torch.outer(w, w) / (w @ w)


def root(d: int, spectrum: Tensor, gen: torch.Generator) -> Tensor:
    """R = P diag(sqrt(spectrum)) P^T, P the ``reflector`` of one (d,) Gaussian vector drawn from ``gen``."""
    basis = reflector(torch.randn(d, generator=gen, dtype=DTYPE))
    return basis * spectrum.sqrt() @ basis.T


def samples(n: int, dim_z: int, dim_x: int, mu: float, lip: float, lip_cross: float, gen: torch.Generator) -> Tensor:
    """Per-sample vectors (u, w, c, e, a, b) of one finite sum (module docstring), side by side in the rows of one
    float64 matrix."""
    root_a = root(dim_z, logspace(mu, lip, dim_z), gen)
    root_b = root(dim_x, torch.cat([torch.zeros(1, dtype=DTYPE), logspace(mu, lip, dim_x - 1)]), gen)
    k = min(dim_z, dim_x)
    left, _, right_t = torch.linalg.svd(torch.randn(dim_x, dim_z, generator=gen, dtype=DTYPE))
    singular = torch.zeros(dim_x, dim_z, dtype=DTYPE)
    singular[range(k), range(k)] = logspace(mu, lip_cross, k)
    u = torch.randn(n, dim_z, generator=gen, dtype=DTYPE) @ root_a
    w = torch.randn(n, dim_x, generator=gen, dtype=DTYPE) @ root_b
    xi = torch.randn(n, dim_z, generator=gen, dtype=DTYPE)
    c, e = xi @ (left @ singular).T, xi @ right_t.T
    a, b = torch.randn(n, dim_z, generator=gen, dtype=DTYPE), torch.randn(n, dim_x, generator=gen, dtype=DTYPE)
    return torch.cat([u, w, c, e, a, b], 1)


def benchopt_min_eig(inner: Tensor, outer: Tensor, dim_z: int, dim_x: int) -> float:
    """The smallest eigenvalue of benchopt's matrix J^T A'_f J + B'_f + 1/2 (C'_f J + J^T C'_f^T) (module
    docstring), in float64."""
    u, _, c, e, _, _ = split(inner.to(DTYPE), dim_z, dim_x)
    a_in, c_in = u.T @ u / u.shape[0], c.T @ e / u.shape[0]
    u, w, c, e, _, _ = split(outer.to(DTYPE), dim_z, dim_x)
    a_out, b_out, c_out = u.T @ u / u.shape[0], w.T @ w / u.shape[0], c.T @ e / u.shape[0]
    jac = -torch.linalg.solve(a_in, c_in.T)
    cross = c_out @ jac
    return float(torch.linalg.eigvalsh(jac.T @ a_out @ jac + b_out + 0.5 * (cross + cross.T))[0])


def benchopt_problem(
    n_inner: int,
    n_outer: int,
    dim_z: int,
    dim_x: int,
    mu: float = 0.1,
    lip: float = 1.0,
    lip_cross: float = 0.1,
    seed: int = 2442,
    min_eig: float = ACCEPT,
    dtype: torch.dtype = STORED,
) -> BilevelProblem:
    """benchopt's ``simulated`` quadratic (module docstring): one draw from ``seed``, stored in ``dtype``, kept if
    benchopt's matrix has its smallest eigenvalue >= ``min_eig`` (else ValueError, as benchopt); sampled by
    benchopt's fixed batches; z0 = 0, x0 = -2."""
    gen = torch.Generator().manual_seed(seed)
    inner = samples(n_inner, dim_z, dim_x, mu, lip, lip_cross, gen).to(dtype)
    outer = samples(n_outer, dim_z, dim_x, mu, lip, lip_cross, gen).to(dtype)
    where = f"quadratic-benchopt (seed {seed}, n={n_inner}, m={n_outer}, dims {dim_z}x{dim_x})"
    accept = benchopt_min_eig(inner, outer, dim_z, dim_x)
    if accept < min_eig:
        raise ValueError(
            f"{where}: benchopt's test rejects the draw (smallest eigenvalue {accept:.3g} < {min_eig:g}); "
            "benchopt raises too (its 20 tries repeat the same key): choose another seed"
        )
    form = closed_form(inner, outer, dim_z, dim_x)
    if form.pl_constant <= 0:
        raise ValueError(
            f"{where}: benchopt's test accepts the draw but the value function's Hessian has "
            f"eigenvalue {form.pl_constant:.3g} <= 0 (h unbounded below): choose another seed"
        )
    dataset = f"benchopt-simulated-{dim_z}x{dim_x}-n{n_inner}-m{n_outer}-{str(dtype).removeprefix('torch.')}"
    return assemble("quadratic-benchopt", dataset, (inner, outer), (dim_z, dim_x), form, X0, "batches")
