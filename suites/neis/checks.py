"""Checks of one case and the paper's claims across the cases of a run.

Per case: ``unbiased``, |mean(Z_hat/Z) - 1| / (standard error) <= ``MAX_Z_SCORE``; a case that fails it completed,
but its samples missed part of the target's mass, so ``bias_reason`` marks it not to be ranked.

Per (scale, seed, target) of a run, for eg1 and eg2:

- ``neis_variance_reduction``: after training, ``neis_gradient`` reduces the variance against vanilla IS at equal
  cost by at least the scale's ``min_variance_reduction`` (1e3 at small and full; smoke's
  budget cannot train that far, so its threshold is 10). A case that is not ``ok`` counts as 0.
- ``neis_beats_ais``: each NEIS estimator beats AIS at equal cost. The value is AIS's rel_var x cost / NEIS's; it
  passes when the NEIS case is ``ok`` and either the ratio is >= 1 or the AIS case is ``invalid`` (its mean more
  than 3 standard errors from Z: at this cost AIS missed part of the mass, and its empirical variance is then
  only what its samples saw). eg3 and the scaling family are reported, not checked.

Negative controls (``negative_control``, the task's ``expected_invalid``): cases the paper expects to miss mass,
whose ``invalid`` status does not fail a run.

- vanilla IS where its exact relative variance per sample R exceeds the n samples drawn: the standard error of
  the mean, sqrt(R / n) Z, is then above Z, and the samples from N(0, I) almost never reach the far, narrow modes
  (every Gaussian mixture here: R = 1.9e6 on eg1, 2.2e6 on eg2, 1.6e7 to 1.6e10 on the scaling family; the
  funnel, whose R has no closed form, is not declared, and its vanilla cases came out valid at small and full);
- AIS with fewer than ``AIS_MIN_TEMPERATURES`` temperatures on the paper's examples (eg1, eg2, eg3): at so few
  temperatures its weights are heavy-tailed and n samples miss part of the modes' mass. Measured here (seeds
  0-4 at 10 temperatures and 2000 samples, 0-2 at 25 and 20000, 0-1 at 50 and 100000): eg2 invalid 5/5 at 10,
  2/3 at 25, 0/2 at 50; eg1 4/5 at 10, 0/3 at 25, 0/2 at 50; eg3 1/2 at 25. The paper compares NEIS with
  AIS-10 and AIS-100 at NEIS's total budget and finds NEIS better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, RunCheck
from ctbench.api.sweeps import settings
from ctbench.store.results import STATUSES
from suites.neis.stats import Estimates
from suites.neis.targets import make_target

MAX_Z_SCORE = 3.0  # unbiasedness: the mean within 3 standard errors of Z
CHECKED_TARGETS = ("eg1", "eg2")
NEIS_PREFIX = "neis"
PAPER_EXAMPLES = ("eg1", "eg2", "eg3")
AIS_MIN_TEMPERATURES = 50  # below this AIS's weights on the paper's examples are expected to be too heavy-tailed

Case = Mapping[str, Any]


def unbiased(est: Estimates) -> Check:
    """|mean - Z| / standard error of the mean, at most ``MAX_Z_SCORE``."""
    return Check.at_most(abs(est.z_score), MAX_Z_SCORE, "|mean - Z| / standard error of mean")


def bias_reason(est: Estimates) -> str | None:
    """Why a completed case's variance is not to be ranked (its mean is off, or it has no variance), else None."""
    if not (est.rel_var > 0 and math.isfinite(est.z_score)):
        return f"all {est.n} estimates are equal ({est.mean:.4g} Z): no variance to measure"
    if abs(est.z_score) > MAX_Z_SCORE:
        return (
            f"mean of {est.n} estimates is {est.mean:.4g} Z, {est.z_score:+.1f} standard errors from Z: the "
            "samples missed part of the target's mass, so the empirical variance is not reliable"
        )
    return None


def negative_control(impl: str, target: str, config: Mapping[str, Any]) -> str | None:
    """Why the paper expects ``impl`` on ``target`` at this scale's ``config`` to be invalid, or None (above)."""
    n, temperatures = config["n_eval"], config["temperatures"]
    if impl == "vanilla_is" and target != "eg3":
        rel_var = make_target(target).vanilla_rel_var
        if rel_var is not None and rel_var > n:
            return (
                f"vanilla IS from N(0, I) on {target}: its exact relative variance per sample is {rel_var:.2g}, "
                f"more than the {n} samples drawn, so they almost never reach the far, narrow modes (the "
                "variance NEIS is built to reduce; Cao & Vanden-Eijnden 2022, section 5)"
            )
    if impl == "ais" and target in PAPER_EXAMPLES and temperatures < AIS_MIN_TEMPERATURES:
        return (
            f"AIS with {temperatures} temperatures ({2 * temperatures} U1 evaluations per sample) on {target}: at "
            f"so few temperatures its weights are heavy-tailed, and {n} samples miss part of the modes' mass; the "
            "paper finds NEIS better than AIS at equal cost (its comparison with AIS-10 and AIS-100)"
        )
    return None


def _beats_ais(impl: str, case: Case, ais: Case) -> Check:
    ratio = ais["metrics"]["rel_var_x_cost"] / case["metrics"]["rel_var_x_cost"]
    passed = case["status"] == "ok" and (ratio >= 1 or ais["status"] == "invalid")
    desc = f"AIS rel_var x cost / {impl}'s (AIS {ais['status']}, {impl} {case['status']})"
    return Check(ratio, 1.0, passed, desc)


def paper_checks(task: str, cases: Sequence[Case], thresholds: Mapping[str, float]) -> list[RunCheck]:
    """The two claims above; ``thresholds`` maps a scale to its ``min_variance_reduction``."""
    groups = settings(cases, params=("target",), keys=("scale", "seed"), statuses=STATUSES)
    checked = sorted(
        ((scope, by_impl) for scope, by_impl in groups if scope["target"] in CHECKED_TARGETS),
        key=lambda group: (group[0]["scale"], group[0]["seed"], group[0]["target"]),
    )
    checks = []
    for scope, by_impl in checked:
        grad = by_impl.get("neis_gradient")
        if grad is not None and scope["scale"] in thresholds:
            value = grad["metrics"].get("variance_reduction", 0.0) if grad["status"] == "ok" else 0.0
            desc = f"neis_gradient variance reduction vs vanilla at equal cost ({grad['status']})"
            check = Check.at_least(value, thresholds[scope["scale"]], desc)
            checks.append(RunCheck(task, "neis_variance_reduction", check, scope))
        ais = by_impl.get("ais")
        if ais is None or "rel_var_x_cost" not in ais["metrics"]:
            continue
        for impl, case in by_impl.items():
            if impl.startswith(NEIS_PREFIX) and "rel_var_x_cost" in case["metrics"]:
                checks.append(RunCheck(task, "neis_beats_ais", _beats_ais(impl, case, ais), {**scope, "impl": impl}))
    return checks
