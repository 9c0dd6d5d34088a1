"""FLOP counts: exact for the operators PyTorch has formulas for, zero for the rest, and unbroken by a backward
pass run inside a forward one (as an adjoint method's custom Function does)."""

import torch

from ctbench.api.flops import count_flops


def test_a_matrix_product_and_its_backward_count_two_flops_per_multiply_add():
    a = torch.randn(4, 5, requires_grad=True)
    b = torch.randn(5, 6)
    assert count_flops(lambda: a @ b) == 2 * 4 * 5 * 6
    # backward of a @ b with respect to a alone: grad (4x6) @ b.T (6x5)
    assert count_flops(lambda: (a @ b).sum().backward()) == 2 * (2 * 4 * 5 * 6)


def test_element_wise_work_counts_zero():
    x = torch.randn(1000)
    assert count_flops(lambda: (x * 2 + 1).exp().sum()) == 0


def test_a_backward_pass_inside_a_custom_functions_forward_is_counted():
    w = torch.randn(3, 3, requires_grad=True)

    class Inner(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            with torch.enable_grad():
                y = x.detach().requires_grad_() @ w
                (g,) = torch.autograd.grad(y.sum(), w)  # 3x3 @ ... : one product of 2*3*3*3 flops
            return x + g.sum()

        @staticmethod
        def backward(ctx, grad):
            return grad

    x = torch.randn(3, 3, requires_grad=True)
    # forward product x @ w, and the gradient x.T @ dy
    assert count_flops(lambda: Inner.apply(x)) == 2 * (2 * 3 * 3 * 3)


def test_a_doubled_step_counts_double():
    net = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    once = count_flops(lambda: net(x).sum().backward())
    assert once > 0 and count_flops(lambda: [net(x).sum().backward() for _ in range(2)]) == 2 * once
