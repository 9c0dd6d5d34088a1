"""SABA's memory for a generalised linear model: two numbers per sample instead of its rows.

Where every per-sample row is a scalar times the sample's features d_k plus a part R that no sample changes
(``suites.bilevel.closed.LinearModel``; hyperparameter selection), the SAGA estimates of SABA's directions are
    D_z = 1/|B| sum_{i in B} (a_i - m_i^a) d_i + 1/n sum_i m_i^a d_i + R_z,
    D_v = 1/|B| sum_{i in B} (b_i - m_i^b) d_i + 1/n sum_i m_i^b d_i
        + 1/|B'| sum_{j in B'} (a_j - m_j^a) d_j + 1/m sum_j m_j^a d_j + R_v,
    D_x = R_x,
with (m_k^a, m_k^b) the scalars last computed for sample k. Like the generic rows' estimates they are unbiased
whatever the table holds; R, computed at the current iterate, carries no variance (the generic rows keep R as it was
when each sample was last drawn). The table is (n + m) x 2 numbers; the running sums T = [sum c_k m_k^a d_k ;
sum c_k m_k^b d_k] (c_k = 1/n or 1/m; an outer sample's a in the v row) are 2 x p, updated with each batch's
changes (a sample drawn twice counted once) and recomputed once per pass. A step is one gather of the batch's
features and labels, one product d @ [z v], the scalars, two products with d, and in-place updates of [z; v] and x.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reference_impls.bilevel._common import Once
from suites.bilevel.closed import LinearModel

CHUNK = 4096  # samples per product when filling the table


class ScalarTable:
    """The scalars (a_k, b_k) last computed for each sample k (inner samples, then outer ones) and the running sums
    T of their products with the features (module docstring)."""

    def __init__(self, model: LinearModel, vz: Tensor, n_inner: int, batch_inner: int, zero: bool):
        self.model, self.data, self.n_inner = model, model.data, n_inner
        self.width, n = self.data.shape[1] - 1, self.data.shape[0]
        self.vz, self.zv = vz, vz.T  # views of the solver's iterate [z; v], made once
        if zero:
            self.rows = self.data.new_zeros(n, 2)
        else:
            chunks = [self.data[s : s + CHUNK] for s in range(0, n, CHUNK)]
            self.rows = torch.cat([model.scalars(chunk[:, :-1] @ self.zv, chunk[:, -1:]) for chunk in chunks])
        self.once = Once(n, self.data.device)
        self.refresh_every, self.updates = max(1, n_inner // batch_inner), 0
        self._layouts: dict[tuple[int, int], tuple[Tensor, ...]] = {}
        self.total = self._total()

    def _layout(self, k_in: int, k_out: int) -> tuple[Tensor, ...]:
        """For k_in inner rows then k_out outer rows: which scalar each of the two columns reads (inner (a, b),
        outer (a, a)), the batch-mean weights (1/k_in, 1/k_in) and (0, 1/k_out), the table weights (1/n, 1/n)
        and (0, 1/m), and the offsets of the outer rows in the table (made once per batch shape)."""
        if (k_in, k_out) not in self._layouts:
            n_out = self.rows.shape[0] - self.n_inner
            columns = torch.tensor([[0, 1]] * k_in + [[0, 0]] * k_out, device=self.rows.device)

            def weights(w_in: float, w_out: float) -> Tensor:
                return self.rows.new_tensor([[w_in, w_in]] * k_in + [[0.0, w_out]] * k_out)

            offsets = torch.tensor([0] * k_in + [self.n_inner] * k_out, device=self.rows.device)
            self._layouts[k_in, k_out] = (columns, weights(1 / k_in, 1 / k_out), weights(1 / self.n_inner, 1 / n_out),
                                          offsets)  # fmt: skip
        return self._layouts[k_in, k_out]

    def _total(self) -> Tensor:
        """T from the whole table: [1/n sum_i a_i d_i ; 1/n sum_i b_i d_i + 1/m sum_j a_j d_j]."""
        n, d = self.n_inner, self.data[:, : self.width]
        total = (self.rows[:n] / n).T @ d[:n]
        total[1] += (self.rows[n:, 0] / (self.rows.shape[0] - n)) @ d[n:]
        return total

    def estimate(self, x: Tensor, i: Tensor, j: Tensor, update: bool) -> tuple[Tensor, Tensor]:
        """(D_vz = [D_z; D_v] (2, p), D_x) from inner samples ``i`` and outer samples ``j`` at the iterate [z; v]
        the table was made with (a view, read as it is now) and x; with ``update`` the batch's scalars replace the
        table's."""
        columns, mean_weights, table_weights, offsets = self._layout(len(i), len(j))
        idx = torch.cat((i, j)).add_(offsets)
        batch = self.data.index_select(0, idx)
        d = batch[:, : self.width]
        new = self.model.scalars(d @ self.zv, batch[:, self.width :])
        change = (new - self.rows.index_select(0, idx)).gather(1, columns)
        d_vz = torch.addmm(self.total, (change * mean_weights).T, d)
        if update:
            self.rows.index_copy_(0, idx, new)
            self.updates += 1
            if self.updates % self.refresh_every == 0:
                self.total = self._total()
            else:
                self.total.addmm_((change * table_weights).mul_(self.once(idx)[:, None]).T, d)
        return d_vz, self.model.shared(self.vz, x, d_vz)
