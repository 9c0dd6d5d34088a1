"""A residual branch g linearised at x: g(x), the vector-Jacobian product u -> u^T J_g(x), and weighted sums of
its powers sum_k c_k v^T J^k.

Every log-det estimator applies the same Jacobian J_g(x) n times (u_k = u_{k-1}^T J). For a chain of linear maps
and ELUs, g = W_L o elu o ... o elu o W_1 (``Linear``, or ``Conv2d`` with stride 1), the chain rule gives

    J_g(x) = W_L D_{L-1} W_{L-1} ... D_1 W_1,    D_i = diag(elu'(h_i)),   elu'(h) = 1 (h > 0), elu(h) + alpha (h <= 0),

with h_i the pre-activations of x. ``linearise`` computes the D_i once, from the forward pass, and every product
u^T J = ((u W_L) D_{L-1} ...) W_1 reuses them (a conv's transpose is ``conv_transpose2d`` with the same padding).
Autograd's product instead re-evaluates elu'(h) (an exponential per element) for every product, and its double
backward (when the products are differentiated, as i-ResNet's training does) evaluates it twice more per product;
here elu'(h) and elu''(h) = elu(h) + alpha (h <= 0) come once per block from the D_i's own graph.

``weighted_powers`` with a graph (i-ResNet's training: backprop through all n products) runs the n products as
one autograd function (``_Powers``): its backward walks the products in reverse, u-bar_{k-1} = J u-bar_k + c_{k-1} G,
and adds each factor's gradient in place (W: u_in^T g by ``addmm_``; D: g * u_in by ``addcmul_``) instead of one
autograd node per multiplication with a separate accumulation; it saves the same tensors autograd would (each
factor's input, per product), so memory still grows linearly in n. Same value, same gradient (up to rounding),
tested against autograd's product. Any other g gets autograd's product.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

VJP = Callable[[torch.Tensor, bool], torch.Tensor]  # (u, create_graph) -> u^T J_g(x)
Factor = tuple[str, torch.Tensor, tuple[int, ...]]  # ("scale" | "linear" | "conv", D or W, conv padding)


def as_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` as a tensor that vector-Jacobian products can differentiate against."""
    return x if x.requires_grad else x.detach().requires_grad_(True)


def _plain_conv(m: nn.Conv2d) -> bool:
    return (
        m.stride == (1, 1)
        and m.dilation == (1, 1)
        and m.groups == 1
        and m.padding_mode == "zeros"
        and not isinstance(m.padding, str)
    )


def chain(g: nn.Module) -> list[nn.Module] | None:
    """g's layers if g is a hook-free ``Sequential`` of ``Linear``, stride-1 ``Conv2d`` and ``ELU``; else None."""
    if not isinstance(g, nn.Sequential) or g._forward_hooks or g._forward_pre_hooks:
        return None
    layers = list(g)
    for m in layers:
        kind_ok = isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and _plain_conv(m))
        kind_ok = kind_ok or (isinstance(m, nn.ELU) and not m.inplace)
        if not kind_ok or m._forward_hooks or m._forward_pre_hooks:
            return None
    return layers


def _apply(factor: Factor, u: torch.Tensor) -> torch.Tensor:
    """u times one factor of J (row-vector convention: u -> u D, u -> u W)."""
    kind, f, padding = factor
    if kind == "scale":
        return u * f
    return u @ f if kind == "linear" else F.conv_transpose2d(u, f, padding=padding)


def _adjoint(factor: Factor, u_in: torch.Tensor, grad: torch.Tensor, into: torch.Tensor, need_input: bool):
    """Backward through u_out = u_in (factor): adds d<grad, u_out>/d factor to ``into``; returns d/d u_in (None
    unless ``need_input``)."""
    kind, f, padding = factor
    if kind == "scale":
        into.addcmul_(grad, u_in)
        return grad * f if need_input else None
    if kind == "linear":
        into.addmm_(u_in.t(), grad)
        return grad @ f.t() if need_input else None
    grad_in, grad_w, _ = torch.ops.aten.convolution_backward(
        grad, u_in, f, None, [1, 1], list(padding), [1, 1], True, [0, 0], 1, [need_input, True, False]
    )
    into.add_(grad_w)
    return grad_in


