"""``ctbench run --impl mine.py:X --against results/reference``: run only the submission, rank it against stored
reference cases.

The stored cases are the reference cases (``submission == "reference"``) of the run files under ``--against`` at
the submission's own points: same task, scale, parameters and seed (and, once the submission has run, the same
dataset). Where several runs hold the same case, the newest is used. The run file written holds the submission's
cases only; the report built at the end reads it beside the stored runs that hold a match, and the terminal prints
the submission's boards. References the task would run at a point but the store lacks are listed.

Stored numbers come from the machine and commit that made them: when either differs from this machine's, the
terminal and every page of the report say so (times and memory do not compare across machines, and the report
never ranks rows of different hardware on one board). ``--retime-references`` reruns the matching reference cases
on this machine, in the same run as the submission, instead of using the stored numbers.

The matching itself (``match``) reads records only, so it is tested without any task installed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctbench.api.implementation import ImplRef, task_references
from ctbench.catalog.registry import UsageError, description, get_task
from ctbench.machine.env import environment, hardware_label, node
from ctbench.run.cases import Case
from ctbench.store.results import Skipped, load_runs
from ctbench_cli.show import show

REFERENCE = "reference"
Point = tuple[str, str, str, int]  # task, scale, params (canonical JSON), seed
Say = Callable[[str], None]


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
    runs: Iterable[Mapping[str, Any]],
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


def differences(pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]], commit: str | None,
                hardware: str) -> list[str]:  # fmt: skip
    """What makes the stored numbers incomparable with this machine's: another commit, other hardware."""
    pairs = list(pairs)
    lines = []
    labels = sorted({case_hardware(case, run) for case, run in pairs} - {hardware})
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


@dataclass
class Against:
    """What ``--against`` found before the run, and what it adds to the run's end."""

    paths: list[str]
    match: Match
    retime: bool
    submissions: list[str]
    skipped: list[Skipped]
    differs: list[str] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)  # what to run: the submission's, and retimed references

    def report_inputs(self, out: Path | str) -> list[str]:
        """The stored run files the report reads beside the run's folder ``out`` (none when the references were
        retimed; none twice: a stored run inside ``out`` is read with it)."""
        if self.retime:
            return []
        inside = Path(out).resolve()
        paths = [run["_path"] for run in self.match.runs()]
        return [p for p in paths if not Path(p).resolve().is_relative_to(inside)]

    def banners(self) -> list[str]:
        n = len(self.match.pairs())
        who = ", ".join(self.submissions)
        if self.retime:
            n = sum(c.impl.submission == REFERENCE for c in self.cases)
            head = (
                f"{who}: the {n} reference cases stored at its points in {', '.join(self.paths)} were rerun on this "
                "machine in the same run (--retime-references)."
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

    def summarise(self, doc: Mapping[str, Any], say: Say = print) -> None:
        """After the run: datasets that differ, then the submission's boards with the stored references."""
        submission_cases = [c for c in doc["cases"] if c.get("submission") != REFERENCE]
        for line in dataset_mismatches(submission_cases, self.match):
            say(f"WARNING: against: not on the same dataset (another board): {line}")
        which = "the references rerun here" if self.retime else "the stored references"
        say(f"\nagainst: the submission's boards, with {which} (as `ctbench show` prints them):")
        show(board_runs(doc, [] if self.retime else self.match.pairs()))
        for line in self.differs:
            say(f"WARNING: against: {line}")


def board_runs(doc: Mapping[str, Any], stored: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict]:
    """The run just made, and each stored run cut down to its matched cases: what the boards are built from."""
    by_run: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for case, run in stored:
        by_run.setdefault(run["run_id"], (run, []))[1].append(case)
    return [dict(doc)] + [{**run, "cases": cases} for run, cases in by_run.values()]


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


def _retimed(m: Match, say: Say) -> list[Case]:
    """The matched stored cases as reference cases to run here (those whose reference is installed)."""
    cases = []
    by_task: dict[str, dict[str, ImplRef]] = {}
    for p, by_impl in m.cases.items():
        task_name, scale, params, seed = p
        if task_name not in by_task:
            task = get_task(task_name)
            by_task[task_name] = {r.name: r for r in task_references(task)}
        for impl in by_impl:
            if impl not in by_task[task_name]:
                say(f"against: cannot rerun {impl} at {point_label(p)}: it is not installed here")
                continue
            cases.append(Case(task_name, by_task[task_name][impl], scale, json.loads(params), seed))
    return cases


def plan(paths: Sequence[str], cases: Sequence[Case], retime: bool, say: Say = print) -> Against:
    """Split ``cases`` (from ``--impl``) into the submission's and the references named there (which narrow the
    stored references used), find the stored cases, say what matched, what is missing and what differs."""
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
    result = Against(list(map(str, paths)), m, retime, submissions, skipped)
    if not retime:
        result.differs = differences(m.pairs(), env.get("git_commit"), here)
    result.cases = (_retimed(m, say) if retime else []) + subs
    n_points = len(expected)
    say(
        f"against: {len(m.pairs())} stored reference cases match {len(m.cases)} of the submission's {n_points} "
        f"points, from {len(m.runs())} run(s) under {', '.join(map(str, paths))}"
        + ("; they are rerun here (--retime-references)" if retime else "; they are not rerun")
    )
    if not m.cases:
        say("WARNING: against: no stored reference case matches the submission's points: it is ranked alone")
    for p, names in m.missing.items():
        say(f"against: missing stored cases at {point_label(p)}: {', '.join(names)}")
    for line in result.differs:
        say(f"WARNING: against: {line}")
    return result


def from_args(args: Any, cases: Sequence[Case]) -> Against | None:
    """``ctbench run``'s flags: None without ``--against``; ``--retime-references`` alone is a usage error."""
    if not args.against:
        if args.retime_references:
            raise UsageError("--retime-references needs --against RESULTS (the stored references to rerun)")
        return None
    return plan(args.against, cases, args.retime_references)
