"""Stored reference cases matched to a submission's points, read from run files alone (no task installed):
``ctbench run --impl mine.py:X --against results/reference`` ranks the submission against them.

A point is (task, scale, parameters, seed). At each point the newest stored case of each reference is used. Stored
numbers come from the machine and commit that made them: ``differences`` says where either differs from this
machine's (times and memory do not compare across machines; boards never rank rows of different hardware together).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ctbench.machine.env import hardware_label
from ctbench.store.record import Record
from ctbench.store.schema import REFERENCE, hardware_unit

Point = tuple[str, str, str, int]  # task, scale, params (canonical JSON), seed


def point(task: str, scale: str, params: Mapping[str, Any], seed: int) -> Point:
    return task, scale, json.dumps(dict(params), sort_keys=True), int(seed)


def point_label(p: Point) -> str:
    params = " ".join(f"{k}={v}" for k, v in json.loads(p[2]).items())
    return f"{p[0]} [{p[1]}{' ' + params if params else ''} seed={p[3]}]"


def record_point(case: Mapping[str, Any]) -> Point:
    return point(case["task"], case["scale"], case["params"], case["seed"])


def case_hardware(case: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """Where a stored case ran: its own ``hardware`` label, else its run's."""
    label = case.get("hardware")
    return label if isinstance(label, str) else hardware_label(run.get("env") or {})


@dataclass
class Match:
    """The stored reference cases found for a set of points."""

    cases: dict[Point, dict[str, tuple[dict[str, Any], dict[str, Any]]]]  # point -> impl -> (case, its run)
    missing: dict[Point, list[str]]  # point -> expected references with no stored case

    def pairs(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [pair for by_impl in self.cases.values() for pair in by_impl.values()]

    def runs(self) -> list[dict[str, Any]]:
        """The stored runs that hold a matched case, oldest first."""
        seen = {run["run_id"]: run for _, run in self.pairs()}
        return sorted(seen.values(), key=lambda r: (r["created"], r["run_id"]))


def match(
    expected: Mapping[Point, Sequence[str]],
    runs: Iterable[dict[str, Any]],
    only: set[str] | None = None,
) -> Match:
    """For each point, the newest stored reference case of each implementation there (``only`` narrows them;
    a stored reference this installation lacks, a peer whose library is not installed, is used too), and the
    expected implementations (those the task would run there) with none."""
    found: dict[Point, dict[str, tuple[dict[str, Any], dict[str, Any]]]] = {p: {} for p in expected}
    for run in sorted(runs, key=lambda r: (r["created"], r["run_id"])):  # newest last: it wins
        for case in run["cases"]:
            if case.get("submission") != REFERENCE:
                continue
            p = record_point(case)
            if p in found and (only is None or case["impl"] in only):
                found[p][case["impl"]] = (case, run)
    missing = {
        p: [name for name in names if name not in found[p] and (only is None or name in only)]
        for p, names in expected.items()
    }
    return Match({p: c for p, c in found.items() if c}, {p: m for p, m in missing.items() if m})


def other_hardware(pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]], hardware: str) -> list[str]:
    """The hardware labels of the stored cases that are not ``hardware`` (this machine's)."""
    return sorted({case_hardware(case, run) for case, run in pairs} - {hardware})


def differences(pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]], commit: str | None,
                hardware: str) -> list[str]:  # fmt: skip
    """What makes the stored numbers incomparable with this machine's: another commit, other hardware."""
    pairs = list(pairs)
    lines = []
    labels = other_hardware(pairs, hardware)
    if labels:
        lines.append(
            f"the stored references ran on other hardware ({'; '.join(labels)}), this machine is {hardware}: their "
            "times and memory do not compare with the submission's, and rows of different hardware are never ranked "
            "on one board (--retime-references reruns them here)"
        )
    envs = [run.get("env") or {} for _, run in pairs]
    others = sorted({str(env.get("git_commit") or "unknown") for env in envs} - {commit or ""})
    if others:
        dirty = any(env.get("git_dirty") for env in envs)
        lines.append(
            f"the stored references ran at commit {', '.join(c[:12] for c in others)}"
            f"{' (with uncommitted changes)' if dirty else ''}, this checkout is at {(commit or 'unknown')[:12]}: "
            "the tasks' protocols or the references may have changed since"
        )
    elif any(env.get("git_dirty") for env in envs):
        lines.append(
            "the stored references ran at this commit but with uncommitted changes: their code may differ from "
            "this checkout's"
        )
    return lines


