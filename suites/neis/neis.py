"""Non-equilibrium importance sampling (NEIS) with a trained velocity field.

Estimator (Rotskoff & Vanden-Eijnden, PRL 2019; Cao & Vanden-Eijnden, NeurIPS 2022, section 2). With the flow
dX_t/dt = b(X_t), X_0 = x, and its Jacobian J_t(x) = det(dX_t/dx) = exp(int_0^t div b(X_s) ds),

    Z1 / Z0 = E_{x ~ rho0}[ A(x) ],   A(x) = int_0^1 e^{-U1(X_t)} J_t / B_t dt,
    B_t(x) = int_{t-1}^{t} e^{-U0(X_s)} J_s ds,

which holds for any b: A is unbiased, and its variance vanishes for the optimal b. Each sample needs the
trajectory forward on [0, 1] (the numerator) and backward on [-1, 0] (the denominator B_t).

Discretisation: the fixed grid t_k = k / N, k = -N..N; (X, log J) integrated by classical RK4 with step 1/N along b
(forward) and -b (backward), all samples and both directions in one batched tensor program (the only Python loop
is over the N time steps); the time integrals by the trapezoidal rule with weights w_k:

    A(x) = sum_{k=0}^{N} w_k e^{-U1(X_k)} J_k / B_k,   B_k = sum_{j=0}^{N} w_j e^{-U0(X_{k-j})} J_{k-j}.

The change of variables y = X_k(x) makes this discrete A exactly unbiased for any positive weights when J_k is
the Jacobian of the discrete map x -> X_k; integrating log J with RK4 leaves an O(N^-4) error. U1 is evaluated
N + 1 times per sample (values only), U0 2N + 1 times; everything is computed in log space.

div b is exact in closed form for the linear and gradient fields; for a generic network it is the exact trace of
the Jacobian (d vector-Jacobian products in one batched backward pass) up to ``exact_div_max_dim`` and
Hutchinson's estimate e^T (db/dx) e with one Rademacher probe per trajectory above it. Hutchinson makes J_k
random, and E[exp(int e^T (db/dx) e)] != exp(int div b): the estimate is then biased (Jensen), which the task's
unbiasedness check measures.

Training minimises the second moment M2(b) = E[A^2] (equivalently the variance, E[A] being fixed) on the log of
its batch estimate, back-propagating through the RK4 steps (discretise-then-optimise), with the paper's optimiser:
normalised gradient steps theta <- theta - lr_k g / |g|, lr_k = lr / (1 + (1/eps - 1) k / steps), eps = 0.2.

A batch drawn from rho0 alone almost never reaches a far, narrow mode, and its estimate of M2 is then smallest for
a flow that avoids the target altogether. The paper's assisted start (its ``biased_GD_func``) replaces a fraction
of the training points, decaying from ``seed_fraction`` to 0 at ``seed_until`` of the steps, by points moved into
U1's wells by the gradient flow dx/dt = -grad U1(x) over unit time. This biases only the training gradient, never
the estimator (unbiased for any b); the training curve reports M2 on the batch's rho0 points alone. The authors
set it per example (eg1: 0.1 until 60% with lr 0.3; eg2, four modes in 10-D: 0.3 until 75% with lr 0.5); with too
few seeded points a batch's M2 estimate never sees the far modes, and the flow learns to avoid them.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
from torch import nn

from suites.neis.interface import Budget, Estimator, FlowDiverged
from suites.neis.problem import NonFinitePotential, Problem

Tensor = torch.Tensor
LR_DECAY_TO = 0.2  # the paper's eps: the last step is lr * eps


def glorot(*shape: int) -> nn.Parameter:
    """A parameter uniform on +-sqrt(6 / (fan_in + fan_out)); a vector counts as shape (1, n)."""
    fans = shape if len(shape) == 2 else (1, shape[0])
    limit = math.sqrt(6 / sum(fans))
    return nn.Parameter(torch.empty(shape).uniform_(-limit, limit))


class VelocityField(nn.Module):
    """b: R^d -> R^d with its divergence; subclasses with a closed-form divergence override ``divergence``."""

    def __init__(self, dim: int, hutchinson: bool = False):
        super().__init__()
        self.dim = dim
        self.hutchinson = hutchinson

    def probe(self, x: Tensor) -> Tensor | None:
        """A Rademacher probe per row when the divergence is Hutchinson's estimate, else ``None``."""
        if not self.hutchinson:
            return None
        return torch.randint(0, 2, x.shape, device=x.device).to(x.dtype) * 2 - 1

    def divergence(self, x: Tensor, probe: Tensor | None) -> Tensor:
        """tr(db/dx) exactly (probe ``None``), or e^T (db/dx) e for the probe e, per row."""
        create_graph = torch.is_grad_enabled()
        n, d = x.shape
        with torch.enable_grad():
            if probe is None:  # row i of the expanded batch asks for d b_{i mod d} / d x_{i mod d}
                xs = x.detach() if not create_graph else x
                xs = xs.unsqueeze(0).expand(d, n, d).reshape(d * n, d)
                if not xs.requires_grad:
                    xs = xs.requires_grad_()
                tangent = torch.eye(d, device=x.device, dtype=x.dtype).repeat_interleave(n, 0)
                (vjp,) = torch.autograd.grad(self(xs), xs, tangent, create_graph=create_graph)
                return (vjp * tangent).sum(-1).view(d, n).sum(0)
            xs = x if x.requires_grad else x.detach().requires_grad_()
            (vjp,) = torch.autograd.grad(self(xs), xs, probe, create_graph=create_graph)
            return (vjp * probe).sum(-1)


