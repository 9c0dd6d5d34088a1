"""``ctbench compare A B``: the metric-by-metric change from run A to run B, case by case."""

from __future__ import annotations

import argparse
import sys

from ctbench_cli.command import Command
from ctbench_cli.compare_text import print_compare
from ctbench_cli.reading import read_runs


class Compare(Command):
    name = "compare"
    help = "metric-by-metric change between two runs"

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("a", metavar="A", help="the earlier run: a run file or a folder of run files")
        parser.add_argument("b", metavar="B", help="the later run: a run file or a folder of run files")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        a, b = read_runs([args.a]), read_runs([args.b])
        if not a or not b:
            print("compare needs two readable run files", file=sys.stderr)
            return 1
        print_compare(a, b)
        return 0
