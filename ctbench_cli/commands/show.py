"""``ctbench show``: the leaderboards of run files in the terminal (or every column as CSV or JSON)."""

from __future__ import annotations

import argparse
import sys

from ctbench_cli.board_text import show
from ctbench_cli.command import Command
from ctbench_cli.reading import read_runs


def ranking_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rank-by", metavar="METRIC", help="rank every board by this metric (default: each task's primary)")
    p.add_argument("--latest", action="store_true", help="keep only the newest run of each leaderboard row")


class Show(Command):
    name = "show"
    help = "leaderboards in the terminal"

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("results", nargs="+", help="run files or folders")
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="table (default: as "
                            "wide as the terminal, human units), or every column as csv or json")  # fmt: skip
        ranking_flags(parser)

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        runs = read_runs(args.results)
        if not runs:
            print("no readable run file", file=sys.stderr)
            return 1
        show(runs, args.format, args.rank_by, args.latest)
        return 0
