"""``ctbench list``: the installed tasks, their scales, grids, primary metric and reference implementations;
``--checks``: every check, the claim it tests and the control that fails it (``--format json``: a list of objects)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from ctbench.api.implementation import task_references, unavailable_references
from ctbench.catalog.registry import broken_tasks, tasks
from ctbench_cli.command import Command


class List(Command):
    name = "list"
    help = "tasks, implementations, scales; --checks: each check's claim and failing control"

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--checks", action="store_true", help="list every check: the claim it tests and its failing control"
        )
        parser.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        if args.checks:
            return cls.checks(args.format)
        if args.format == "json":
            print("ctbench list: --format json lists checks; give --checks", file=sys.stderr)
            return 2
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

    @staticmethod
    def checks(fmt: str) -> int:
        claims = [claim.describe(task.name) for task in tasks().values() for claim in task.claims]
        for name, reason in broken_tasks().items():
            print(f"{name}: NOT LOADED: {reason}", file=sys.stderr)
        if fmt == "json":
            print(json.dumps(claims, indent=1))
            return 0
        for claim in claims:
            print(f"{claim['task']}.{claim['name']} ({claim['over']} check)")
            for label in ("claim", "source", "control"):
                print(textwrap.fill(claim[label], 110, initial_indent=f"  {label + ':':9}", subsequent_indent=" " * 11))
        return 0
