"""Memory-free discrete adjoint with Euler's scheme: x_n ~ x_{n+1} - h f_n(x_{n+1})."""

from ctbench import Manifest
from reference_impls.adjoint_resnet._adjoint import DiscreteAdjoint


class AdjointEuler(DiscreteAdjoint):
    scheme = "euler"
    manifest = Manifest(
        name="adjoint_euler",
        authors=("ctbench", "after Sander, Ablin, Peyre 2022"),
        url="https://arxiv.org/abs/2205.14612",
    )
