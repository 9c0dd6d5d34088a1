"""``ctbench compare A B`` in the terminal: which runs, which submission code (its file and content hash) on each
side, the metric-by-metric verdicts (as wide as the terminal, human units), and the counts at the end.
``ctbench compare RUN --impl a --impl b`` prints the same table with implementation a as side A, b as side B."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ctbench.boards.cells import number, percent
from ctbench.boards.table import TaskSpecs, cases_frame, compare, impl_sides, task_specs
from ctbench.machine.env import hardware_label
from ctbench_cli.terminal import Col, render, say, width

VERDICTS = ("better", "worse", "within noise", "machine", "changed", "no spread", "missing")


def _runs_line(side: str, runs: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for run in runs:
        env = run.get("env") or {}
        commit = f"{str(env.get('git_commit') or '?')[:12]}{' (dirty)' if env.get('git_dirty') else ''}"
        parts.append(f"{run['run_id']} ({run.get('_path') or '?'}; commit {commit}; {hardware_label(env)})")
    return f"{side}: " + "; ".join(parts)


def submissions(runs: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(task, submission) -> {(file or spec, content hash)} of the submissions' cases in ``runs``."""
    found: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for run in runs:
        for case in run["cases"]:
            if case["submission"] != "reference":
                code = (str(case.get("impl_spec") or "?"), str(case.get("impl_hash") or "no hash recorded"))
                found.setdefault((case["task"], f"{case['impl']} [{case['submission']}]"), set()).add(code)
    return found


def submission_lines(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each submission's file and hash in A and in B, and whether its code changed."""
    sa, sb = submissions(a), submissions(b)
    lines = []
    for key in sorted(set(sa) | set(sb)):
        task, name = key
        lines.append(f"submission {name} ({task}):")
        for side, found in (("A", sa.get(key, set())), ("B", sb.get(key, set()))):
            for spec, digest in sorted(found) or [("not in this run", "")]:
                lines.append(f"  {side}: {spec}{'  hash ' + digest if digest else ''}")
        if key in sa and key in sb and {h for _, h in sa[key]} != {h for _, h in sb[key]}:
            lines.append("  its code differs between A and B")
    return lines


def _natural(text: str) -> tuple:
    """Sort key reading the numbers in ``text`` by value: depth=8 before depth=64."""
    return tuple(
        (0, float(p), "") if p.replace(".", "", 1).isdigit() else (1, 0.0, p) for p in re.split(r"([\d.]+)", text)
    )


def _unit(specs: TaskSpecs, task: str, metric: str) -> str:
    spec = specs.get(task, {}).get("metrics", {}).get(metric)
    return str(spec.get("unit", "")) if isinstance(spec, Mapping) else ""


def change_lines(changes: pd.DataFrame, specs: TaskSpecs, limit: int) -> list[str]:
    rows = changes.to_dict("records")
    units = [_unit(specs, r["task"], r["metric"]) for r in rows]
    cols = [
        Col("task", [r["task"] for r in rows], 6, cap=20),
        Col("implementation", [r["impl"] if r["submission"] == "reference" else f"* {r['impl']}" for r in rows], 0),
        Col("scale", [r["scale"] for r in rows], 5),
        Col("params", [r["params"] for r in rows], 3, cap=30),
        Col("metric", [r["metric"] for r in rows], 0, cap=30),
        Col("A", [number(r["a"], u) for r, u in zip(rows, units, strict=True)], 1, right=True),
        Col("B", [number(r["b"], u) for r, u in zip(rows, units, strict=True)], 1, right=True),
        Col("change", [percent(r["change"]) for r in rows], 2, right=True),
        Col("noise", [number(r["noise"], u) for r, u in zip(rows, units, strict=True)], 4, right=True),  # —: no spread
        Col("verdict", [r["verdict"] for r in rows], 0),
    ]
    lines, left_out = render(cols, limit)
    if left_out:
        lines.append(f"not shown at this width: {', '.join(left_out)}")
    return lines


def counts_line(changes: pd.DataFrame, unshared: pd.DataFrame) -> str:
    counts = Counter(changes["verdict"]) if not changes.empty else Counter()
    only = Counter(unshared["only_in"]) if not unshared.empty else Counter()
    always = ("better", "worse", "within noise", "no spread")  # the rest only where some change has them
    verdicts = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in always or counts[v])
    return f"summary: {verdicts}; cases only in A: {only['a']}, only in B: {only['b']}"


def _print(header: list[str], changes: pd.DataFrame, unshared: pd.DataFrame, specs: TaskSpecs, only: str) -> None:
    limit = width()
    say(header, limit)
    if not changes.empty:
        verdicts = {v: i for i, v in enumerate(VERDICTS)}
        points = {p: i for i, p in enumerate(sorted(changes["params"].unique(), key=_natural))}  # depth 8 < 64
        changes = changes.assign(_v=changes["verdict"].map(verdicts), _p=changes["params"].map(points))
        changes = changes.sort_values(["_v", "task", "impl", "_p", "metric"])
        say(["", *change_lines(changes, specs, limit)], limit)
    if not unshared.empty:
        cols = [Col(c, [str(v) for v in unshared[c]], i) for i, c in enumerate(unshared.columns)]
        say(["", only, *render(cols, limit)[0]], limit)
    say(["", counts_line(changes, unshared)], limit)


def print_compare(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> None:
    specs = task_specs([*a, *b])
    changes, unshared = compare(cases_frame(a), cases_frame(b), specs)
    header = [_runs_line("A", a), _runs_line("B", b), *submission_lines(a, b)]
    _print(header, changes, unshared, specs, "cases in only one run:")


def _code_line(side: str, name: str, cases: pd.DataFrame) -> str:
    codes = sorted(dict.fromkeys(zip(cases["impl_spec"].astype(str), cases["impl_hash"].astype(str), strict=True)))
    shown = "; ".join(
        f"{spec or '?'}  " + (f"hash {digest}" if digest else "no hash recorded") for spec, digest in codes
    )
    return f"{side}: implementation {name} ({shown or 'no case'})"


def print_impl_compare(runs: Sequence[dict[str, Any]], a: str, b: str) -> None:
    """Implementation ``a`` (side A) against ``b`` (side B), their cases in ``runs`` paired by ``impl_sides``."""
    specs = task_specs(runs)
    side_a, side_b = impl_sides(cases_frame(runs), a, b)
    header = [_runs_line("run", runs), _code_line("A", a, side_a), _code_line("B", b, side_b)]
    changes, unshared = compare(side_a, side_b, specs)
    _print(header, changes, unshared, specs, "cases of only one implementation (only_in a: the first --impl):")
