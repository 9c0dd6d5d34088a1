"""Case expansion: task x implementation x scale x parameter grid x seed."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ctbench.api.implementation import ImplRef
from ctbench.api.task import Scale, Task
from ctbench.catalog.registry import UsageError
from ctbench.store.schema import MAX_DEPTH, MAX_INT_DIGITS, Problem, check_depth


@dataclass(frozen=True)
class Reused:
    """A stored reference case to carry over to this machine (``--against``): its record, its run and its task's
    description. The case runs with its step timed alone; ``ctbench.store.matching.reused_record`` merges."""

    stored: Mapping[str, Any]
    run: Mapping[str, Any]
    spec: Mapping[str, Any] | None


@dataclass(frozen=True)
class Case:
    """One unit of work, run in its own subprocess."""

    task: str
    impl: ImplRef
    scale: str
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    reuse: Reused | None = None  # a stored reference case carried over: only the step is timed here

    @property
    def key(self) -> str:
        """Identity of the case within a run: what resume matches finished cases on (an edited implementation is
        another case: its content hash is part of it; a carried-over case is another than a full one)."""
        body = [self.task, self.impl.spec, self.impl.submission, self.scale, dict(self.params), self.seed]
        carried = [] if self.reuse is None else [self.reuse.run["run_id"]]
        return json.dumps([*body, self.impl.content_hash, *carried], sort_keys=True)

    def label(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.task}/{self.impl.name} [{self.scale}{' ' + params if params else ''} seed={self.seed}]"

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "impl": asdict(self.impl),
            "scale": self.scale,
            "params": dict(self.params),
            "seed": self.seed,
            "step_only": self.reuse is not None,
            "stored_metrics": None if self.reuse is None else dict(self.reuse.stored.get("metrics") or {}),
        }


def parse_param(text: str) -> tuple[str, list[Any]]:
    """``name=v1,v2`` -> (name, [v1, v2]); values are JSON scalars where they parse, else strings. A value a run
    file could not hold is a ``UsageError`` (before anything runs): an integer of more than ``MAX_INT_DIGITS``
    digits, ``NaN``, an infinity, nesting deeper than ``MAX_DEPTH``."""
    name, sep, values = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--param {text!r}: expected NAME=VALUE[,VALUE...]")

    def refuse(problem: str) -> Any:
        raise UsageError(f"--param {text!r:.120}: {problem}")

    def integer(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            refuse(f"an integer of {len(digits.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
        return int(digits)

    def finite(digits: str) -> float:
        value = float(digits)
        return value if math.isfinite(value) else refuse(f"{digits:.40} is not a finite number")

    def scalar(v: str) -> Any:
        try:
            value = json.loads(v, parse_int=integer, parse_float=finite, parse_constant=lambda c: refuse(f"{c} is "
                               "not a finite number"))  # fmt: skip
            check_depth(value)
        except json.JSONDecodeError:
            return v
        except (RecursionError, Problem):
            refuse(f"nested deeper than {MAX_DEPTH} levels")
        return value

    return name, [scalar(v) for v in values.split(",")]


def grid_for(scale: Scale, overrides: Mapping[str, Sequence[Any]], task: Task) -> Scale:
    """The scale with some grid axes replaced by the user's values; unknown axes are a usage error."""
    unknown = sorted(set(overrides) - set(scale.grid))
    if unknown:
        valid = ", ".join(sorted(scale.grid)) or "none"
        raise UsageError(
            f"task {task.name} has no parameter {', '.join(unknown)} at scale {scale.name}; valid: {valid}"
        )
    bad = [error for name, values in overrides.items() for v in values if (error := task.param_error(name, v))]
    if bad:
        raise UsageError(f"task {task.name}: {'; '.join(bad)}")
    return replace(scale, grid={**scale.grid, **overrides})


@dataclass(frozen=True)
class SkippedPoint:
    """A grid point an implementation does not run at a scale, and the task's reason (``Task.skip``)."""

    task: str
    impl: str
    scale: str
    params: Mapping[str, Any]
    reason: str


def plan(
    task: Task,
    impls: Sequence[ImplRef],
    scale_name: str,
    overrides: Mapping[str, Sequence[Any]] | None = None,
    seeds: Sequence[int] | None = None,
) -> tuple[list[Case], list[SkippedPoint]]:
    """Every case of ``task`` at one scale, and the grid points the task skips (each once, not once per seed)."""
    if scale_name not in task.scales:
        raise UsageError(f"task {task.name} has no scale {scale_name!r}; valid: {', '.join(task.scales)}")
    bad_seeds = [s for s in seeds or () if not (isinstance(s, int) and 0 <= s < 2**32)]
    if bad_seeds:
        raise UsageError(f"seed {bad_seeds[0]!r} is out of range: seeds are integers in [0, 2^32)")
    scale = grid_for(task.scales[scale_name], overrides or {}, task)
    cases, skipped = [], []
    for impl in impls:
        for params in scale.param_sets():
            reason = task.skip(impl.name, scale, params)
            if reason is not None:
                skipped.append(SkippedPoint(task.name, impl.name, scale_name, params, reason))
                continue
            cases += [
                Case(task.name, impl, scale_name, params, seed)
                for seed in (seeds if seeds is not None else scale.seeds)
            ]
    return unique(cases), skipped


def in_rounds(cases: Sequence[Case]) -> list[Case]:
    """``cases`` in rounds: each point's first seed, then each point's second, and so on, in their order within a
    round. A point's seeds then run at different stretches of the run (as asv's interleaved rounds do), so their
    spread holds how far the machine's state moved over it, which a comparison with another run must exceed."""
    seen: dict[str, int] = {}
    rounds = []
    for case in cases:
        point = json.dumps([case.task, case.impl.spec, case.impl.submission, case.scale, dict(case.params)],
                           sort_keys=True, default=str)  # fmt: skip
        rounds.append(seen.get(point, 0))
        seen[point] = rounds[-1] + 1
    return [case for _, case in sorted(zip(rounds, cases, strict=True), key=lambda pair: pair[0])]


def unique(cases: Sequence[Case]) -> list[Case]:
    """``cases`` without repeats (``--seed 0 --seed 0``, an implementation named twice), first one kept."""
    return list({c.key: c for c in cases}.values())


def expand(
    task: Task,
    impls: Sequence[ImplRef],
    scale_name: str,
    overrides: Mapping[str, Sequence[Any]] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[Case]:
    """Every case of ``task`` at one scale, minus those the task skips (``plan`` says which and why)."""
    return plan(task, impls, scale_name, overrides, seeds)[0]


def run_key(cases: Sequence[Case], settings: Mapping[str, Any] | None = None) -> str:
    """A short hash of the case list and the settings they run under: a re-run of the same command finds its
    unfinished run by it, and a run with other settings (another device, threads, sandbox, limits) never resumes
    from it."""
    body = "\n".join(c.key for c in cases) + json.dumps(settings or {}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:12]
