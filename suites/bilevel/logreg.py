"""The paper's two learning problems (Dagreou et al. 2022, Section 4), as per-sample losses.

Hyperparameter selection (IJCNN1): binary logistic regression with one l2 penalty per feature, e^{x_k},
    g_i(z, x) = log(1 + exp(-y_i d_i.z)) + 1/2 sum_k e^{x_k} z_k^2   (training split),
    f_j(z, x) = log(1 + exp(-y_j d_j.z))                              (validation split).

Data hyper-cleaning: multinomial logistic regression with one weight sigma(x_i) per (corrupted) training sample,
    g_i(Z, x_i) = sigma(x_i) CE(Z^T d_i, y_i) + C ||Z||^2,   f_j(Z) = CE(Z^T d_j, y_j),
with CE the cross-entropy and C = 0.2 (benchopt's value). Losses take one sample and broadcast over leading batch
dimensions of all their arguments (``suites.bilevel.problem``).

Hyperparameter selection is a generalised linear model: with t_i = d_i.z, p_i = sigma(t_i) and the labels stored as
y_i in {0, 1} (the sign 2 y_i - 1 of the loss above),
    d_z g_i = (p_i - y_i) d_i + e^x * z,   d2_zz g_i v = p_i (1 - p_i) (d_i.v) d_i + e^x * v,
    d2_xz g_i v = e^x * z * v,   d_z f_j = (p_j - y_j) d_j,   d_x f_j = 0,
which ``LogisticOracles`` computes in closed form (the problem's specialised path, ``suites.bilevel.problem``).
Every per-sample row is a scalar times d_i plus a part no sample changes: ``LogisticModel`` gives SABA the scalars
(a_i, b_i) = (p_i - y_i, p_i (1 - p_i) d_i.v) and the shared part (R_z, R_v, R_x) = (e^x * z, e^x * v, e^x * z * v)
(``suites.bilevel.closed.LinearModel``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from suites.bilevel.closed import Data, LinearModel, pick
from suites.bilevel.data import Labelled
from suites.bilevel.problem import BilevelProblem, dot, matvec

CLEANING_L2 = 0.2


def logistic_loss(z: Tensor, x: Tensor, d: Tensor, y: Tensor) -> Tensor:
    """log(1 + exp(-s d.z)) for one sample with the label s = 2 y - 1 in {-1, +1}, stored as y in {0, 1}:
    softplus(t) - y t with t = d.z."""
    t = dot(d, z)
    return F.softplus(t) - y * t


def penalised_logistic_loss(z: Tensor, x: Tensor, d: Tensor, y: Tensor) -> Tensor:
    """Logistic loss plus the per-feature penalty 1/2 sum_k e^{x_k} z_k^2."""
    return logistic_loss(z, x, d, y) + 0.5 * (torch.exp(x) * z * z).sum(-1)


class LogisticOracles:
    """Closed-form oracles of hyperparameter selection (module docstring)."""

    def inner_grad(self, z: Tensor, x: Tensor, inner: Data, idx: Tensor | None) -> Tensor:
        d, y = pick(idx, *inner)
        return torch.addmv(torch.exp(x) * z, d.T, torch.sigmoid(d @ z) - y, alpha=1 / d.shape[0])

    def inner_hvp(self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None) -> Tensor:
        (d,) = pick(idx, inner[0])
        p = torch.sigmoid(d @ z)
        return torch.addmv(torch.exp(x) * v, d.T, (p - p * p) * (d @ v), alpha=1 / d.shape[0])

    def inner_cross(self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None) -> Tensor:
        return torch.exp(x) * z * v

    def inner_oracles(
        self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        d, y = pick(idx, *inner)
        p, ex, scale = torch.sigmoid(d @ z), torch.exp(x), 1 / d.shape[0]
        gz = torch.addmv(ex * z, d.T, p - y, alpha=scale)
        return gz, torch.addmv(ex * v, d.T, (p - p * p) * (d @ v), alpha=scale), ex * z * v

    def outer_grad(self, z: Tensor, x: Tensor, outer: Data, idx: Tensor | None) -> tuple[Tensor, Tensor]:
        d, y = pick(idx, *outer)
        return d.T @ (torch.sigmoid(d @ z) - y) / d.shape[0], torch.zeros_like(x)

    def inner_per_sample(
        self, z: Tensor, x: Tensor, v: Tensor, inner: Data, idx: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        d, y = pick(idx, *inner)
        p, ex = torch.sigmoid(d @ z), torch.exp(x)
        gz = torch.addcmul(ex * z, (p - y)[:, None], d)
        hv = torch.addcmul(ex * v, ((p - p * p) * (d @ v))[:, None], d)
        return gz, hv, (ex * z * v).expand_as(d)

    def outer_per_sample(self, z: Tensor, x: Tensor, outer: Data, idx: Tensor | None) -> tuple[Tensor, Tensor]:
        d, y = pick(idx, *outer)
        return (torch.sigmoid(d @ z) - y)[:, None] * d, d.new_zeros(d.shape[0], 0)

    def linear_model(self, inner: Data, outer: Data) -> LinearModel:
        return LogisticModel(torch.cat([torch.cat([d, y[:, None]], 1) for d, y in (inner, outer)]))


class LogisticModel:
    """Hyperparameter selection as a generalised linear model (module docstring)."""

    def __init__(self, data: Tensor):
        self.data = data

    def scalars(self, t: Tensor, y: Tensor) -> Tensor:
        p = torch.sigmoid(t[:, :1])
        return torch.cat((p - y, (p - p * p) * t[:, 1:]), 1)

    def shared(self, vz: Tensor, x: Tensor, d_vz: Tensor) -> Tensor:
        ex = torch.exp(x)
        d_vz.addcmul_(vz, ex)
        return ex * vz.prod(0)


def hyperparam_problem(train: Labelled, val: Labelled) -> BilevelProblem:
    """Hyperparameter selection: inner problem on ``train``, outer loss on ``val`` (labels in {-1, 1}, stored in
    {0, 1}); x0 = log U(0, 1) per feature (benchopt's initialisation, fixed seed), z0 = 0."""
    p = train.x.shape[1]
    return BilevelProblem(
        name="hyperparam",
        dataset=train.dataset,
        g=penalised_logistic_loss,
        f=logistic_loss,
        inner_data=(train.x, (train.y + 1) / 2),
        outer_data=(val.x, (val.y + 1) / 2),
        z0=torch.zeros(p, dtype=train.x.dtype),
        x0=torch.rand(p, generator=torch.Generator().manual_seed(0), dtype=train.x.dtype).log(),
        outer_uses_x=False,
        closed=LogisticOracles(),
    )


def _cross_entropy(z: Tensor, d: Tensor, onehot: Tensor) -> Tensor:
    scores = matvec(d, z, onehot.shape[-1])
    return torch.logsumexp(scores, -1) - (scores * onehot).sum(-1)


def weighted_cross_entropy(z: Tensor, x_i: Tensor, d: Tensor, onehot: Tensor) -> Tensor:
    """sigma(x_i) CE(Z^T d, y) + C ||Z||^2 for one training sample (x_i its own weight)."""
    return torch.sigmoid(x_i) * _cross_entropy(z, d, onehot) + CLEANING_L2 * (z * z).sum(-1)


def cross_entropy(z: Tensor, x: Tensor, d: Tensor, onehot: Tensor) -> Tensor:
    """CE(Z^T d, y) for one validation sample."""
    return _cross_entropy(z, d, onehot)


def accuracy(z: Tensor, test: tuple[Tensor, ...]) -> float:
    """Share of test samples whose highest score is their label."""
    d, onehot = test
    return float(((d @ z.view(d.shape[1], -1)).argmax(1) == onehot.argmax(1)).double().mean())


def datacleaning_problem(train: Labelled, val: Labelled, test: Labelled, classes: int) -> BilevelProblem:
    """Data hyper-cleaning: one outer variable per training sample; accuracy on ``test``."""
    n, p = train.x.shape

    def onehot(y: Tensor) -> Tensor:
        return F.one_hot(y, classes).to(train.x.dtype)

    return BilevelProblem(
        name="datacleaning",
        dataset=train.dataset,
        g=weighted_cross_entropy,
        f=cross_entropy,
        inner_data=(train.x, onehot(train.y)),
        outer_data=(val.x, onehot(val.y)),
        z0=torch.zeros(p * classes, dtype=train.x.dtype),
        x0=torch.zeros(n, dtype=train.x.dtype),
        per_sample_x=True,
        outer_uses_x=False,
        test=(test.x, onehot(test.y)),
        accuracy=accuracy,
    )
