"""The compare page: which two runs, and the verdict of ``ctbench.boards.table.compare`` for every shared case.

By default the report compares the most recent run that has an earlier run sharing at least one case with it,
to the most recent such earlier run; ``build_report(compare=(A, B))`` (``ctbench report --compare A B``) picks
them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ctbench.boards.cells import number, percent
from ctbench.boards.table import CASE, cases_frame, compare, params_label, task_specs
from ctbench.machine.env import hardware_label
from ctbench.store.results import Describe, Skipped, load_runs
from ctbench.store.text import shown
from report.views import TaskMeta

VERDICTS = ("worse", "better", "changed", "machine", "within noise", "no spread", "missing")


@dataclass
class Comparison:
    a: dict[str, Any] | None = None  # run summaries
    b: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    unshared: list[dict[str, Any]] = field(default_factory=list)
    counts: list[tuple[str, int]] = field(default_factory=list)
    note: str = ""  # why there is no comparison, or a warning about it
    frame: pd.DataFrame | None = None


def _keys(run: Mapping[str, Any]) -> set[tuple]:
    """The run's cases up to their seed, as ``ctbench.boards.table.compare`` matches them."""
    return {
        (c["task"], c["impl"], c["submission"], c["scale"], c["dataset"], params_label(c["params"]))
        for c in run["cases"]
    }


def auto_pair(runs: Sequence[dict[str, Any]]) -> tuple[dict, dict] | None:
    """The newest run that shares cases with an earlier one, and the newest such earlier run."""
    ordered = sorted(runs, key=lambda r: (r["created"], r["run_id"]))
    keys = [_keys(r) for r in ordered]
    for j in range(len(ordered) - 1, 0, -1):
        for i in range(j - 1, -1, -1):
            if keys[i] & keys[j]:
                return ordered[i], ordered[j]
    return None


def _resolve(
    spec: Path | str, runs: Sequence[dict[str, Any]], describe: Describe | None
) -> tuple[dict | None, Skipped | None]:
    """A run named by its file path, or by the run id of a run already loaded."""
    by_id = {r["run_id"]: r for r in runs}
    if str(spec) in by_id and not Path(spec).exists():
        return by_id[str(spec)], None
    loaded, skipped = load_runs([spec], describe)
    if len(loaded) == 1:
        return loaded[0], None
    reason = skipped[0].reason if skipped else f"{len(loaded)} run files found; --compare needs one file or run id"
    return None, Skipped(str(spec), reason)


def _summary(run: Mapping[str, Any]) -> dict[str, Any]:
    env = run["env"]
    return {
        "run_id": run["run_id"],
        "created": run["created"],
        "path": shown(run.get("_path", "")),
        "hardware": hardware_label(env),
        "commit": f"{env.get('git_commit') or '?'}{' (dirty)' if env.get('git_dirty') else ''}",
        "cases": len(run["cases"]),
        "submissions": sorted(
            {
                (c["task"], c["impl"], c["submission"], str(c.get("impl_spec") or "?"), str(c.get("impl_hash") or "—"))
                for c in run["cases"]
                if c["submission"] != "reference"
            }
        ),
    }


def build(
    runs: Sequence[dict[str, Any]],
    metas: Mapping[str, TaskMeta],
    explicit: Sequence[Path | str] | None,
    describe: Describe | None = None,
) -> tuple[Comparison, list[Skipped]]:
    if explicit:
        (a, sa), (b, sb) = (_resolve(s, runs, describe) for s in explicit)
        skipped = [s for s in (sa, sb) if s]
        if a is None or b is None:
            return Comparison(note="--compare: " + "; ".join(f"{s.path}: {s.reason}" for s in skipped)), skipped
        pair = (a, b)
    else:
        skipped, pair = [], auto_pair(runs)
        if pair is None:
            return Comparison(note="No two runs share a case, so there is nothing to compare yet."), skipped
    a, b = pair
    changes, unshared = compare(cases_frame([a]), cases_frame([b]), task_specs([a, b]))
    result = Comparison(_summary(a), _summary(b), frame=changes)
    if result.a["hardware"] != result.b["hardware"]:
        result.note = "The two runs ran on different hardware: timings and memory are not comparable."
    for r in changes.to_dict("records"):
        meta = metas.get(r["task"])
        unit = meta.columns[r["metric"]].unit if meta and r["metric"] in meta.columns else ""
        result.rows.append(
            {
                **{k: r[k] for k in CASE},
                "metric": r["metric"],
                "a": number(r["a"], unit),
                "b": number(r["b"], unit),
                "a_sort": repr(float(r["a"])),
                "b_sort": repr(float(r["b"])),
                "change": percent(r["change"]),
                "change_sort": "" if pd.isna(r["change"]) else repr(float(r["change"])),
                "noise": "" if pd.isna(r["noise"]) else number(r["noise"], unit),  # "": a side without spread
                "verdict": r["verdict"],
            }
        )
    order = {v: i for i, v in enumerate(VERDICTS)}
    result.rows.sort(key=lambda r: order.get(r["verdict"], len(order)))
    result.unshared = unshared.to_dict("records")
    counts = Counter(r["verdict"] for r in result.rows)
    result.counts = sorted(counts.items(), key=lambda kv: order.get(kv[0], len(order)))
    return result, skipped