def trajectories(field: VelocityField, x0: Tensor, steps: int) -> tuple[Tensor, Tensor]:
    """X_k and log J_k on the grid t_k = k / steps, k = -steps..steps: shapes [2N+1, n, d] and [2N+1, n]."""
    n = x0.shape[0]
    x = torch.cat([x0, x0])  # forward rows, then backward rows
    sign = torch.cat([x0.new_ones(n), -x0.new_ones(n)])
    probe = field.probe(x)
    h = 1.0 / steps

    def rhs(z: Tensor) -> tuple[Tensor, Tensor]:
        return sign[:, None] * field(z), sign * field.divergence(z, probe)

    logj = x0.new_zeros(2 * n)
    xs, ls = [x], [logj]
    for _ in range(steps):
        k1, l1 = rhs(x)
        k2, l2 = rhs(x + 0.5 * h * k1)
        k3, l3 = rhs(x + 0.5 * h * k2)
        k4, l4 = rhs(x + h * k3)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        logj = logj + h / 6 * (l1 + 2 * l2 + 2 * l3 + l4)
        xs.append(x)
        ls.append(logj)
    big_x, big_l = torch.stack(xs), torch.stack(ls)  # [N+1, 2n, ...]
    x_grid = torch.cat([big_x[1:, n:].flip(0), big_x[:, :n]])
    l_grid = torch.cat([big_l[1:, n:].flip(0), big_l[:, :n]])
    return x_grid, l_grid


def log_estimates(field: VelocityField, problem: Problem, x0: Tensor, steps: int) -> Tensor:
    """log A(x) for each row of ``x0`` (the discrete NEIS estimator of the module docstring)."""
    x_grid, logj = trajectories(field, x0, steps)
    bad = ~torch.isfinite(x_grid).all(-1) | ~torch.isfinite(logj)
    if bool(bad.any()):
        rows = bad.any(0).nonzero().flatten()
        first = int(bad[:, rows[0]].nonzero()[0])
        raise FloatingPointError(
            f"the flow of b blew up: {len(rows)} of {x0.shape[0]} trajectories non-finite, the first at "
            f"t = {(first - steps) / steps:+.3f}"
        )
    log_w = torch.full((steps + 1,), math.log(1.0 / steps), device=x0.device, dtype=x0.dtype)
    log_w[0] = log_w[-1] = math.log(0.5 / steps)  # trapezoidal rule on [0, 1]
    log_rho0_j = (logj - problem.U0(x_grid)).T  # [n, 2N+1]
    # B_k for k = 0..N: window k of length N + 1 covers grid indices k..k+N, i.e. times t_k - 1 .. t_k
    log_b = torch.logsumexp(log_rho0_j.unfold(1, steps + 1, 1) + log_w.flip(0), -1)  # [n, N+1]
    u1 = problem.U1(x_grid[steps:], where=f"NEIS grid t in [0, 1], N={steps}").T  # [n, N+1]
    return torch.logsumexp(log_w - u1 + logj[steps:].T - log_b, -1)


