"""``neis``: estimate normalising constants with non-equilibrium importance sampling, against vanilla IS and AIS.

Per case (one estimator, one target, one seed; Cao & Vanden-Eijnden 2022, section 5): fit the estimator within the
scale's budget (the ``training`` phase), draw ``n_eval`` estimates of Z1 and count their cost in U1 evaluations,
compare their relative variance with vanilla IS's at equal cost; the engine measures the step, one draw of
``n_time`` estimates (time, working memory, throughput in samples and in U1 evaluations per second). The protocol
is in ``protocol.py``, the checks of a case and of a run in ``checks.py``, the figures ``line_plots`` cannot
declare in ``plots.py``.

A case whose mean is more than 3 standard errors from the exact Z1 completes with ``invalid_reason`` set: its
samples missed part of the target's mass, so its empirical variance (and any reduction computed from it) is not
to be trusted or ranked. A velocity field whose ODE blows up during training makes the case ``invalid`` with the
step; a potential that returns NaN or inf fails the case with the count and location of the bad points.
Vanilla IS on the Gaussian mixtures, and AIS on the paper's examples with few temperatures (the paper's AIS-10,
``ais``) or few samples (smoke's 2000, even for AIS-100, ``ais_100``), are negative controls: they are expected
to miss mass, and their ``invalid`` status is recorded as expected (``checks.negative_control``). Each scale
trains eg2 with the authors' eg2 schedule (``per_target``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Context, LinePlot, Metric, Paper, Phase, Policy, Prepared, RunCheck, Scale, Step, Task
from ctbench.api.claims import Claim
from suites.neis import checks, controls, protocol
from suites.neis.interface import Estimator
from suites.neis.targets import NAMES

_COMMON = {
    "mala_step": 0.05,
    "exact_div_max_dim": 10,
    "seed_fraction": 0.1,  # the paper's eg1 assisted start (biased_percent 0.1, decaying to 0 at 60% of the steps)
    "seed_until": 0.6,
    "lr": 0.3,  # the paper's eg1 step
    "chunk": 4096,
    "temperatures": 10,  # ais's K, the paper's AIS-10 (ais_100 is its AIS-100), at every scale
}
# The authors' eg2 driver: step 0.5 and an assisted start of 0.3 decaying to 0 at 75% of the steps (60 steps of 800
# samples). With eg1's schedule (about 13 of smoke's 128 points moved into the four wells at first, none after step
# 18) neis_mlp learned a flow that avoids the modes: mean 0.012 Z, 117 standard errors low. Smoke trains 60 steps of
# 256 samples on both targets: at 30 x 128, 2 of 14 linear and gradient flows on eg2 (seeds 0-6) kept a tail that
# 2000 samples missed (|z| > 3), and on eg1 3 of 21 flows (neis_gradient at seeds 1 and 2, neis_mlp at 1; neis_linear
# at 3); at 60 x 256 none did on either target (seeds 0-6).
_EG2 = {"lr": 0.5, "seed_fraction": 0.3, "seed_until": 0.75}


def _per_target(name: str, metric: str, label: str) -> LinePlot:
    return LinePlot(name, "param.target", metric, "target", label, ylog=True, kind="bar")


class NEISTask(Task):
    name = "neis"
    paper = Paper(
        title="Learning Optimal Flows for Non-Equilibrium Importance Sampling",
        authors="Yu Cao, Eric Vanden-Eijnden",
        venue="NeurIPS 2022",
        url="https://arxiv.org/abs/2206.09908",
    )
    summary = (
        "Estimate Z = int exp(-U1) by transporting N(0, I) samples along a trained flow and averaging importance "
        "weights over whole trajectories (NEIS), against vanilla importance sampling and annealed importance "
        "sampling, at equal cost in evaluations of U1 and its gradient."
    )
    interface = Estimator
    primary_metric = "variance_reduction"
    step = Step(
        "one draw of n_time estimates of Z1 from the fitted estimator",
        {"samples": "estimates of Z1", "u1_evals": "evaluations of U1 or of its gradient (counted)"},
    )
    phases = {"training": Phase("fit of the estimator within the scale's budget (NEIS: training its flow)")}
    metrics = {
        "variance_reduction": Metric(
            "x",
            True,
            "vanilla IS relative variance / the method's, at equal cost in U1 evaluations (vanilla's "
            "exact variance for Gaussian mixtures, its equal-cost empirical one otherwise)",
        ),
        "variance_reduction_per_sample": Metric(
            "x",
            None,
            "vanilla's relative variance / the method's, per sample (the paper's figure; ignores cost)",
        ),
        "variance_reduction_empirical": Metric(
            "x",
            None,
            "as variance_reduction, against vanilla's empirical variance measured in this case at equal cost",
        ),
        "variance_reduction_with_training": Metric(
            "x",
            None,
            "as variance_reduction, the fit's U1 evaluations counted too, spread over the case's n_eval estimates",
        ),
        "rel_var": Metric("", False, "Var(Z_hat)/Z^2 of one sample"),
        "rel_mse": Metric("", False, "E[(Z_hat - Z)^2]/Z^2 of one sample"),
        "rel_var_x_cost": Metric(
            "",
            False,
            "rel_var x cost_per_sample: relative variance at a budget of one U1 "
            "evaluation (divide by the budget for any equal-cost comparison)",
        ),
        "rel_var_x_cost_with_training": Metric(
            "",
            False,
            "rel_var x (cost_per_sample + training_cost / n_eval): as rel_var_x_cost, the fit's U1 evaluations "
            "spread over the case's estimates",
        ),
        "rel_mse_x_cost": Metric("", False, "rel_mse x cost_per_sample"),
        "mean_ratio": Metric("", None, "mean of the n_eval estimates / exact Z"),
        "bias_z_score": Metric("", None, "(mean - Z) / standard error of the mean"),
        "cost_per_sample": Metric("U1 evals", False, "evaluations of U1 plus of its gradient per sample, counted"),
        "vanilla_rel_var": Metric("", None, "vanilla IS relative variance per sample (exact where closed-form)"),
        "vanilla_rel_var_empirical": Metric(
            "",
            None,
            "vanilla IS relative variance per sample, measured on as many samples as this case's sampling cost",
        ),
        "training_cost": Metric("U1 evals", False, "evaluations of U1 plus its gradient during fit"),
        "final_log10_rel_second_moment": Metric("", False, "log10 E[Z_hat^2]/Z^2 on the last training batch"),
        "training_steps_done": Metric("steps", None, "optimiser steps completed before the flow blew up"),
    }
    scales = {
        "smoke": Scale(
            "smoke",
            grid={"target": ["eg1", "eg2"]},
            config={
                **_COMMON,
                "time_steps": 20,
                "train_steps": 60,
                "train_batch": 256,
                "width": 20,
                "n_eval": 2000,
                "n_time": 500,
                "min_variance_reduction": 10.0,
                "per_target": {"eg2": _EG2},
            },
            seeds=(0, 1, 2),  # its quality is ranked and cheap: three seeds give every row a spread
            timeout_s=240,  # the slowest case, neis_mlp on eg2: 60 steps with an exact 10-D divergence
            policy=Policy(warmup=1, repeat=3, memory_repeat=3),
            threads=1,  # tiny tensors: intra-op threads add synchronisation, and on a busy machine they spin
        ),
        "small": Scale(
            "small",
            grid={"target": list(NAMES)},
            config={
                **_COMMON,
                "time_steps": 50,
                "train_steps": 150,  # eg2 needs them: 50 steps of width 20 left its variance 40-460 (20000 samples)
                "train_batch": 200,
                "width": 30,
                "n_eval": 20000,
                "n_time": 2000,
                "min_variance_reduction": 1e3,
                "per_target": {"eg2": _EG2},
            },
            timeout_s=1800,
            policy=Policy(warmup=1, repeat=5, memory_repeat=3),
            threads=1,
        ),
        "full": Scale(
            "full",
            grid={"target": list(NAMES)},
            # the paper's budgets: N = 100, 1000 samples per step, 200 steps, 30 hidden units
            config={
                **_COMMON,
                "time_steps": 100,
                "train_steps": 200,
                "train_batch": 1000,
                "width": 30,
                "n_eval": 100000,
                "n_time": 10000,
                "min_variance_reduction": 1e3,
                "per_target": {"eg2": _EG2},
            },
            timeout_s=4 * 3600,
            policy=Policy(warmup=1, repeat=5, memory_repeat=3),
        ),
        # one GPU, no network needed (scripts/gpu_check.sh): smoke's targets and steps (these tiny tensors are
        # launch-bound: the time goes with the steps, not the batch) with small's samples and temperatures and the
        # paper's 1000 training samples; targets are synthetic. neis_mlp's training step on eg2 makes about 35k aten
        # calls (profiled on the CPU), ~0.1-0.2 s if launch-bound: about 1-20 s a case, 12 cases.
        "gpu-smoke": Scale(
            "gpu-smoke",
            grid={"target": ["eg1", "eg2"]},
            config={
                **_COMMON,
                "time_steps": 20,
                "train_steps": 60,
                "train_batch": 1000,
                "width": 30,
                "n_eval": 20000,
                "n_time": 2000,
                "chunk": 20000,
                "min_variance_reduction": 10.0,
                "per_target": {"eg2": _EG2},
            },
            timeout_s=60,
            policy=Policy(warmup=1, repeat=3, memory_repeat=3),
        ),
    }

    claims = (
        Claim(
            "unbiased",
            "The NEIS estimator of Z1, an average of importance weights over whole trajectories of the flow, is "
            "unbiased for any velocity field (as vanilla importance sampling and AIS are): each case's mean lies "
            "within 3 standard errors of the exact Z1.",
            "Rotskoff & Vanden-Eijnden, PRL 2019 (the NEIS estimator and its unbiasedness); Cao & Vanden-Eijnden "
            "2022, section 2; the 3-standard-error bound is this protocol's",
            controls.unbiased,
            "case",
        ),
        Claim(
            "neis_variance_reduction",
            "A NEIS flow optimised on the second moment of the estimator reduces its variance by orders of "
            "magnitude against vanilla importance sampling at equal cost on the paper's Gaussian mixtures.",
            "Cao & Vanden-Eijnden 2022, section 5 (eg1, eg2); the threshold is the scale's min_variance_reduction "
            "(1e3 at small and full, 10 at smoke's budget)",
            controls.neis_variance_reduction,
        ),
        Claim(
            "neis_beats_ais",
            "NEIS with a learned flow estimates Z1 with a smaller variance than annealed importance sampling at "
            "equal cost (the paper compares with AIS-10 and AIS-100); decided here with the flow's training "
            "counted in NEIS's cost, the ratio at equal sampling cost beside it.",
            "Cao & Vanden-Eijnden 2022, section 5 (comparison with AIS-10 and AIS-100); an invalid AIS case makes "
            "the check inconclusive; decided at scales with at least 10,000 estimates",
            controls.neis_beats_ais,
        ),
    )

    line_plots = (
        _per_target("equal_cost_variance", "rel_var_x_cost", "relative variance x cost per sample"),
        _per_target("variance_reduction", "variance_reduction", "variance reduction vs vanilla IS at equal cost"),
    )
    bench_params = ({"target": "eg1"},)

    def prepare(self, impl: Estimator, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
        return protocol.prepare(impl, scale, params, ctx)

    def expected_invalid(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        return checks.negative_control(impl, params["target"], scale.config)

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        thresholds = {name: s.config["min_variance_reduction"] for name, s in self.scales.items()}
        estimates = {name: s.config["n_eval"] for name, s in self.scales.items()}
        return checks.paper_checks(self.name, cases, thresholds, estimates)

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from suites.neis.plots import neis_plots

        return neis_plots(cases, records)
