"""AIS with 100 temperatures, the paper's AIS-100 (Cao & Vanden-Eijnden 2022, section 5), at every scale."""

from __future__ import annotations

from ctbench import Manifest
from reference_impls.neis.ais import AIS


class AIS100(AIS):
    manifest = Manifest(
        name="ais_100",
        authors=("Radford M. Neal",),
        url="https://arxiv.org/abs/physics/9803008",
        description="annealed importance sampling with 100 temperatures (the paper's AIS-100), MALA transitions",
    )
    temperatures = 100
