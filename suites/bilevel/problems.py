"""Build a case's problem from its name and the scale's settings; compute (and cache) its h*."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from suites.bilevel.data import cleaning_data, hyperparam_data
from suites.bilevel.exact import minimum
from suites.bilevel.logreg import datacleaning_problem, hyperparam_problem
from suites.bilevel.problem import BilevelProblem
from suites.bilevel.quadratic import quadratic_problem
from suites.bilevel.simulated import benchopt_problem

HYPERPARAM_DATA = {"hyperparam": "ijcnn1", "hyperparam-covtype": "covtype"}  # problem name -> LIBSVM set
QUADRATICS = ("quadratic", "quadratic-benchopt")  # the task's generator, benchopt's ``simulated`` generator


def kind_of(problem: str) -> str:
    """``hyperparam-covtype`` -> ``hyperparam``, ``datacleaning-p0.7`` -> ``datacleaning``,
    ``quadratic-benchopt`` -> ``quadratic``; unknown names raise."""
    kind = problem.split("-", 1)[0]
    if problem not in (*QUADRATICS, *HYPERPARAM_DATA, "datacleaning") and not problem.startswith("datacleaning-p"):
        valid = ", ".join((*QUADRATICS, *HYPERPARAM_DATA, "datacleaning", "datacleaning-p<corruption>"))
        raise ValueError(f"unknown bilevel problem {problem!r}; valid: {valid}")
    return kind


def settings(problem: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The scale's settings of this problem (its own entry, or its kind's); ``datacleaning-p0.7`` sets the
    corruption to 0.7."""
    kind = kind_of(problem)
    out = dict(config[problem] if problem in config else config[kind])
    if kind == "datacleaning" and problem != kind:
        try:
            out["corruption"] = float(problem.removeprefix("datacleaning-p"))
        except ValueError:
            raise ValueError(f"bilevel problem {problem!r}: write the corruption as datacleaning-p0.7") from None
    return out


def build(problem: str, config: Mapping[str, Any], data_root: Path, cache_dir: Path) -> BilevelProblem:
    """The problem, named ``problem``, on the CPU in its own dtype (float64 for the task's quadratic, float32 for
    ``quadratic-benchopt``, as benchopt, and for the learning problems)."""
    kind, s = kind_of(problem), settings(problem, config)
    if kind == "quadratic":
        generator = benchopt_problem if problem == "quadratic-benchopt" else quadratic_problem
        built = generator(s["n_inner"], s["n_outer"], s["dim_z"], s["dim_x"], s["mu"], s["lip"], s["lip_cross"])
    elif kind == "hyperparam":
        built = hyperparam_problem(*hyperparam_data(data_root, HYPERPARAM_DATA[problem], s["n_train"], s["n_val"]))
    else:
        splits = cleaning_data(data_root, cache_dir, s["n_train"], s["n_val"], s["n_test"], s["image_size"],
                               s["corruption"])  # fmt: skip
        built = datacleaning_problem(*splits, classes=10)
    return replace(built, name=problem)


def fingerprint(problem: BilevelProblem, max_iter: int) -> str:
    """A hash of the problem's name, data set, data and starting point (and of ``max_iter``, for h*)."""
    digest = hashlib.sha256(f"{problem.name}|{problem.dataset}|{max_iter}".encode())
    for t in (*problem.inner_data, *problem.outer_data, problem.x0, problem.z0):
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def optimal_value(evaluator: BilevelProblem, cache_dir: Path, max_iter: int) -> float:
    """h* of the float64 ``evaluator`` (``exact.minimum``), cached in ``cache_dir`` by a hash of the data."""
    path = cache_dir / "bilevel" / f"hstar-{fingerprint(evaluator, max_iter)}.json"
    if path.exists():
        return float(json.loads(path.read_text())["h_star"])
    h_star, _ = minimum(evaluator, max_iter=max_iter)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{id(path)}.tmp")
    tmp.write_text(json.dumps({"h_star": h_star, "problem": evaluator.name, "dataset": evaluator.dataset}))
    tmp.replace(path)
    return h_star
