"""AmIGO (Arbel, Mairal, "Amortized implicit differentiation for stochastic bilevel optimization", ICLR 2022).

Per outer iteration: T SGD steps on z and T SGD steps on the linear system d2_zz G v = -d_z F, both warm-started
from the previous iteration (the amortisation), then x <- x - gamma (d2_xz G_i v + d_x F_j).
Defaults: benchopt's tuned values (T = 10).
"""

from __future__ import annotations

from ctbench import Manifest
from reference_impls.bilevel._common import TwoLoop


class AmIGO(TwoLoop):
    manifest = Manifest(
        name="amigo",
        authors=("Michael Arbel", "Julien Mairal"),
        url="https://arxiv.org/abs/2111.14580",
        description="warm-started inner and linear-system SGD loops",
    )
    warm_start_v = True
    defaults = {
        "quadratic": {"step_size": 0.1, "outer_ratio": 1.0, "n_inner_steps": 10, "n_v_steps": 10},
        "hyperparam": {"step_size": 0.125, "outer_ratio": 0.316, "n_inner_steps": 10, "n_v_steps": 10},
        "datacleaning": {"step_size": 0.001, "outer_ratio": 1e-5, "n_inner_steps": 10, "n_v_steps": 10},
    }
