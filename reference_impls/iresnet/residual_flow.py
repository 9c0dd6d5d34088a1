"""Residual Flows' unbiased log-determinant with the Neumann-series gradient (Chen et al. 2019, eqs. 6 and 8).

Value (Russian roulette, eq. 6): N = n + M with M ~ Geometric(p) on {1, 2, ...} (n = ``terms`` always evaluated),
one Hutchinson probe v ~ N(0, I) per sample,

    log|det(I + J)|  ~=  sum_{k=1}^N (-1)^{k+1} v^T J^k v / (k P(N >= k)),     unbiased for Lip(g) < 1.

Gradient (Neumann series, eq. 8): d log|det(I + J)| / d theta = tr((I + J)^-1 dJ/dtheta), estimated by

    (sum_{k=0}^N (-1)^k v^T J^k / P(N >= k)) (dJ/dtheta) v,

i.e. the vector w = sum_k (-1)^k v^T J^k / P(N >= k) is built without a graph and one more vector-Jacobian product
w^T J v is differentiated. The returned value is the roulette estimate plus (w^T J v - its detached value): it
equals the unbiased estimate and its gradient is the Neumann estimate; memory is O(1) in N. The roulette's variance
is finite when (1 - p) > ||J||^2 (terms decay as ||J||^k); p = 0.5 as in the paper's code. The products use g
linearised once per block (``linearise``).
"""

import torch
from torch import nn

from ctbench import Manifest
from suites.iresnet.interface import ResidualLogDet
from suites.iresnet.linearise import linearise
from suites.iresnet.series import Roulette, dot, vjp_powers


class ResidualFlow(ResidualLogDet):
    manifest = Manifest(
        name="residual_flow",
        authors=("Ricky T. Q. Chen", "Jens Behrmann", "David Duvenaud", "Joern-Henrik Jacobsen"),
        url="https://arxiv.org/abs/1906.02735",
    )
    series = "roulette"
    p = 0.5
    last_terms: int | None = None  # N of the last call: the terms it evaluated (the protocol counts the work)

    def forward(self, g: nn.Module, x: torch.Tensor, terms: int) -> tuple[torch.Tensor, torch.Tensor]:
        train = torch.is_grad_enabled()
        roulette = Roulette(terms, self.p)
        n = self.last_terms = roulette.draw()
        weights = roulette.weights(n)
        lin = linearise(g, x)
        x, gx, v = lin.x, lin.gx, torch.randn_like(lin.x)
        value, neumann = x.new_zeros(x.shape[0]), v
        for k, u in enumerate(vjp_powers(lin.vjp, v, n, create_graph=False), start=1):
            value = value + (-1) ** (k + 1) * weights[k - 1] / k * dot(u, v)
            neumann = neumann + (-1) ** k * weights[k - 1] * u
        if not train:
            return (x + gx).detach(), value
        surrogate = dot(lin.vjp(neumann, True), v)
        return x + gx, value + surrogate - surrogate.detach()
