"""StocBiO (Ji, Yang, Liang, "Bilevel optimization: convergence analysis and enhanced design", ICML 2021).

Per outer iteration: T SGD steps on z (warm-started), the hypergradient's linear system by a truncated Neumann
series of Q stochastic Hessians, v = -rho sum_{q<Q} prod (I - rho H_q) d_z F_j (Q SGD steps from v = 0), then
x <- x - gamma (d2_xz G_i v + d_x F_j). Defaults: benchopt's tuned values (T = Q = 10).
"""

from __future__ import annotations

from ctbench import Manifest
from reference_impls.bilevel._common import TwoLoop


class StocBiO(TwoLoop):
    manifest = Manifest(
        name="stocbio",
        authors=("Kaiyi Ji", "Junjie Yang", "Yingbin Liang"),
        url="https://arxiv.org/abs/2010.07962",
        description="inner SGD loop + Neumann-series hypergradient",
    )
    warm_start_v = False
    defaults = {
        "quadratic": {"step_size": 0.1, "outer_ratio": 1.0, "n_inner_steps": 10, "n_v_steps": 10},
        "hyperparam": {"step_size": 0.125, "outer_ratio": 1.0, "n_inner_steps": 10, "n_v_steps": 10},
        "datacleaning": {"step_size": 0.01, "outer_ratio": 1e-5, "n_inner_steps": 10, "n_v_steps": 10},
    }
