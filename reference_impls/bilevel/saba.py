"""SABA: Stochastic Average Bilevel Algorithm (Dagreou, Ablin, Vaiter, Moreau, NeurIPS 2022).

SOBA's single loop with SAGA estimates: for each per-sample quantity phi_i (d_z g_i, d2_zz g_i v, d2_xz g_i v,
d_z f_j, d_x f_j) a table keeps the value m_i last computed for sample i, and a minibatch B gives
    D = 1/|B| sum_{i in B} (phi_i - m_i) + 1/n sum_i m_i,   then m_i <- phi_i for i in B,
unbiased whatever the table holds, with a variance that vanishes as the iterates converge: constant steps
rho, gamma = rho / r give O(1/T) convergence, linear under a Polyak-Lojasiewicz condition (the paper's analysis).
The tables (initialised with one pass over the data) are the method's main memory cost: n (2 dim z + dim x_i)
+ m (dim z + dim x) numbers. Defaults: the paper's tuned values (IJCNN1 rho = 0.25; hyper-cleaning p = 0.5:
rho = 0.1, r = 3.16e-4; quadratic rho = 0.1, r = 1). Covtype, which the paper does not tune, takes the defaults of
its kind (IJCNN1's), as every solver does; the task's tuning grid searches around them by the same rule for all.

benchopt's variant (hyperparameters ``memory="batch"``, ``init_memory="zero"``; the defaults on
``quadratic-benchopt``): under the problem's fixed-batch sampling, one table row per batch b holds its batch-mean
quantities, D = (phi_b - m_b) + sum_b' (|b'| / n) m_b', the tables start at zero.

Cost: the per-sample rows come from the problem's oracles (closed form for the quadratic and logistic regression,
autograd otherwise). Where g depends on the whole x (every problem but hyper-cleaning) the inner and outer rows
share one table laid out as the iterate theta = [z | v | x] (``JointTable``): inner row i = [d_z g_i | d2_zz g_i v |
d2_xz g_i v], outer row j = [0 | d_z f_j | d_x f_j], so that (D_z, D_v, D_x) is the sum of the two estimates and a
step is one gather, one write-back and two weighted sums of the batch's rows, then theta <- theta - steps * D.
Hyper-cleaning (one x_i per inner sample) keeps one table per finite sum (``SagaTable``). A problem that is a
generalised linear model (hyperparameter selection: ``BilevelProblem.linear_model``) selects the specialised path,
two scalars per sample and the sample-independent part computed exactly (``_scalar_table.ScalarTable``); its
``generic()`` twin takes the rows above, and the tests check both give unbiased estimates of the same directions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ctbench import Manifest
from reference_impls.bilevel._common import Iterates, Once
from reference_impls.bilevel._scalar_table import ScalarTable
from suites.bilevel.interface import Directions
from suites.bilevel.problem import INNER, OUTER_GRAD, BilevelProblem
from suites.bilevel.sampling import FixedBatches

INIT_CHUNK = 1024  # samples per oracle call when filling the tables


class SagaTable:
    """The rows m_i last computed for each sample (one column block per quantity) and their column sums.

    The sums are updated with each batch's changes, and recomputed from the rows once per pass over the data
    (every n / |B| updates): rounding drift stays bounded at no extra cost per sample."""

    def __init__(self, rows: Tensor, batch_size: int):
        self.rows, self.once = rows, Once(rows.shape[0], rows.device)
        self.refresh_every = max(1, rows.shape[0] // batch_size)
        self.updates = 0
        self.total = rows.sum(0)

    def estimate(self, new: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        """(1/|B| sum_B (phi_i - m_i) + 1/n sum_i m_i, the changes phi_i - m_i)."""
        change = new - self.rows.index_select(0, idx)
        return torch.add(change.mean(0), self.total, alpha=1 / self.rows.shape[0]), change

    def mean(self) -> Tensor:
        """1/n sum_i m_i."""
        return self.total / self.rows.shape[0]

    def update(self, new: Tensor, change: Tensor, idx: Tensor) -> None:
        """m_i <- phi_i for the batch (a sample drawn twice counted once)."""
        self.rows.index_copy_(0, idx, new)
        self.updates += 1
        if self.updates % self.refresh_every == 0:
            self.total = self.rows.sum(0)
        else:
            self.total.add_(self.once(idx).to(change.dtype) @ change)


class JointTable:
    """The SAGA memory of both finite sums in one table of rows laid out as theta = [z | v | x] (module docstring):
    rows 0..n-1 the inner samples', rows n..n+m-1 the outer samples'. With weights a_k = 1/|B_in| or 1/|B_out| on
    the batch's rows and c_k = 1/n or 1/m on the table's,
        D = sum_k a_k (phi_k - m_k) + T,   T = 1/n sum_i m_i + 1/m sum_j m_j,
    T updated with each batch's changes (a row drawn twice counted once), recomputed once per pass."""

    def __init__(self, rows: Tensor, n_inner: int, batch_inner: int):
        self.rows, self.n_inner, self.n_outer = rows, n_inner, rows.shape[0] - n_inner
        self.once = Once(rows.shape[0], rows.device)
        self.row_weights = self._weights(n_inner, self.n_outer, n_inner, self.n_outer)
        self.refresh_every, self.updates = max(1, n_inner // batch_inner), 0
        self.total = self.row_weights @ rows
        self._cache: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    def _weights(self, k_in: int, k_out: int, n_in: int, n_out: int) -> Tensor:
        """k_in entries 1 / n_in, then k_out entries 1 / n_out."""
        return torch.cat([self.rows.new_full((k_in,), 1 / n_in), self.rows.new_full((k_out,), 1 / n_out)])

    def batch_weights(self, k_in: int, k_out: int) -> tuple[Tensor, Tensor]:
        """(a, c) for a batch of k_in inner and k_out outer rows (made once per batch shape)."""
        if (k_in, k_out) not in self._cache:
            self._cache[k_in, k_out] = (self._weights(k_in, k_out, k_in, k_out),
                                        self._weights(k_in, k_out, self.n_inner, self.n_outer))  # fmt: skip
        return self._cache[k_in, k_out]

    def estimate(self, new: Tensor, idx: Tensor, k_in: int) -> tuple[Tensor, Tensor]:
        """(D, the changes phi_k - m_k) for the stacked batch ``idx``: k_in inner rows, then outer rows offset by n."""
        change = new - self.rows.index_select(0, idx)
        return torch.addmv(self.total, change.T, self.batch_weights(k_in, len(idx) - k_in)[0]), change

    def update(self, new: Tensor, change: Tensor, idx: Tensor, k_in: int) -> None:
        self.rows.index_copy_(0, idx, new)
        self.updates += 1
        if self.updates % self.refresh_every == 0:
            self.total = self.row_weights @ self.rows
        else:
            self.total.addmv_(change.T, self.once(idx) * self.batch_weights(k_in, len(idx) - k_in)[1])


class BatchTable:
    """benchopt's memory: one row m_b per fixed batch b (its batch-mean quantities), weights w_b = |b| / n, the
    weighted sum sum_b w_b m_b kept up to date and recomputed once per pass."""

    def __init__(self, rows: Tensor, sampler: FixedBatches):
        self.rows, self.sampler = rows, sampler
        self.shares = [sampler.weight(b) for b in range(rows.shape[0])]  # Python floats: no device sync per step
        self.weights = torch.tensor(self.shares, dtype=rows.dtype, device=rows.device)
        self.total, self.updates = self.weights @ rows, 0

    def estimate(self, new: Tensor) -> tuple[Tensor, Tensor]:
        change = new - self.rows[self.sampler.batch_id]
        return change + self.total, change

    def update(self, new: Tensor, change: Tensor) -> None:
        b = self.sampler.batch_id
        self.rows[b] = new
        self.updates += 1
        if self.updates % self.rows.shape[0] == 0:
            self.total = self.weights @ self.rows
        else:
            self.total.add_(change, alpha=self.shares[b])


class SABA(Iterates):
    manifest = Manifest(
        name="saba",
        authors=("Mathieu Dagreou", "Pierre Ablin", "Samuel Vaiter", "Thomas Moreau"),
        url="https://arxiv.org/abs/2201.13409",
        description="single loop with SAGA variance reduction on all five per-sample oracles, constant steps",
    )
    defaults = {
        "quadratic": {"step_size": 0.1, "outer_ratio": 1.0},
        "hyperparam": {"step_size": 0.25, "outer_ratio": 1.0},
        "datacleaning": {"step_size": 0.1, "outer_ratio": 3.16e-4},
        "quadratic-benchopt": {"step_size": 0.1, "outer_ratio": 1.0, "memory": "batch", "init_memory": "zero"},
    }

    def init(self, problem: BilevelProblem, batch_size: int, seed: int) -> dict[str, Any]:
        hp = super().init(problem, batch_size, seed)
        self.memory, zero = hp.get("memory", "sample"), hp.get("init_memory", "full") == "zero"
        model = problem.linear_model() if self.memory == "sample" else None
        self.joint = self.memory == "sample" and not problem.per_sample_x and model is None
        # zero blocks for outer rows in theta's layout: a step's outer batch (joint table), one batch mean (per batch)
        self._init_theta(problem, min(batch_size, problem.n_outer) if self.joint else int(self.memory == "batch"))
        self.scalars = None
        dz, dx = self.z.numel(), self.x.numel()
        inner_width = 2 * dz + (1 if problem.per_sample_x else dx)  # [d_z g_i | d2_zz g_i v | d2_xz g_i v]
        if model is not None:
            self.scalars = ScalarTable(model, self.vz, problem.n_inner, min(batch_size, problem.n_inner), zero)
            if not zero:  # the fill: every sample's scalars, formed here rather than by the problem's oracles
                problem.count(problem.n_inner, *INNER)
                problem.count(problem.n_outer, OUTER_GRAD)
        elif self.joint:
            rows = torch.cat([self._rows(self._inner_rows, problem.n_inner, inner_width, zero),
                              self._rows(self._joint_outer_rows, problem.n_outer, 2 * dz + dx, zero)])  # fmt: skip
            self.table = JointTable(rows, problem.n_inner, min(self.batch_size, problem.n_inner))
        elif self.memory == "batch":
            samplers = self.samplers["inner"], self.samplers["outer"]
            if not all(isinstance(s, FixedBatches) for s in samplers):
                raise ValueError("SABA memory='batch' needs the problem's fixed-batch sampling")
            self.inner = BatchTable(self._batch_rows(self._inner_mean, samplers[0], zero), samplers[0])
            self.outer = BatchTable(self._batch_rows(self._outer_mean, samplers[1], zero), samplers[1])
        else:
            outer_width = dz + (dx if problem.outer_uses_x else 0)  # [d_z f_j | d_x f_j]
            self.inner = SagaTable(self._rows(self._inner_rows, problem.n_inner, inner_width, zero), batch_size)
            self.outer = SagaTable(self._rows(self._outer_rows, problem.n_outer, outer_width, zero), batch_size)
        return hp

    def _init_theta(self, problem: BilevelProblem, zero_rows: int) -> None:
        """theta = [z | v | x] with z, v, x its views, and the per-coordinate steps [rho | rho | gamma]; ``zero_rows``
        rows of zero blocks that put an outer row in theta's layout [0 | d_z f | d_x f] (a longer batch, as the
        table's fill, makes its own)."""
        dz, dx = self.z.numel(), self.x.numel()
        self.theta = torch.cat([self.z, self.v, self.x])
        self.z, self.v, self.x = self.theta[:dz], self.theta[dz : 2 * dz], self.theta[2 * dz :]
        self.vz = self.theta[: 2 * dz].view(2, dz)  # [z; v]
        self.steps = torch.cat([self.theta.new_full((2 * dz,), self.rho), self.theta.new_full((dx,), self.gamma)])
        self.zeros_z = self.theta.new_zeros(zero_rows, dz)
        self.zeros_x = self.theta.new_zeros(zero_rows, 0 if problem.outer_uses_x else dx)

    # --- the quantities, as rows [d_z g | d2_zz g v | d2_xz g v] and [d_z f | d_x f] ------------------------
    def _inner_rows(self, idx: Tensor) -> Tensor:
        return torch.cat(self.problem.inner_per_sample(self.z, self.x, self.v, idx), 1)

    def _outer_rows(self, idx: Tensor) -> Tensor:
        return torch.cat(self.problem.outer_per_sample(self.z, self.x, idx), 1)

    def _joint_outer_rows(self, idx: Tensor) -> Tensor:
        """Outer rows in theta's layout: [0 | d_z f_j | d_x f_j] (0 for d_x f when F does not depend on x)."""
        fz, fx = self.problem.outer_per_sample(self.z, self.x, idx)
        k = fz.shape[0]
        zeros_z, zeros_x = self.zeros_z, self.zeros_x
        if k > zeros_z.shape[0]:  # longer than a step's batch (the table's fill): zeros for this call only
            zeros_z, zeros_x = fz.new_zeros(k, zeros_z.shape[1]), fz.new_zeros(k, zeros_x.shape[1])
        return torch.cat([zeros_z[:k], fz, fx if self.problem.outer_uses_x else zeros_x[:k]], 1)

    def _joint_rows(self, i: Tensor, j: Tensor) -> tuple[Tensor, Tensor]:
        """The batch's rows, inner then outer, and their rows in the joint table."""
        return torch.cat([self._inner_rows(i), self._joint_outer_rows(j)]), torch.cat([i, j + self.problem.n_inner])

    def _inner_mean(self, idx: Tensor) -> Tensor:
        return torch.cat(self.problem.inner_oracles(self.z, self.x, self.v, idx))

    def _outer_mean(self, idx: Tensor) -> Tensor:
        """The batch means in theta's layout: [0 | d_z F | d_x F]."""
        fz, fx = self.problem.outer_grad(self.z, self.x, idx)
        return torch.cat([self.zeros_z[0], fz, fx if self.problem.outer_uses_x else self.zeros_x[0]])

    def _rows(self, oracle: Callable[[Tensor], Tensor], n: int, width: int, zero: bool) -> Tensor:
        """The table's n rows of ``width``: zeros (no oracle called), or every sample's, by chunks."""
        if zero:
            return self.theta.new_zeros(n, width)
        device = self.z.device
        return torch.cat(
            [oracle(torch.arange(s, min(s + INIT_CHUNK, n), device=device)) for s in range(0, n, INIT_CHUNK)]
        )

    def _batch_rows(self, oracle: Callable[[Tensor], Tensor], sampler: FixedBatches, zero: bool) -> Tensor:
        """One row per fixed batch, of the batch means in theta's layout: zeros (no oracle called), or each
        batch's, over the samples the sampler returns for it (the last one clamped inside the data)."""
        if zero:
            return self.theta.new_zeros(sampler.n_batches, self.theta.numel())
        return torch.stack([oracle(sampler.indices(b)) for b in range(sampler.n_batches)])

    # --- the estimates ---------------------------------------------------------------------------------------
    def _directions(self, inner: Tensor, outer: Tensor, change_in: Tensor, i: Tensor) -> Directions:
        """D_z, D_v, D_x from the estimates [D_z G | D_zz G v | D_xz G v] and [D_z F | D_x F]."""
        p, dz = self.problem, self.z.numel()
        cross = inner[2 * dz :]
        if p.per_sample_x:  # one coordinate of x per inner sample: scattered
            cross = p.rows_to_x(change_in[:, 2 * dz :], i) / len(i) + self.inner.rows[:, 2 * dz] / p.n_inner
        d_x = cross + outer[dz:] if p.outer_uses_x else cross
        return Directions(inner[:dz], inner[dz : 2 * dz] + outer[:dz], d_x)

    def _estimate(self, i: Tensor, j: Tensor) -> tuple[Directions, tuple[Tensor, ...]]:
        """SAGA estimates 1/|B| sum_B (phi_i - m_i) + 1/n sum_i m_i of the five quantities."""
        new_in, new_out = self._inner_rows(i), self._outer_rows(j)
        inner, change_in = self.inner.estimate(new_in, i)
        outer, change_out = self.outer.estimate(new_out, j)
        return self._directions(inner, outer, change_in, i), (new_in, change_in, new_out, change_out)

    def directions(self, inner_idx: Tensor, outer_idx: Tensor) -> Directions:
        if self.scalars is not None:
            d_vz, d_x = self.scalars.estimate(self.x, inner_idx, outer_idx, update=False)
            return Directions(d_vz[0], d_vz[1], d_x)
        if self.joint:
            d = self.table.estimate(*self._joint_rows(inner_idx, outer_idx), len(inner_idx))[0]
            dz = self.z.numel()
            return Directions(d[:dz], d[dz : 2 * dz], d[2 * dz :])
        if self.memory == "batch":
            raise NotImplementedError("SABA with per-batch memory forms its estimates for its own fixed batches only")
        return self._estimate(inner_idx, outer_idx)[0]

    def step(self) -> None:
        i, j = self.draw("inner"), self.draw("outer")
        if self.scalars is not None:
            d_vz, d_x = self.scalars.estimate(self.x, i, j, update=True)
            self.problem.count(len(i), *INNER)  # the batch's d_z g, d2_zz g v, d2_xz g v (its part R_x) and d_z f
            self.problem.count(len(j), OUTER_GRAD)
            self.x.add_(d_x, alpha=-self.gamma)
            self.vz.add_(d_vz, alpha=-self.rho)
            return
        if self.joint:
            new, idx = self._joint_rows(i, j)
            d, change = self.table.estimate(new, idx, len(i))
            self.table.update(new, change, idx, len(i))
            self.theta.addcmul_(self.steps, d, value=-1)
            return
        if self.memory == "batch":  # both rows in theta's layout: D is the sum of the two estimates
            new_in, new_out = self._inner_mean(i), self._outer_mean(j)
            (inner, change_in), (outer, change_out) = self.inner.estimate(new_in), self.outer.estimate(new_out)
            self.inner.update(new_in, change_in)
            self.outer.update(new_out, change_out)
            self.theta.addcmul_(self.steps, inner + outer, value=-1)
            return
        d, (new_in, change_in, new_out, change_out) = self._estimate(i, j)
        self.inner.update(new_in, change_in, i)
        self.outer.update(new_out, change_out, j)
        self.z -= self.rho * d.z
        self.v -= self.rho * d.v
        self.x -= self.gamma * d.x
