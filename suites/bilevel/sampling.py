"""Where a solver's minibatches come from: i.i.d. draws (the task's default) or benchopt's fixed batches."""

from __future__ import annotations

import torch
from torch import Tensor

SAMPLINGS = ("iid", "batches")


class FixedBatches:
    """benchopt's minibatch sampler (benchmark_bilevel's ``benchmark_utils/minibatch_sampler.py``, JAX version).

    The n samples are cut into n_b = ceil(n / batch_size) contiguous batches, visited in index order for the first
    pass and in a uniformly reshuffled order after every pass. A pass returns n_b + 1 batches: benchopt reads its
    order at position n_b before it resets, and JAX clamps that out-of-range index to the last position, so each
    pass's last batch comes twice. Batch b holds the ``batch_size`` samples from s_b = min(b batch_size,
    n - batch_size) (``jax.lax.dynamic_slice`` clamps the last start inside the data) and weighs
    w_b = batch_size / n, the last one (n mod batch_size) / n when ``batch_size`` does not divide n.
    ``batch_id`` is the batch last returned."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device):
        self.n, self.batch_size, self.gen, self.device = n, min(batch_size, n), generator, device
        self.n_batches = -(-n // self.batch_size)
        self.order, self.position, self.batch_id = list(range(self.n_batches)), 0, -1

    def weight(self, batch_id: int) -> float:
        """w_b: batch_size / n, the last batch (n mod batch_size) / n when batch_size does not divide n."""
        last = batch_id == self.n_batches - 1 and self.n % self.batch_size
        return (self.n % self.batch_size if last else self.batch_size) / self.n

    def indices(self, batch_id: int) -> Tensor:
        """The samples of batch ``batch_id``: ``batch_size`` of them from min(b batch_size, n - batch_size)."""
        start = min(batch_id * self.batch_size, self.n - self.batch_size)
        return torch.arange(start, start + self.batch_size, device=self.device)

    def __call__(self) -> Tensor:
        self.batch_id = self.order[min(self.position, self.n_batches - 1)]
        self.position += 1
        if self.position > self.n_batches:
            perm = torch.randperm(self.n_batches, generator=self.gen, device=self.gen.device)
            self.order, self.position = perm.tolist(), 0
        return self.indices(self.batch_id)
