"""The paper's two learning problems (Dagreou et al. 2022, Section 4), as per-sample losses.

Hyperparameter selection (IJCNN1): binary logistic regression with one l2 penalty per feature, e^{x_k},
    g_i(z, x) = log(1 + exp(-y_i d_i.z)) + 1/2 sum_k e^{x_k} z_k^2   (training split),
    f_j(z, x) = log(1 + exp(-y_j d_j.z))                              (validation split).

Data hyper-cleaning: multinomial logistic regression with one weight sigma(x_i) per (corrupted) training sample,
    g_i(Z, x_i) = sigma(x_i) CE(Z^T d_i, y_i) + C ||Z||^2,   f_j(Z) = CE(Z^T d_j, y_j),
with CE the cross-entropy and C = 0.2 (benchopt's value). Losses take one sample and broadcast over leading batch
dimensions of all their arguments (``suites.bilevel.problem``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from suites.bilevel.data import Labelled
from suites.bilevel.problem import BilevelProblem, dot, matvec

CLEANING_L2 = 0.2


def logistic_loss(z: Tensor, x: Tensor, d: Tensor, y: Tensor) -> Tensor:
    """log(1 + exp(-y d.z)) for one sample with a label y in {-1, +1}."""
    return F.softplus(-y * dot(d, z))


def penalised_logistic_loss(z: Tensor, x: Tensor, d: Tensor, y: Tensor) -> Tensor:
    """Logistic loss plus the per-feature penalty 1/2 sum_k e^{x_k} z_k^2."""
    return logistic_loss(z, x, d, y) + 0.5 * (torch.exp(x) * z * z).sum(-1)


def hyperparam_problem(train: Labelled, val: Labelled) -> BilevelProblem:
    """Hyperparameter selection: inner problem on ``train``, outer loss on ``val``; x0 = log U(0, 1) per feature
    (benchopt's initialisation, fixed seed), z0 = 0."""
    p = train.x.shape[1]
    return BilevelProblem(
        name="hyperparam",
        dataset=train.dataset,
        g=penalised_logistic_loss,
        f=logistic_loss,
        inner_data=(train.x, train.y),
        outer_data=(val.x, val.y),
        z0=torch.zeros(p, dtype=train.x.dtype),
        x0=torch.rand(p, generator=torch.Generator().manual_seed(0), dtype=train.x.dtype).log(),
        outer_uses_x=False,
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
