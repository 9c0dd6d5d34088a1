"""``ctbench compare A B``: the metric-by-metric change from run A to run B, case by case; ``ctbench compare RUN
--impl a --impl b``: the same from implementation a to implementation b within one run."""

from __future__ import annotations

import argparse
import sys

from ctbench.boards.table import PairingError
from ctbench.catalog.registry import UsageError
from ctbench_cli.command import Command
from ctbench_cli.compare_text import print_compare, print_impl_compare
from ctbench_cli.reading import read_runs


class Compare(Command):
    """Metric-by-metric change from side A to side B for every case both sides hold, with a verdict per metric:
    better or worse (changed for a metric without direction) only when the change exceeds the sum of the two
    sides' spreads, within noise otherwise, no spread when a side measured none (one seed, nothing repeated),
    machine for a timing whose change the engine's machine probe shows as well. Two runs: A is the earlier run,
    B the later, a case the same task, implementation, scale, dataset and parameters in both. With --impl a
    --impl b: one run (or folder of run files), A the cases of implementation a, B those of b, paired at the same
    task, scale, dataset, parameters and seed."""

    name = "compare"
    help = "metric-by-metric change between two runs, or two implementations of one run"

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("a", metavar="A", help="the earlier run: a run file or a folder of run files; with "
                            "--impl, the one run (or folder) whose two implementations are compared")  # fmt: skip
        parser.add_argument("b", metavar="B", nargs="?", help="the later run: a run file or a folder of run files "
                            "(none with --impl)")  # fmt: skip
        parser.add_argument("--impl", action="append", metavar="NAME", help="give twice: compare implementation "
                            "NAME (side A) with the second NAME (side B) within run A; a name or a label as show "
                            "prints it (impl [submission], impl @hash)")  # fmt: skip

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        if args.impl is not None:
            if len(args.impl) != 2:
                raise UsageError(f"compare --impl needs exactly two implementations, got {len(args.impl)}")
            if args.b is not None:
                raise UsageError("compare --impl a --impl b takes one run (file or folder), not two")
            runs = read_runs([args.a])
            if not runs:
                print("compare needs a readable run file", file=sys.stderr)
                return 1
            try:
                print_impl_compare(runs, args.impl[0], args.impl[1])
            except PairingError as exc:
                raise UsageError(str(exc)) from exc
            return 0
        if args.b is None:
            raise UsageError("compare needs two runs A and B, or one run and --impl twice")
        a, b = read_runs([args.a]), read_runs([args.b])
        if not a or not b:
            print("compare needs two readable run files", file=sys.stderr)
            return 1
        print_compare(a, b)
        return 0
