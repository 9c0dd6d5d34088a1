"""``ctbench list``: the installed tasks, their scales, grids, primary metric and reference implementations."""

from __future__ import annotations

import argparse
import sys

from ctbench.api.implementation import task_references, unavailable_references
from ctbench.catalog.registry import broken_tasks, tasks
from ctbench_cli.command import Command


class List(Command):
    name = "list"
    help = "tasks, implementations, scales"

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
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
