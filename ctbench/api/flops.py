"""Floating-point operations of one call, counted from the operators it dispatches: a cost that does not depend on
the machine, for claims stated in operations rather than seconds.

Each ATen operator the call runs passes through a ``TorchDispatchMode``; where PyTorch's FLOP formulas
(``torch.utils.flop_counter.flop_registry``: matrix products, convolutions and their backward passes, attention)
know the operator, its count is added. Element-wise operators, reductions and work outside torch count zero: the
count is that of the products that dominate a network's step, the quantity cost models of backprop, checkpointing
and adjoint methods are written in (a forward pass F, a backward pass about 2F).

``torch.utils.flop_counter.FlopCounterMode`` counts the same operators, but also tracks modules with hooks that
break a backward pass run inside the forward one (``torch.autograd.grad`` in an adjoint method's custom
``Function``); this mode tracks nothing but the operators.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.total: int = 0

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def count_flops(fn: Callable[[], Any]) -> int:
    """The floating-point operations of one call of ``fn`` (a multiply-add counts two), forward and backward, on
    any device; the call runs for real (a training step updates its weights)."""
    counter = _Counter()
    with counter:
        fn()
    return counter.total