def descend(problem: Problem, x: Tensor, steps: int) -> Tensor:
    """x moved by the gradient flow dx/dt = -grad U1(x) over unit time (RK4, ``steps`` steps); rows whose flow
    leaves the finite values keep their start."""
    h = 1.0 / steps

    def rhs(z: Tensor) -> Tensor:
        with torch.enable_grad():
            zr = z.detach().requires_grad_()
            (g,) = torch.autograd.grad(problem.U1(zr, where="NEIS assisted start").sum(), zr)
        return -g

    z = x
    for _ in range(steps):
        k1 = rhs(z)
        k2 = rhs(z + 0.5 * h * k1)
        k3 = rhs(z + 0.5 * h * k2)
        k4 = rhs(z + h * k3)
        z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        z = torch.where(torch.isfinite(z).all(-1, keepdim=True), z, x)
    return z


class NEIS(Estimator):
    """NEIS with a velocity field trained to minimise the estimator's second moment; subclasses give the field."""

    def __init__(self) -> None:
        self.field: VelocityField | None = None
        self.budget: Budget | None = None

    @abstractmethod
    def make_field(self, dim: int, budget: Budget) -> VelocityField:
        """The untrained velocity field for dimension ``dim``."""

    def fit(self, problem: Problem, budget: Budget) -> list[float]:
        self.budget = budget
        field = self.make_field(problem.dim, budget).to(problem.device, problem.dtype)
        self.field = field
        params = list(field.parameters())
        decay = (1 / LR_DECAY_TO - 1) / max(budget.train_steps, 1)
        curve: list[float] = []
        for step in range(budget.train_steps):
            x0 = problem.sample_base(budget.train_batch)
            share = budget.seed_fraction * max(0.0, 1 - step / max(budget.seed_until * budget.train_steps, 1e-9))
            seeded = torch.rand(len(x0), device=x0.device) < share
            if bool(seeded.any()):
                x0[seeded] = descend(problem, x0[seeded], budget.time_steps)
            try:
                log_a = log_estimates(field, problem, x0, budget.time_steps)
            except NonFinitePotential:  # bad input, not a training failure
                raise
            except FloatingPointError as exc:
                raise FlowDiverged(step, str(exc), curve) from exc
            log_m2 = torch.logsumexp(2 * log_a, 0) - math.log(len(log_a))
            if not torch.isfinite(log_m2):
                raise FlowDiverged(step, f"second moment estimate is {log_m2.item()}", curve)
            grads = torch.autograd.grad(log_m2, params)
            norm = torch.sqrt(sum((g * g).sum() for g in grads))
            if not torch.isfinite(norm):
                raise FlowDiverged(step, f"gradient of the second moment is {norm.item()}", curve)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p -= budget.lr / (1 + decay * step) * g / norm.clamp_min(1e-30)
            plain = log_a.detach()[~seeded]  # the rho0 points: an unbiased estimate of M2
            if len(plain):
                curve.append(float(torch.logsumexp(2 * plain, 0) - math.log(len(plain))))
        return curve

    def sample(self, problem: Problem, n: int) -> Tensor:
        if self.field is None or self.budget is None:
            raise RuntimeError(f"{type(self).__name__}.sample before fit")
        field, budget = self.field.requires_grad_(False), self.budget
        try:
            with torch.no_grad():
                chunks = [
                    log_estimates(field, problem, problem.sample_base(min(budget.chunk, n - i)), budget.time_steps)
                    for i in range(0, n, budget.chunk)
                ]
        finally:
            field.requires_grad_(True)
        return torch.cat(chunks)
