"""``iresnet``: invertible residual networks for density estimation and classification.

Log-determinants of residual blocks x + g(x) with Lip(g) <= c < 1 (Behrmann et al. 2019; Chen et al. 2019). Per
case (a log-det method, an experiment and data set, the spectral coefficient c, the series length n): the engine
measures one training step (time, working memory, throughput); the evaluation trains the model (phase
``training``), then measures test NLL, the estimator's bias and spread against the exact log-det, log-det
evaluation throughput (phase ``eval``), inversion error and the blocks' Lipschitz constants. The protocol is in
``protocol.py``, the memory and speed checks across cases in ``checks.py``, the 2-D samples figure in ``plots.py``.

The scales' settings are in ``configs.py``. Threads: one at smoke (every model there is tiny). At small and full
the scale leaves threads to the run (``--threads``; the command line's default on a CPU is already one thread, and
on a GPU they do not matter). Cases with c >= 1 are negative controls: expected invalid (not contractive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import (
    Claim,
    Context,
    LinePlot,
    Metric,
    Paper,
    PaperNumber,
    Phase,
    Policy,
    Prepared,
    Ratio,
    RunCheck,
    Scale,
    Step,
    Task,
)
from suites.iresnet import checks, configs, controls, protocol
from suites.iresnet.data import DATASETS
from suites.iresnet.interface import ResidualLogDet

SWEEP_IMPLS = ("iresnet", "residual_flow", "normflows_residual")  # the memory sweep over series terms
# ``config["methods_for"]`` may narrow the sweep and the non-contractive case to fewer methods (smoke's budget)


def _vs_terms(name: str, metric: str, label: str, factor: float = 1.0) -> LinePlot:
    where = {"experiment": "density_2d"}  # the sweep over series terms runs on the first 2-D data set
    return LinePlot(name, "param.terms", metric, "series terms n", label, scale_y=factor, where=where)


class IResNetTask(Task):
    name = "iresnet"
    paper = Paper(
        title="Invertible Residual Networks",
        authors="Jens Behrmann, Will Grathwohl, Ricky T. Q. Chen, David Duvenaud, Joern-Henrik Jacobsen",
        venue="ICML 2019",
        url="https://arxiv.org/abs/1811.00995",
    )
    summary = (
        "Log-determinants of invertible residual blocks x + g(x), Lip(g) <= c < 1: i-ResNet's truncated power "
        "series, Residual Flows' unbiased roulette with Neumann gradients, the exact Jacobian, normflows and FrEIA."
    )
    interface = ResidualLogDet
    primary_metric = "test_nll"
    step = Step(
        "one training step (a batch's loss with the method's log-det, backward, optimiser update)",
        {"samples": "training examples"},
    )
    phases = {
        "training": Phase(
            "the training run (the scale's steps, from the initial weights)", {"samples": "training examples"}
        ),
        "eval": Phase(
            "forward + log-det of the probe batch without gradient (classification: inference)", {"samples": "inputs"}
        ),  # fmt: skip
    }
    metrics = {
        "test_nll": Metric("nats", False, "test negative log-likelihood per example (classification: of the label)"),
        "true_nll": Metric("nats", None, "the true density's NLL on the same test points (2-D)"),
        "bits_per_dim": Metric("bits", False, "test bits per dimension (images)"),
        "test_accuracy": Metric("fraction", True, "test accuracy (classification)"),
        "inverse_error": Metric("", False, "||F^-1(F(x)) - x|| / ||x|| on test inputs"),
        "inverse_iterations": Metric("evaluations", None, "most evaluations of g one block's inversion used"),
        "inverse_residual": Metric("", None, "largest ||x^ + g(x^) - y|| / ||y|| a block's inversion left"),
        "lipschitz_measured": Metric("", None, "largest ||J_g(x)||_2 over blocks and test inputs (vs c)"),
        "logdet_bias": Metric("nats", None, "mean of (estimated - exact) total log-det, same inputs"),
        "logdet_std": Metric("nats", False, "standard deviation of the estimated total log-det per input"),
        "throughput_vs_normflows": Metric(
            "x",
            True,
            "the training step's throughput over normflows' residual flow's at the same series length and model: "
            "median of single steps timed in alternating pairs within the case (iresnet, residual_flow)",
            hardware=True,
        ),
        "training_throughput_vs_normflows": Metric(
            "x",
            True,
            "the same over chunks of consecutive training steps (normflows' random series lengths averaged)",
            hardware=True,
        ),
        "series_terms": Metric(
            "terms", None, "series terms the method evaluated per block and step in the pairs against normflows"
        ),
        "normflows_series_terms": Metric(
            "terms",
            None,
            "series terms normflows' roulette evaluated per block and step in the same pairs (n + M, M ~ "
            "Geometric(1/2)), without a graph, besides the one product it differentiates",
        ),
    }
    paper_numbers = (
        PaperNumber("bits_per_dim", 1.06, "iresnet", "mnist", "Behrmann et al. 2019, Table 2"),
        PaperNumber("bits_per_dim", 3.45, "iresnet", "cifar10", "Behrmann et al. 2019, Table 2"),
        PaperNumber("bits_per_dim", 0.97, "residual_flow", "mnist", "Chen et al. 2019, Table 1"),
        PaperNumber("bits_per_dim", 3.28, "residual_flow", "cifar10", "Chen et al. 2019, Table 1"),
    )
    scales = {
        "smoke": Scale(
            "smoke",
            grid={"experiment": ["density_2d"], "dataset": ["eight_gaussians"], "c": [0.9, 1.5], "terms": [4, 12]},
            config=configs.SMOKE,
            timeout_s=120,
            policy=Policy(warmup=2, repeat=20, memory_repeat=configs.MEMORY_READINGS),
            threads=1,
            seeds=(0, 1, 2),  # its quality is ranked and cheap: three seeds give every row a spread
        ),
        # scripts/gpu_check.sh on one GPU: small's 2-D setting, briefly (configs.GPU_SMOKE): the throughput
        # against normflows at n = 5 and 20 (timed in the methods' cases), the memory sweep n = 5 -> 20, the
        # non-contractive control (c = 1.5)
        "gpu-smoke": Scale(
            "gpu-smoke",
            grid={"experiment": ["density_2d"], "dataset": ["eight_gaussians"], "c": [0.9, 1.5], "terms": [5, 20]},
            config=configs.GPU_SMOKE,
            timeout_s=30,
            policy=Policy(
                warmup=2, repeat=10, memory_repeat=configs.MEMORY_READINGS, energy_block_s=0.2, energy_blocks=1
            ),
        ),
        "small": Scale(
            "small",
            grid={
                "experiment": ["density_2d", "density_images", "classification"],
                "dataset": ["eight_gaussians", "two_moons", "checkerboard", "fashion-mnist"],
                "c": [0.9, 1.5, None],
                "terms": [5, 2, 10, 20],
            },
            config=configs.SMALL,
            timeout_s=3600,
            policy=Policy(warmup=2, repeat=10, memory_repeat=configs.MEMORY_READINGS),
        ),
        "full": Scale(
            "full",
            grid={
                "experiment": ["density_2d", "density_images", "classification"],
                "dataset": ["eight_gaussians", "two_moons", "checkerboard", "fashion-mnist", "mnist", "cifar10"],
                "c": [0.9, 1.5, None],
                "terms": [5, 2, 10, 20],
            },
            config=configs.FULL,
            timeout_s=48 * 3600,
            policy=Policy(warmup=2, repeat=20, memory_repeat=configs.MEMORY_READINGS),
        ),
    }
    claims = (
        Claim(
            "inverse_error",
            "A residual block x + g(x) with Lip(g) < 1 is invertible, and its inverse is the limit of the "
            "fixed-point iteration x_{k+1} = y - g(x_k), which converges exponentially (Banach fixed-point theorem).",
            "Behrmann et al. 2019, Sec. 2, Theorem 1 and Algorithm 1",
            controls.inverse_error,
            "case",
        ),
        Claim(
            "lipschitz",
            "Spectral normalisation of every weight to norm at most c < 1, with 1-Lipschitz activations, makes "
            "Lip(g) <= c.",
            "Behrmann et al. 2019, Sec. 2, satisfying the Lipschitz constraint (spectral normalisation)",
            controls.lipschitz,
            "case",
        ),
        Claim(
            "logdet_unbiased",
            "The Russian roulette estimator of the log-det's power series, with terms reweighted by 1 / P(N >= k), "
            "is unbiased.",
            "Chen et al. 2019 (Residual Flows), Sec. 3.1, Theorem 1 (unbiased log density estimation)",
            controls.logdet_unbiased,
            "case",
        ),
        Claim(
            "logdet_bias_bound",
            "The log-det's power series truncated after n terms errs by at most "
            "-d (log(1 - Lip(g)) + sum_{k=1}^n Lip(g)^k / k).",
            "Behrmann et al. 2019, Sec. 3, Theorem 3 (approximation error of the truncated series)",
            controls.logdet_bias_bound,
            "case",
        ),
        Claim(
            "memory_grows_in_terms",
            "Backpropagating through the truncated power series keeps the graph of every term: training memory "
            "grows with the number of terms.",
            "Chen et al. 2019 (Residual Flows), Sec. 3.2, memory-efficient backpropagation",
            controls.memory_grows_in_terms,
        ),
        Claim(
            "memory_flat_in_terms",
            "The Neumann-series gradient estimator needs no graph of the power series: training memory stays "
            "constant in the number of terms.",
            "Chen et al. 2019 (Residual Flows), Sec. 3.2, Neumann gradient series (memory-efficient backpropagation)",
            controls.memory_flat_in_terms,
        ),
        Claim(
            "throughput_samples_s_vs_normflows_residual",
            "A speed target of this benchmark, not a paper claim: the reference's training step (i-ResNet's, Residual "
            "Flows') processes at least as many samples per second as normflows' residual flow at equal architecture "
            "and series length, at every series length of the grid: single steps timed in alternating pairs within "
            "the case, decided by the 95% interval of their median ratio; the series terms each side evaluated "
            "(normflows' roulette draws counted) are recorded beside it.",
            "benchmark target; peer: normflows (Stimper et al. 2023, JOSS)",
            controls.throughput_samples_s_vs_normflows_residual,
        ),
        Claim(
            "training_throughput_samples_s_vs_normflows_residual",
            "A speed target of this benchmark, not a paper claim: the reference's training (i-ResNet's, Residual "
            "Flows') processes at least as many samples per second as normflows' residual flow at equal architecture "
            "and series length, at every series length of the grid: chunks of consecutive training steps timed in "
            "alternating pairs within the case (normflows' random series lengths averaged over each chunk), decided "
            "by the 95% interval of their median ratio.",
            "benchmark target; peer: normflows (Stimper et al. 2023, JOSS)",
            controls.training_throughput_samples_s_vs_normflows_residual,
        ),
        Claim(
            "eval_throughput_samples_s_vs_freia_iresnet",
            "A speed target of this benchmark, not a paper claim: i-ResNet's log-det evaluation processes at least "
            "as many samples per second as FrEIA's i-ResNet block at equal series length.",
            "benchmark target; peer: FrEIA (Ardizzone et al., Framework for Easily Invertible Architectures)",
            controls.eval_throughput_samples_s_vs_freia_iresnet,
        ),
    )
    headline_ratios = (Ratio("i-ResNet truncated series vs Residual Flows", "iresnet", ("residual_flow",)),)
    line_plots = (
        LinePlot(
            "test_nll_vs_terms",
            "param.terms",
            "test_nll",
            "series terms n",
            "test NLL (nats)",
            facet="experiment",
            kind="bar",
        ),  # fmt: skip
        _vs_terms("step_memory_vs_terms", "step_peak_memory_bytes", "training step memory (MiB)", 2**-20),
        _vs_terms("step_time_vs_terms", "step_time_s", "training step time (s)"),
    )
    bench_params = ({"experiment": "density_2d", "dataset": "eight_gaussians", "c": 0.9, "terms": 4},)

    def skip(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        experiment, dataset, c, terms = params["experiment"], params["dataset"], params["c"], params["terms"]
        if dataset not in DATASETS.get(experiment, ()):
            return f"{dataset} is not a data set of {experiment}"
        if experiment == "classification":
            if impl != "iresnet":
                return "classification uses no log-det: it runs once, with iresnet"
            if c is not None and c >= 1:
                return "classification compares c < 1 with the unconstrained network (c=None)"
            return None if terms == scale.grid["terms"][0] else "classification uses no series"
        if c is None:
            return "c=None (no normalisation) is the classification baseline"
        if impl == "exact" and experiment != "density_2d":
            return "the exact log-det is for low dimensions"
        first = experiment == scale.grid["experiment"][0] and dataset == scale.grid["dataset"][0]
        narrowed = scale.config.get("methods_for", {})
        sweep = narrowed.get("terms", SWEEP_IMPLS)
        if terms != scale.grid["terms"][0] and not (first and impl in sweep and c < 1):
            return f"the sweep over series terms runs for {', '.join(sweep)} on the first data set at c < 1"
        if c >= 1 and not (first and impl in narrowed.get("c>=1", (impl,))):
            return "the non-contractive case (c >= 1) runs on the first data set" + (
                f" for {', '.join(narrowed['c>=1'])}" if "c>=1" in narrowed else ""
            )
        return None

    def expected_invalid(self, impl: str, scale: Scale, params: Mapping[str, Any]) -> str | None:
        c = params.get("c")
        if params.get("experiment") != "classification" and c is not None and c >= 1:
            return f"negative control: c = {c} >= 1 leaves the blocks not contractive (Theorem 1 needs Lip(g) < 1)"
        return None

    def prepare(self, impl: ResidualLogDet, scale: Scale, params: Mapping[str, Any], ctx: Context) -> Prepared:
        return protocol.prepare(impl, scale, params, ctx)

    def run_checks(self, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
        return checks.sweep_checks(self.name, cases)

    def plots(self, cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from suites.iresnet.plots import task_plots

        return task_plots(cases, records)
