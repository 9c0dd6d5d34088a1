"""Where a solver's minibatches come from: i.i.d. draws (the task's default) or benchopt's fixed batches."""

from __future__ import annotations

import torch
from torch import Tensor

SAMPLINGS = ("iid", "batches")


class FixedBatches:
    """benchopt's minibatch sampler: contiguous batches of ``batch_size`` samples (the last one shorter when
    ``batch_size`` does not divide ``n``), in index order for the first pass, then in an order reshuffled with
    ``generator`` after every pass. ``batch_id`` is the batch last returned."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device):
        self.n, self.batch_size, self.gen, self.device = n, min(batch_size, n), generator, device
        self.n_batches = -(-n // self.batch_size)
        self.order, self.position, self.batch_id = list(range(self.n_batches)), 0, -1

    def weight(self, batch_id: int) -> float:
        """The batch's share of the samples, |b| / n."""
        return (min(self.n, (batch_id + 1) * self.batch_size) - batch_id * self.batch_size) / self.n

    def __call__(self) -> Tensor:
        self.batch_id = self.order[self.position]
        self.position += 1
        if self.position == self.n_batches:
            perm = torch.randperm(self.n_batches, generator=self.gen, device=self.gen.device)
            self.order, self.position = perm.tolist(), 0
        start = self.batch_id * self.batch_size
        return torch.arange(start, min(start + self.batch_size, self.n), device=self.device)
