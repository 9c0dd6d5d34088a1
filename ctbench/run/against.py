"""``--against``: run only the submission, rank it against stored reference cases (``ctbench.store.matching``).

The stored cases are the reference cases (``submission == "reference"``) of the run files under ``--against`` at
the submission's own points: same task, scale, parameters and seed (and, once the submission has run, the same
dataset). Where several runs hold the same case, the newest is used. The run file written holds the submission's
cases only; the report built at the end reads it beside the stored runs that hold a match. References the task
would run at a point but the store lacks are listed. ``retime`` reruns the matching reference cases on this
machine, in the same run as the submission, instead of using the stored numbers; it is chosen automatically when the
stored cases ran on other hardware (their times and memory do not compare with this machine's, and rows of
different hardware never share a board), unless ``keep_stored`` asks for the stored numbers all the same.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctbench.api.implementation import ImplRef, task_references
from ctbench.catalog.registry import UsageError, description, get_task
from ctbench.machine.env import environment, hardware_label, node
from ctbench.run.cases import Case, Reused
from ctbench.store.matching import (
    Match,
    Point,
    board_runs,
    dataset_mismatches,
    differences,
    hardware_metrics,
    match,
    not_reusable,
    other_hardware,
    point,
    point_label,
)
from ctbench.store.results import Skipped, load_runs
from ctbench.store.schema import REFERENCE

Say = Callable[[str], None]


@dataclass
class Against:
    """What ``--against`` found before the run, and what it adds to the run's end."""

    paths: list[str]
    match: Match
    retime: bool
    submissions: list[str]
    moved: list[str]  # hardware the stored cases ran on, other than this machine's (why they were rerun)
    skipped: list[Skipped]
    differs: list[str] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)  # what to run: the submission's, and retimed references

    def report_inputs(self, run_file: Path | str) -> list[str]:
        """The stored run files the run's report reads beside its own ``run_file`` (none when the references were
        retimed; never ``run_file`` itself, were it among them)."""
        if self.retime:
            return []
        own = Path(run_file).resolve()
        return [run["_path"] for run in self.match.runs() if Path(run["_path"]).resolve() != own]

    def how_rerun(self) -> str:
        """How the stored references were brought to this machine: carried over (their steps timed here, their
        other numbers reused), rerun whole, and why a task's were rerun whole."""
        refs = [c for c in self.cases if c.impl.submission == REFERENCE]
        carried = [c for c in refs if c.reuse is not None]
        whole = {c.task for c in refs if c.reuse is None}
        parts = []
        if carried:
            runs = sorted({_source(c.reuse.run) for c in carried if c.reuse is not None})
            specs = {c.task: c.reuse.spec for c in carried if c.reuse is not None}
            which = "; ".join(_reused_metrics(task, spec) for task, spec in sorted(specs.items()))
            parts.append(
                f"{len(carried)} carried over, their steps timed here and their numbers that do not depend on the "
                f"machine (quality, errors, counts) reused from run {', '.join(runs)}: {which} (each record's "
                "`reused` lists its own)"
            )
        if len(refs) > len(carried):
            why = "; ".join(
                f"{task} ranks by {', '.join(found)}, which only a whole run measures"
                for task in sorted(whole)
                if (found := not_reusable(description(task)))
            )
            parts.append(f"{len(refs) - len(carried)} rerun whole here" + (f" ({why})" if why else ""))
        return "; ".join(parts) or "none could be rerun here"

    def banners(self) -> list[str]:
        n = len(self.match.pairs())
        who = ", ".join(self.submissions)
        if self.retime:
            n = sum(c.impl.submission == REFERENCE for c in self.cases)
            if self.moved:
                head = (
                    f"{who}: the {n} reference cases stored at its points in {', '.join(self.paths)} ran on other "
                    f"hardware ({'; '.join(self.moved)}), so that {who} shares their boards they were brought to "
                    f"this machine in the same run: {self.how_rerun()} (--keep-stored-references shows the stored "
                    "numbers instead, on their own boards)."
                )
            else:
                head = (
                    f"{who}: the {n} reference cases stored at its points in {', '.join(self.paths)} were rerun on "
                    "this machine in the same run (--retime-references)."
                )
            return [head]
        runs = ", ".join(r["run_id"] for r in self.match.runs()) or "none"
        head = (
            f"{who} is ranked against {n} stored reference cases from {', '.join(self.paths)} (runs {runs}), "
            "not rerun here."
        )
        return [head, *(f"Not comparable: {line}." for line in self.differs)]

    def report_options(self) -> dict[str, Any]:
        return {"banners": self.banners()}

    def board_runs(self, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The runs the submission's boards are built from: the run just made, with the stored matches."""
        return board_runs(doc, [] if self.retime else self.match.pairs())

    def mismatches(self, doc: Mapping[str, Any]) -> list[str]:
        """Points where a stored reference ran on another dataset than the submission (another board)."""
        return dataset_mismatches([c for c in doc["cases"] if c.get("submission") != REFERENCE], self.match)


def _reused_metrics(task: str, spec: Mapping[str, Any] | None) -> str:
    """The metrics of ``task`` a carried-over case reuses (those its description says do not depend on the
    machine): the ranked ones by name, the others counted."""
    spec = spec or description(task) or {}
    reused = [name for name, machine in hardware_metrics(spec).items() if not machine]
    ranked = [m for m in dict.fromkeys([spec.get("primary_metric"), *(spec.get("objectives") or {})]) if m in reused]
    rest = len(reused) - len(ranked)
    named = ", ".join(ranked) or "no ranked metric"
    return f"{task}: {named}" + (f" and {rest} more" if rest else "")


def _source(run: Mapping[str, Any]) -> str:
    commit = (run.get("env") or {}).get("git_commit")
    return f"{run['run_id']} (commit {str(commit)[:12] if commit else 'unknown'})"


def _expected(task_name: str, sub_cases: Sequence[Case]) -> dict[Point, list[str]]:
    """At each of the submission's points, the installed references the task would run there."""
    task = get_task(task_name)
    refs = task_references(task)
    expected: dict[Point, list[str]] = {}
    for c in sub_cases:
        scale = task.scales[c.scale]
        expected[point(c.task, c.scale, c.params, c.seed)] = [
            r.name for r in refs if task.skip(r.name, scale, c.params) is None
        ]
    return expected


def _retimed(m: Match, say: Say, carry: bool) -> list[Case]:
    """The matched stored cases as reference cases to run here (those whose reference is installed). With
    ``carry``, a stored case that ran ok is carried over (``Reused``: its step timed here, its other numbers
    reused) where its task's ranked metrics allow it (``not_reusable``); else it is rerun whole."""
    cases = []
    by_task: dict[str, dict[str, ImplRef]] = {}
    for p, by_impl in m.cases.items():
        task_name, scale, params, seed = p
        if task_name not in by_task:
            task = get_task(task_name)
            by_task[task_name] = {r.name: r for r in task_references(task)}
        spec = description(task_name)
        for impl, (stored, run) in by_impl.items():
            if impl not in by_task[task_name]:
                say(f"against: cannot rerun {impl} at {point_label(p)}: it is not installed here")
                continue
            reuse = carry and stored.get("status") == "ok" and not not_reusable(spec)
            carried = Reused(stored, run, spec) if reuse else None
            cases.append(Case(task_name, by_task[task_name][impl], scale, json.loads(params), seed, carried))
    return cases


def plan(
    paths: Sequence[str], cases: Sequence[Case], retime: bool, say: Say = print, keep_stored: bool = False
) -> Against:
    """Split ``cases`` (from ``--impl``) into the submission's and the references named there (which narrow the
    stored references used), find the stored cases, say what matched, what is missing and what differs; rerun
    the stored references here when asked (``retime``) or when they ran on other hardware (unless
    ``keep_stored``)."""
    subs = [c for c in cases if c.impl.submission != REFERENCE]
    if not subs:
        raise UsageError("--against ranks a submission: name one with --impl FILE.py[:Class] (or a folder)")
    named = {c.impl.name for c in cases if c.impl.submission == REFERENCE}
    runs, skipped = load_runs(paths, description)
    for s in skipped:
        print(f"against: skipped {s.reason}", file=sys.stderr)
    if not runs:
        raise UsageError(f"--against {' '.join(paths)}: no readable run file there")
    expected: dict[Point, list[str]] = {}
    for task_name in dict.fromkeys(c.task for c in subs):
        expected.update(_expected(task_name, [c for c in subs if c.task == task_name]))
    m = match(expected, runs, named or None)
    submissions = sorted({c.impl.submission for c in subs})
    env = environment()
    here = hardware_label(node())
    moved = [] if retime or keep_stored else other_hardware(m.pairs(), here)
    retime = retime or bool(moved)
    result = Against(list(map(str, paths)), m, retime, submissions, moved, skipped)
    if not retime:
        result.differs = differences(m.pairs(), env.get("git_commit"), here)
    result.cases = (_retimed(m, say, carry=bool(moved)) if retime else []) + subs
    n_points = len(expected)
    if moved:
        rerun = f"; they ran on other hardware ({'; '.join(moved)}): {result.how_rerun()}"
    else:
        rerun = "; they are rerun here (--retime-references)" if retime else "; they are not rerun"
    say(
        f"against: {len(m.pairs())} stored reference cases match {len(m.cases)} of the submission's {n_points} "
        f"points, from {len(m.runs())} run(s) under {', '.join(map(str, paths))}{rerun}"
    )
    if not m.cases:
        say("WARNING: against: no stored reference case matches the submission's points: it is ranked alone")
    for p, names in m.missing.items():
        say(f"against: missing stored cases at {point_label(p)}: {', '.join(names)}")
    for line in result.differs:
        say(f"WARNING: against: {line}")
    return result
