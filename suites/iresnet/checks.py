"""Checks across the cases of one run.

- memory over the sweep of series terms (same experiment, data set, c, scale, seed): the truncated series' step
  memory grows (at least ``GROWTH`` times from the fewest to the most terms), the Neumann-gradient methods' stays
  flat (within ``FLAT``);
- the issue's speed targets, recorded so the page shows the measured ratio: training throughput of iresnet and
  residual_flow at least normflows' at equal architecture; log-det evaluation of iresnet at least FrEIA's at equal
  series length.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ctbench import Check, RunCheck

GROWTH = 1.5  # iresnet: step memory at the most terms / at the fewest (>= 4x the terms)
FLAT = 0.25  # Neumann gradient: at most 25% more memory at the most terms
MEMORY_SHAPE = {"iresnet": "grows", "residual_flow": "flat", "normflows_residual": "flat"}
SPEED = [  # (metric, method, peer)
    ("throughput_samples_s", "iresnet", "normflows_residual"),
    ("throughput_samples_s", "residual_flow", "normflows_residual"),
    ("eval_throughput_samples_s", "iresnet", "freia_iresnet"),
]


def _groups(cases: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """{setting (json of scale, dataset, experiment, c, seed): {impl: {terms: metrics}}} over the ok cases."""
    groups: dict[str, dict[str, dict[int, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    for case in cases:
        if case["status"] != "ok":
            continue
        p = case["params"]
        key = json.dumps(
            {
                "scale": case["scale"],
                "dataset": case["dataset"],
                "experiment": p["experiment"],
                "c": p["c"],
                "seed": case["seed"],
            },
            sort_keys=True,
        )
        groups[key][case["impl"]][int(p["terms"])] = case["metrics"]
    return groups


def sweep_checks(task: str, cases: Sequence[Mapping[str, Any]]) -> list[RunCheck]:
    checks: list[RunCheck] = []
    for key, impls in _groups(cases).items():
        where = json.loads(key)
        for impl, by_terms in impls.items():
            mem = {t: m["step_peak_memory_bytes"] for t, m in by_terms.items() if "step_peak_memory_bytes" in m}
            if impl not in MEMORY_SHAPE or len(mem) < 2:
                continue
            lo, hi = min(mem), max(mem)
            ratio = mem[hi] / max(mem[lo], 1.0)
            span = f"step memory at {hi} terms / at {lo} terms"
            check = (
                Check.at_least(ratio, GROWTH, span)
                if MEMORY_SHAPE[impl] == "grows"
                else Check.at_most(ratio, 1 + FLAT, span)
            )
            checks.append(RunCheck(task, f"memory_{MEMORY_SHAPE[impl]}_in_terms", check, {**where, "impl": impl}))
        for metric, method, peer in SPEED:
            common = sorted(
                t
                for t in set(impls.get(method, {})) & set(impls.get(peer, {}))
                if metric in impls[method][t] and metric in impls[peer][t]
            )
            for t in common:
                ratio = impls[method][t][metric] / impls[peer][t][metric]
                checks.append(
                    RunCheck(
                        task,
                        f"{metric}_vs_{peer}",
                        Check.at_least(ratio, 1.0, f"{method} / {peer}"),
                        {**where, "impl": method, "terms": t},
                    )
                )
    return checks