def dataset_mismatches(submission_cases: Iterable[Mapping[str, Any]], m: Match) -> list[str]:
    """Points where a stored reference ran on another dataset than the submission (another board)."""
    lines = []
    for case in submission_cases:
        for impl, (stored, _) in m.cases.get(record_point(case), {}).items():
            if stored["dataset"] != case["dataset"]:
                lines.append(
                    f"{point_label(record_point(case))}: {case['impl']} ran on {case['dataset']}, the stored {impl} "
                    f"on {stored['dataset']}"
                )
    return lines


def board_runs(doc: Mapping[str, Any], stored: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
    """The run just made, and each stored run cut down to its matched cases: what the boards are built from."""
    by_run: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for case, run in stored:
        by_run.setdefault(run["run_id"], (run, []))[1].append(case)
    return [dict(doc)] + [{**run, "cases": cases} for run, cases in by_run.values()]


# what a step-only run of a case re-measures: the engine's measurements of the step and the machine probe
STEP_METRICS = ("step_time_s", "step_peak_memory_bytes", "step_cpu_time_s", "step_energy_j", "device_used_bytes",
                "probe_time_s")  # fmt: skip


def remeasured_by_step(metric: str) -> bool:
    """Whether timing a case's step alone re-measures ``metric`` (its ``throughput_<unit>_s`` too)."""
    return metric in STEP_METRICS or (metric.startswith("throughput_") and metric.endswith("_s"))


def hardware_metrics(spec: Mapping[str, Any] | None) -> dict[str, bool]:
    """For each metric a task description declares, whether its value depends on the machine (``hardware``; a
    description without the field: inferred from the unit)."""
    metrics = (spec or {}).get("metrics") or {}
    return {
        name: bool(m["hardware"]) if isinstance(m.get("hardware"), bool) else hardware_unit(str(m.get("unit", "")))
        for name, m in metrics.items()
    }


def not_reusable(spec: Mapping[str, Any] | None) -> list[str]:
    """The metrics that rank ``spec``'s boards (its primary metric and objectives) and that neither carry over from
    another machine nor are re-measured by timing the step alone: with any, a stored reference must be rerun whole."""
    spec = spec or {}
    ranked = dict.fromkeys([spec.get("primary_metric"), *(spec.get("objectives") or {})])
    hardware = hardware_metrics(spec)
    return [m for m in ranked if m and hardware.get(m, True) and not remeasured_by_step(m)]


def reused_record(
    measured: Mapping[str, Any], stored: Mapping[str, Any], run: Mapping[str, Any], spec: Mapping[str, Any] | None
) -> Record:
    """A stored reference case carried over to this machine: ``measured`` (its step timed here alone) with the
    stored case's numbers that do not depend on the machine (quality, errors, counts), its checks, curves, dataset
    and status. The stored numbers that do depend on it and that the step did not re-measure are left out; the
    record's ``reused`` says which were reused, which were left out, and from which run, commit and hardware.
    A step that did not run ok here leaves ``measured`` as it is."""
    record = Record(measured)
    if measured.get("status") != "ok":
        return record
    hardware = hardware_metrics(spec)

    def carried(values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if not hardware.get(k, True) and k not in measured["metrics"]}

    reused = carried(stored.get("metrics") or {})
    dropped = sorted(k for k in stored.get("metrics") or {} if k not in reused and k not in measured["metrics"])
    source = {"run_id": run["run_id"], "commit": (run.get("env") or {}).get("git_commit"),
              "hardware": case_hardware(stored, run), "metrics": sorted(reused), "left_out": dropped}  # fmt: skip
    record.update(
        dataset=stored["dataset"],
        status=stored["status"],
        error=stored.get("error"),
        note=stored.get("note"),
        metrics={**reused, **measured["metrics"]},
        spread={**carried(stored.get("spread") or {}), **(measured.get("spread") or {})},
        intervals={**carried(stored.get("intervals") or {}), **(measured.get("intervals") or {})},
        series=dict(stored.get("series") or {}),
        checks=dict(stored.get("checks") or {}),
        expected_invalid=stored.get("expected_invalid"),
        reused=source,
    )
    return record
