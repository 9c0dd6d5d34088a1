"""Reading results: ``ctbench list``, ``show``, ``compare`` and ``report``. Everything here reads run files; the
installed tasks are consulted only to describe old run files and to draw a task's custom plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctbench.api.implementation import task_references, unavailable_references
from ctbench.catalog.registry import broken_tasks, description, tasks
from ctbench.store.results import load_runs
from ctbench_cli.compare_text import print_compare
from ctbench_cli.show import show


def cmd_list(args: argparse.Namespace) -> int:
    for task in tasks().values():
        print(f"{task.name}: {task.summary}")
        print(f"  paper:   {task.paper.authors}, {task.paper.title} ({task.paper.venue})")
        print(f"  scales:  {', '.join(task.scales)}")
        for name, scale in task.scales.items():
            grid = "; ".join(f"{k} in {list(v)}" for k, v in scale.grid.items()) or "no grid"
            print(f"    {name}: {grid}; seeds {list(scale.seeds)}; timeout {scale.timeout_s:.0f} s")
        better = "higher" if task.metrics[task.primary_metric].higher_is_better else "lower"
        print(f"  primary metric: {task.primary_metric} ({better} is better)")
        print(f"  step:    {task.step.what}")
        for ref in task_references(task):
            print(f"  impl:    {ref.name}  ({ref.spec})")
        for module, why in unavailable_references(task.name).items():
            print(f"  impl:    {module}  NOT AVAILABLE: {why}")
    for name, reason in broken_tasks().items():
        print(f"{name}: NOT LOADED: {reason}", file=sys.stderr)
    return 0


def _load(paths: list[str]):
    runs, skipped = load_runs(paths, description)
    for s in skipped:
        print(f"skipped {s.reason}", file=sys.stderr)
    return runs


def cmd_show(args: argparse.Namespace) -> int:
    runs = _load(args.results)
    if not runs:
        print("no readable run file", file=sys.stderr)
        return 1
    show(runs, args.format, args.rank_by, args.latest)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    a, b = _load([args.a]), _load([args.b])
    if not a or not b:
        print("compare needs two readable run files", file=sys.stderr)
        return 1
    print_compare(a, b)
    return 0


def _custom_plots(task_name: str, cases, records) -> dict:
    """The figures of an installed task's custom plot hook; none for a task this installation does not have."""
    task = tasks().get(task_name)
    return task.plots(cases, records) if task is not None else {}


def report(results: list, output: Path, **options) -> int:
    """Build the HTML report; name skipped files and plot problems on stderr; 1 when nothing could be read."""
    from report import build_report

    built = build_report(results, output, describe=description, custom_plots=_custom_plots, **options)
    for s in built.skipped:
        print(f"skipped {s.reason}", file=sys.stderr)
    for problem in built.problems:
        print(f"report: {problem}", file=sys.stderr)
    if built.index is None:
        print("no readable run file: no report written", file=sys.stderr)
        return 1
    print(f"report: {built.index}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    return report(
        args.results,
        args.output,
        pytest_benchmark=args.pytest_benchmark,
        asv_url=args.asv_url,
        asv_results=args.asv_results,
        compare=args.compare,
        rank_by=args.rank_by,
        latest_only=args.latest,
    )
