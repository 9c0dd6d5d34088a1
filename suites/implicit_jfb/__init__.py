"""Implicit networks trained with Jacobian-free backpropagation (Fung et al., AAAI 2022)."""

from suites.implicit_jfb.task import ImplicitJFB

TASK = ImplicitJFB()
