"""Memory-free discrete adjoint with Heun's scheme, forward and reversal (second order: O(h^3) per step)."""

from ctbench import Manifest
from reference_impls.adjoint_resnet._adjoint import DiscreteAdjoint


class AdjointHeun(DiscreteAdjoint):
    scheme = "heun"
    manifest = Manifest(
        name="adjoint_heun",
        authors=("ctbench", "after Sander, Ablin, Peyre 2022"),
        url="https://arxiv.org/abs/2205.14612",
    )
