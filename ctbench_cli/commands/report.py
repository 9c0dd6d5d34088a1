"""``ctbench report``: the static HTML report of any set of run files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctbench.catalog.registry import description, tasks
from ctbench_cli.command import Command
from ctbench_cli.commands.show import ranking_flags

DEFAULT_REPORT = Path("report/site")


def report_dir(run_file: Path) -> Path:
    """Where ``ctbench run`` writes a run's report by default: ``<run id>-report/`` beside its run file."""
    return run_file.with_name(f"{run_file.stem}-report")


def _custom_plots(task_name: str, cases: Any, records: Any) -> dict[str, Any]:
    """The figures of an installed task's custom plot hook; none for a task this installation does not have."""
    task = tasks().get(task_name)
    return task.plots(cases, records) if task is not None else {}


def build(results: Sequence[str | Path], output: Path, **options: Any) -> int:
    """Build the HTML report; name skipped files and plot problems on stderr; 1 when nothing could be read."""
    from report import build_report

    built = build_report(list(results), output, describe=description, custom_plots=_custom_plots, **options)
    for s in built.skipped:
        print(f"skipped {s.reason}", file=sys.stderr)
    for problem in built.problems:
        print(f"report: {problem}", file=sys.stderr)
    if built.index is None:
        print("no readable run file: no report written", file=sys.stderr)
        return 1
    print(f"report: {built.index}")
    return 0


class Report(Command):
    name = "report"
    help = "build the static HTML report"

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("results", nargs="+", help="run files or folders")
        parser.add_argument("-o", "--output", type=Path, default=DEFAULT_REPORT)
        ranking_flags(parser)
        parser.add_argument("--pytest-benchmark", type=Path, help="pytest-benchmark JSON to show")
        parser.add_argument("--asv-url", help="link to a published asv site")
        parser.add_argument(
            "--asv-results",
            type=Path,
            default=Path(".asv/results"),
            metavar="DIR",
            help="asv's results folder, plotted across commits on the History page (default: .asv/results)",
        )
        parser.add_argument(
            "--compare",
            nargs=2,
            metavar=("A", "B"),
            help="run files or run ids for the compare page (default: the newest run sharing cases with an earlier "
            "one)",
        )

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        return build(
            args.results,
            args.output,
            pytest_benchmark=args.pytest_benchmark,
            asv_url=args.asv_url,
            asv_results=args.asv_results,
            compare=args.compare,
            rank_by=args.rank_by,
            latest_only=args.latest,
        )
