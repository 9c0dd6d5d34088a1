"""Kernels of fully connected ReLU nets: analytic infinite-width NNGP and NTK, empirical NTK of a finite net.

The network (NTK parametrisation, Jacot et al. 2018; the discriminator of Franceschi et al. 2022, GAN(TK)^2's
``mlp``): L hidden ReLU layers of width n, weights and biases drawn N(0, 1),

    h^1(x)     = sigma_w / sqrt(d) W^1 x + sigma_b b^1
    h^{l+1}(x) = sigma_w / sqrt(n) W^{l+1} relu(h^l(x)) + beta_{l+1} b^{l+1},   l = 1..L,   f(x) = h^{L+1}(x)

with beta_l = sigma_b for the hidden layers and beta_{L+1} = ``sigma_b_out`` for the scalar readout (0 in the
paper).

Infinite width, the arc-cosine recursion (Cho & Saul 2009; Arora et al. 2019, eqs. 3-5), for inputs x, y:

    Sigma^1(x, y) = sigma_w^2 <x, y> / d + sigma_b^2,          Theta^1 = Sigma^1
    q_x = Sigma^l(x, x),  q_y = Sigma^l(y, y),  theta = arccos(Sigma^l(x, y) / sqrt(q_x q_y))
    Sigma^{l+1}     = sigma_w^2 sqrt(q_x q_y) (sin theta + (pi - theta) cos theta) / (2 pi) + beta_{l+1}^2
    Sigmadot^{l+1}  = sigma_w^2 (pi - theta) / (2 pi)
    Theta^{l+1}     = Sigma^{l+1} + Sigmadot^{l+1} Theta^l

NNGP = Sigma^{L+1}, NTK = Theta^{L+1}. Evaluated on all n x m pairs at once: L elementwise passes over (n, m)
tensors, no loop over pairs. On the diagonal Sigma^l(x, x) and q_x are the same number computed two ways, so
rho = 1 up to rounding; arccos is so steep there that a rho one ulp below 1 gives theta = sqrt(2 ulp) (3.5e-4 in
float32) instead of 0. So rho is rounded to +-1 (theta = 0 or pi, zero gradient: the symmetric subgradient of the
NTK's cone singularity at x = y) where |rho| > 1 - delta, delta = 32 eps of the dtype (``ANGLE_SNAP``): the two
computations of the diagonal differ by at most 2.5 eps after the first layer (same recursion) and, in the first
layer (<x, x> summed in two orders), by up to 18.5 eps measured for d = 3072; the snap changes theta only below
sqrt(64 eps) (2.8e-3 in float32, 1.2e-7 in float64), 4x the uncertainty rounding alone leaves there (a rho
known to 2 eps fixes theta only to sqrt(4 eps)).

The empirical NTK of a finite network, Theta_hat(x, y) = sum_p df(x)/dp df(y)/dp, is computed with
``torch.func``: per-example Jacobians by ``vmap(jacrev(f))`` contracted parameter tensor by parameter tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.func import functional_call, jacrev, vmap

Params = dict[str, torch.Tensor]
ANGLE_SNAP = 32  # |rho| > 1 - ANGLE_SNAP eps counts as +-1 (module docstring)


@dataclass(frozen=True)
class Architecture:
    """A fully connected ReLU network: ``depth`` hidden layers of ``width`` units (width: finite nets
    only)."""

    depth: int = 3
    width: int = 128
    sigma_w: float = 1.0
    sigma_b: float = 1.0
    sigma_b_out: float = 0.0

    def __post_init__(self) -> None:
        if self.depth < 1 or self.width < 1:
            raise ValueError(f"Architecture: depth and width must be >= 1, got depth={self.depth} width={self.width}")


def _angle(rho: torch.Tensor) -> torch.Tensor:
    """arccos(rho), with rho rounded to +-1 (theta = 0 or pi, zero gradient) where |rho| > 1 - ``ANGLE_SNAP`` eps
    (module docstring: rounding puts the diagonal's rho a few ulps below 1)."""
    delta = ANGLE_SNAP * torch.finfo(rho.dtype).eps
    inside = rho.abs() < 1 - delta
    safe = torch.where(inside, rho, torch.zeros_like(rho))
    edge = torch.where(rho > 0, torch.zeros_like(rho), torch.full_like(rho, math.pi))
    return torch.where(inside, torch.arccos(safe), edge)


def relu_kernels(x: torch.Tensor, y: torch.Tensor, arch: Architecture) -> tuple[torch.Tensor, torch.Tensor]:
    """(NNGP, NTK) of the infinite-width network between the rows of ``x`` (n, d) and ``y`` (m, d): two (n,
    m)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"relu_kernels: expected (n, d) and (m, d) inputs, got {tuple(x.shape)} and {tuple(y.shape)}")
    d = x.shape[1]
    sw2, sb2 = arch.sigma_w**2, arch.sigma_b**2
    tiny = torch.finfo(x.dtype).tiny
    sigma = sw2 * (x @ y.T) / d + sb2
    qx = sw2 * (x * x).sum(1) / d + sb2
    qy = sw2 * (y * y).sum(1) / d + sb2
    ntk = sigma
    for layer in range(arch.depth):
        beta2 = sb2 if layer < arch.depth - 1 else arch.sigma_b_out**2
        norm = torch.sqrt(qx.clamp_min(tiny))[:, None] * torch.sqrt(qy.clamp_min(tiny))[None, :]
        theta = _angle(sigma / norm)
        sigma = sw2 * norm * (torch.sin(theta) + (math.pi - theta) * torch.cos(theta)) / (2 * math.pi) + beta2
        sigma_dot = sw2 * (math.pi - theta) / (2 * math.pi)
        ntk = sigma + sigma_dot * ntk
        qx, qy = sw2 * qx / 2 + beta2, sw2 * qy / 2 + beta2
    return sigma, ntk


def relu_ntk(x: torch.Tensor, y: torch.Tensor, arch: Architecture) -> torch.Tensor:
    """The infinite-width NTK Theta^{L+1}(x, y) on all pairs (n, m)."""
    return relu_kernels(x, y, arch)[1]


def mlp_forward(
    weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], x: torch.Tensor, arch: Architecture
) -> torch.Tensor:
    """f(x) of the network above for a batch x (n, d) -> (..., n); weights (..., out, in) and biases (...,
    out) may carry leading batch dimensions (several networks at once)."""
    h = x
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if i > 0:
            h = torch.relu(h)
        beta = arch.sigma_b if i < arch.depth else arch.sigma_b_out
        h = arch.sigma_w / math.sqrt(w.shape[-1]) * (h @ w.transpose(-1, -2)) + beta * b.unsqueeze(-2)
    return h.squeeze(-1)


class ReLUMLP(torch.nn.Module):
    """The finite network above, parameters N(0, 1), scaling in the forward pass (NTK parametrisation)."""

    def __init__(self, in_dim: int, arch: Architecture, generator: torch.Generator | None = None, **factory):
        super().__init__()
        self.arch = arch
        sizes = [in_dim] + [arch.width] * arch.depth + [1]
        self.weights = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(o, i, generator=generator, **factory))
            for i, o in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.biases = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(o, generator=generator, **factory)) for o in sizes[1:]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) for a batch (n, d) -> (n,)."""
        return mlp_forward(list(self.weights), list(self.biases), x, self.arch)


def empirical_ntk(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Theta_hat(x, y) = J(x) J(y)^T of a scalar-output ``net``, by ``vmap(jacrev)`` over its parameters."""
    params = {k: v.detach() for k, v in net.named_parameters()}

    def f(p: Params, point: torch.Tensor) -> torch.Tensor:
        return functional_call(net, p, (point.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(f), (None, 0))
    jx = jac(params, x)
    jy = jx if y is None or y is x else jac(params, y)
    return sum(jx[k].flatten(1) @ jy[k].flatten(1).T for k in params)


def psd_rtol(dtype: torch.dtype) -> float:
    """How far below zero, relative to the largest |eigenvalue|, rounding in ``dtype`` can put a PSD matrix's
    smallest eigenvalue: 1e-6 in float64, 1e-4 otherwise (a float32 Gram matrix of 256 points measured -1e-5)."""
    return 1e-6 if dtype == torch.float64 else 1e-4


def check_psd(k: torch.Tensor, what: str, rtol: float | None = None) -> tuple[float, float]:
    """(smallest eigenvalue, largest |eigenvalue|) of the symmetric kernel matrix ``k``; raises ``ValueError``
    naming the smallest eigenvalue if it is below -rtol x the largest |eigenvalue| (default: ``psd_rtol`` of its
    dtype; pass the dtype it was computed in when checking a cast copy)."""
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{what}: kernel matrix must be square, got {tuple(k.shape)}")
    if rtol is None:
        rtol = psd_rtol(k.dtype)
    asym = float((k - k.T).abs().max() / k.abs().max().clamp_min(torch.finfo(k.dtype).tiny))
    if asym > rtol:
        raise ValueError(f"{what}: kernel matrix is not symmetric (max |K - K^T| / max |K| = {asym:.3g})")
    eig = torch.linalg.eigvalsh(0.5 * (k + k.T))
    lo, scale = float(eig[0]), float(eig.abs().max())
    if lo < -rtol * scale:
        raise ValueError(
            f"{what}: kernel matrix is not positive semi-definite: smallest eigenvalue {lo:.6g} "
            f"< -{rtol:g} x largest |eigenvalue| {scale:.6g} (ill-posed for kernel gradient descent)"
        )
    return lo, scale
