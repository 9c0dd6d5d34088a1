"""The memory-free discrete adjoint (Sander, Ablin, Peyre 2022, section 3).

Forward: x_{n+1} = x_n + h Phi_n(x_n) for n = 0..N-1 without storing any x_n (only x_N is kept).
Backward: from x_N and a_N = dL/dx_N, for n = N-1..0,

    x_n ~ x_{n+1} + h Phi_n(x_{n+1}; -h)              (run the scheme backwards in time: the reversal)
    a_n = a_{n+1} + [d(h Phi_n)/dx_n]^T a_{n+1}        (vector-Jacobian product at the recovered point)
    dL/dtheta_n = [d(h Phi_n)/dtheta_n]^T a_{n+1}      (accumulated in place into theta_n.grad)

The reversal error per step is O(h^2) for Euler and O(h^3) for Heun, so the gradient is exact as N -> inf
when theta is smooth in depth. Memory holds one block's graph at a time: flat in N. Parameter gradients are
added into existing ``.grad`` buffers rather than returned, since returning them would hold all N at once.
"""

from __future__ import annotations

import torch

from suites.adjoint_resnet.interface import StageGradient
from suites.adjoint_resnet.model import ResidualStage


def reverse_step(stage: ResidualStage, n: int, y: torch.Tensor) -> torch.Tensor:
    """x_n recovered from x_{n+1}: the scheme's step with -h."""
    return y + stage.increment(n, y, -stage.h)


class _AdjointStage(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, stage: ResidualStage, *params: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for n in range(stage.depth):
                x = stage.step(n, x)
        ctx.stage = stage
        ctx.x_requires_grad = ctx.needs_input_grad[0]
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, a: torch.Tensor):
        stage: ResidualStage = ctx.stage
        (x,) = ctx.saved_tensors
        for n in reversed(range(stage.depth)):
            with torch.no_grad():
                x = reverse_step(stage, n, x)
            block_params = [p for p in stage.blocks[n].parameters() if p.requires_grad]
            with torch.enable_grad():
                x_in = x.detach().requires_grad_(True)
                out = stage.step(n, x_in)
                grads = torch.autograd.grad(out, [x_in, *block_params], a)
            a = grads[0]
            for p, g in zip(block_params, grads[1:], strict=True):
                if p.grad is None:
                    p.grad = g
                else:
                    p.grad.add_(g)
        n_params = len(ctx.needs_input_grad) - 2
        return (a if ctx.x_requires_grad else None), None, *([None] * n_params)


class DiscreteAdjoint(StageGradient):
    """Run the stage forward without storing activations; recover them backwards in the backward pass."""

    def forward(self, stage: ResidualStage, x: torch.Tensor) -> torch.Tensor:
        params = [p for p in stage.parameters() if p.requires_grad]
        return _AdjointStage.apply(x, stage, *params)

    def reverse(self, stage: ResidualStage, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for n in reversed(range(stage.depth)):
                y = reverse_step(stage, n, y)
        return y
