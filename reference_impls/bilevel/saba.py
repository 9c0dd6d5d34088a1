"""SABA: Stochastic Average Bilevel Algorithm (Dagreou, Ablin, Vaiter, Moreau, NeurIPS 2022).

SOBA's single loop with SAGA estimates: for each per-sample quantity phi_i (d_z g_i, d2_zz g_i v, d2_xz g_i v,
d_z f_j, d_x f_j) a table keeps the value m_i last computed for sample i, and a minibatch B gives
    D = 1/|B| sum_{i in B} (phi_i - m_i) + 1/n sum_i m_i,   then m_i <- phi_i for i in B,
unbiased whatever the table holds, with a variance that vanishes as the iterates converge: constant steps
rho, gamma = rho / r give O(1/T) convergence, linear under a Polyak-Lojasiewicz condition (the paper's analysis).
The tables (initialised with one pass over the data) are the method's main memory cost: n (2 dim z + dim x_i)
+ m (dim z + dim x) numbers. Defaults: the paper's tuned values (IJCNN1 rho = 0.25; hyper-cleaning p = 0.5:
rho = 0.1, r = 3.16e-4; quadratic rho = 0.1, r = 1). Covtype, which the paper does not tune: rho = 1, the best of
{0.25, 0.5, 1, 2} on the synthetic covtype-shaped set at smoke scale (2 diverged; SOBA's 4 was the best of {1, 4, 8}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ctbench import Manifest
from reference_impls.bilevel._common import Iterates
from suites.bilevel.interface import Directions
from suites.bilevel.problem import BilevelProblem

INIT_CHUNK = 1024  # samples per oracle call when filling the tables


def _first_occurrence(idx: Tensor) -> Tensor:
    """Mask of the first occurrence of each index in ``idx`` (no host synchronisation)."""
    sorted_idx, order = idx.sort(stable=True)
    first = torch.ones_like(idx, dtype=torch.bool)
    first[1:] = sorted_idx[1:] != sorted_idx[:-1]
    return torch.empty_like(first).scatter_(0, order, first)


class SagaTable:
    """The rows m_i last computed for each sample (one column block per quantity) and their column sums.

    The sums are updated with each batch's changes, and recomputed from the rows once per pass over the data
    (every n / |B| updates): rounding drift stays bounded at no extra cost per sample."""

    def __init__(self, rows: Tensor, batch_size: int):
        self.rows = rows
        self.refresh_every = max(1, rows.shape[0] // batch_size)
        self.updates = 0
        self.total = rows.sum(0)

    def change(self, new: Tensor, idx: Tensor) -> Tensor:
        """phi_i - m_i for the batch's rows."""
        return new - self.rows[idx]

    def mean(self) -> Tensor:
        """1/n sum_i m_i."""
        return self.total / self.rows.shape[0]

    def update(self, new: Tensor, change: Tensor, idx: Tensor) -> None:
        """m_i <- phi_i for the batch (a sample drawn twice counted once)."""
        self.rows[idx] = new
        self.updates += 1
        if self.updates % self.refresh_every == 0:
            self.total = self.rows.sum(0)
        else:
            self.total += (change * _first_occurrence(idx).unsqueeze(1)).sum(0)


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
        "hyperparam-covtype": {"step_size": 1.0, "outer_ratio": 1.0},
        "datacleaning": {"step_size": 0.1, "outer_ratio": 3.16e-4},
    }

    def init(self, problem: BilevelProblem, batch_size: int, seed: int) -> dict[str, Any]:
        hp = super().init(problem, batch_size, seed)
        self.inner = SagaTable(self._rows(self._inner_rows, problem.n_inner), batch_size)  # [d_z g_i | H_i v | cross_i]
        self.outer = SagaTable(self._rows(self._outer_rows, problem.n_outer), batch_size)  # [d_z f_j | d_x f_j]
        return hp

    def _inner_rows(self, idx: Tensor) -> Tensor:
        return torch.cat(self.problem.inner_per_sample(self.z, self.x, self.v, idx), 1)

    def _outer_rows(self, idx: Tensor) -> Tensor:
        return torch.cat(self.problem.outer_per_sample(self.z, self.x, idx), 1)

    def _rows(self, oracle: Callable[[Tensor], Tensor], n: int) -> Tensor:
        device = self.z.device
        return torch.cat(
            [oracle(torch.arange(s, min(s + INIT_CHUNK, n), device=device)) for s in range(0, n, INIT_CHUNK)]
        )

    def _estimate(self, i: Tensor, j: Tensor) -> tuple[Directions, tuple[Tensor, ...]]:
        """SAGA estimates 1/|B| sum_B (phi_i - m_i) + 1/n sum_i m_i of the five quantities."""
        p, dz = self.problem, self.z.numel()
        new_in, new_out = self._inner_rows(i), self._outer_rows(j)
        change_in, change_out = self.inner.change(new_in, i), self.outer.change(new_out, j)
        inner = change_in.mean(0) + self.inner.mean()  # [d_z G | d2_zz G v | d2_xz G v]
        outer = change_out.mean(0) + self.outer.mean()  # [d_z F | d_x F]
        cross = inner[2 * dz :]
        if p.per_sample_x:  # one coordinate of x per inner sample: the batch's and the table's columns, scattered
            cross = p.rows_to_x(change_in[:, 2 * dz :], i) / len(i) + self.inner.rows[:, 2 * dz] / p.n_inner
        d_x = cross + outer[dz:] if p.outer_uses_x else cross
        return Directions(inner[:dz], inner[dz : 2 * dz] + outer[:dz], d_x), (new_in, change_in, new_out, change_out)

    def directions(self, inner_idx: Tensor, outer_idx: Tensor) -> Directions:
        return self._estimate(inner_idx, outer_idx)[0]

    def step(self) -> None:
        i, j = self.draw("inner"), self.draw("outer")
        d, (new_in, change_in, new_out, change_out) = self._estimate(i, j)
        self.inner.update(new_in, change_in, i)
        self.outer.update(new_out, change_out, j)
        self.z -= self.rho * d.z
        self.v -= self.rho * d.v
        self.x -= self.gamma * d.x
