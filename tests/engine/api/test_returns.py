"""``expect_tensor``: what a method returns is a tensor of the promised shape and dtype, or a clear error."""

from __future__ import annotations

import pytest
import torch

from ctbench import ReturnError, expect_tensor


def test_a_tensor_of_the_promised_shape_and_dtype_is_returned_as_is():
    x = torch.zeros(4, 3)
    assert expect_tensor(x, (4, None), torch.float32, "M.f") is x
    assert expect_tensor(x, None, None, "M.f") is x


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (torch.zeros(4, 1), "M.forward returned a tensor of shape (4, 1) float32; expected shape (4,) float32"),
        (torch.zeros(4, dtype=torch.float64), "returned a tensor of shape (4,) float64; expected shape (4,) float32"),
        (torch.zeros(3), "returned a tensor of shape (3,) float32; expected shape (4,) float32"),
        ([0.0] * 4, "M.forward returned list; expected a tensor of shape (4,) float32"),
        (None, "M.forward returned NoneType; expected a tensor of shape (4,) float32"),
    ],
)
def test_anything_else_names_the_method_what_was_expected_and_what_came(value, message):
    with pytest.raises(ReturnError) as info:
        expect_tensor(value, (4,), torch.float32, "M.forward")
    assert str(info.value).startswith("M.forward returned ") and str(info.value).endswith(message)
    assert isinstance(info.value, ValueError)


def test_a_free_dimension_is_shown_as_a_star():
    with pytest.raises(ReturnError, match=r"expected shape \(\*, 2\) float32"):
        expect_tensor(torch.zeros(3, 3), (None, 2), torch.float32, "M.field")