class _Powers(torch.autograd.Function):
    """sum_k c_k v^T J^k for J = the product of the factors, differentiable in the factors (not in v)."""

    @staticmethod
    def forward(ctx, v, coefficients, kinds, paddings, *factors):  # type: ignore[override]
        inputs = []  # inputs[k][i]: what factor i multiplied in product k + 1
        u, series = v, torch.zeros_like(v)
        for c in coefficients:
            inputs.append([])
            for kind, factor, padding in zip(kinds, factors, paddings, strict=True):
                inputs[-1].append(u)
                u = _apply((kind, factor, padding), u)
            series = series.add(u, alpha=c)
        ctx.coefficients, ctx.kinds, ctx.paddings, ctx.inputs = coefficients, kinds, paddings, inputs
        ctx.save_for_backward(*factors)
        return series

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        factors = [(kind, f, pad) for kind, f, pad in zip(ctx.kinds, ctx.saved_tensors, ctx.paddings, strict=True)]
        grads = [torch.zeros_like(f) for _, f, _ in factors]
        carry = None  # u-bar_k: the adjoint of u_k from the later products
        for k in range(len(ctx.coefficients) - 1, -1, -1):
            g = grad * ctx.coefficients[k] if carry is None else carry.add(grad, alpha=ctx.coefficients[k])
            for i in range(len(factors) - 1, -1, -1):  # v (k = 0, i = 0) needs no gradient
                g = _adjoint(factors[i], ctx.inputs[k][i], g, grads[i], need_input=bool(k or i))
            carry = g
        return (None, None, None, None, *grads)


class Linearised:
    """g at x: ``x`` (the tensor g(x) depends on), ``gx`` = g(x), products with J_g(x)."""

    def __init__(self, g: nn.Module, x: torch.Tensor):
        """g evaluated at x in the ambient grad mode (autograd's fallback always records a graph)."""
        layers = chain(g)
        self.factors: list[Factor] | None = None
        if layers is None:
            with torch.enable_grad():
                self.x = as_input(x)
                self.gx = g(self.x)
            return
        factors: list[Factor] = []  # the Jacobian's factors, last layer first
        h = x
        for m in layers:
            if isinstance(m, nn.ELU):
                a = F.elu(h, m.alpha)
                # elu'(h): 1 (h > 0), elu(h) + alpha (h <= 0, where elu(h) <= 0): with alpha = 1, min(elu(h), 0) + 1
                slope = a.clamp(max=0.0) + 1.0 if m.alpha == 1.0 else torch.where(h > 0, 1.0, a + m.alpha)
                factors.append(("scale", slope, ()))
                h = a
            else:
                w = m.weight  # read once: a parametrised weight (and its power iteration) is evaluated once per call
                if isinstance(m, nn.Linear):
                    h = F.linear(h, w, m.bias)
                    factors.append(("linear", w, ()))
                else:
                    h = F.conv2d(h, w, m.bias, padding=m.padding)
                    factors.append(("conv", w, tuple(m.padding)))
        factors.reverse()
        self.x, self.gx, self.factors = x, h, factors

    def vjp(self, u: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """u^T J_g(x), with a graph only when ``create_graph``."""
        if self.factors is None:
            with torch.enable_grad():
                return torch.autograd.grad(self.gx, self.x, u, create_graph=create_graph, retain_graph=True)[0]
        with torch.set_grad_enabled(create_graph):
            for factor in self.factors:
                u = _apply(factor, u)
        return u

    def weighted_powers(self, v: torch.Tensor, coefficients: list[float], create_graph: bool) -> torch.Tensor:
        """sum_{k=1}^n c_k v^T J^k, differentiable through every product when ``create_graph``."""
        if create_graph and self.factors is not None and any(f.requires_grad for _, f, _ in self.factors):
            kinds, factors, paddings = zip(*self.factors, strict=True)
            return _Powers.apply(v, list(coefficients), kinds, paddings, *factors)
        series, u = torch.zeros_like(v), v
        for c in coefficients:
            u = self.vjp(u, create_graph)
            series = series.add(u, alpha=c)
        return series


def linearise(g: nn.Module, x: torch.Tensor) -> Linearised:
    """g linearised at x (see the module's docstring)."""
    return Linearised(g, x)
