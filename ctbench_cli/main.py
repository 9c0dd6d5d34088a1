"""``ctbench``: list tasks, run them, show and compare results, build the HTML report.

Exit codes: 0 every case ok; 1 some case failed, timed out, ran out of memory or was invalid (or nothing could be
read); 2 usage or harness error, before anything runs (an unknown task, implementation, scale or parameter; a flag
out of range; a submission that does not load or takes a reserved name; a run already running in the same folder).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ctbench.api.implementation import ImplementationError
from ctbench.catalog.registry import UsageError
from ctbench.run.runner import SANDBOX_MODES
from ctbench_cli import options, run, view
from ctbench_cli.run import CACHE

DEFAULT_REPORT = Path("report/site")


def ranking_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rank-by", metavar="METRIC", help="rank every board by this metric (default: each task's primary)")
    p.add_argument("--latest", action="store_true", help="keep only the newest run of each leaderboard row")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctbench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="tasks, implementations, scales").set_defaults(fn=view.cmd_list)

    r = sub.add_parser("run", help="run cases and write a run file")
    r.add_argument("--task", action="append", default=[], help="task name (repeatable; default: all)")
    r.add_argument("--impl", action="append", default=[], help="reference name or submission spec (repeatable)")
    r.add_argument("--skip-references", action="store_true", help="with --impl SPEC: run only the submission")
    r.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="RESULTS",
        help="with --impl SPEC: run only the submission and rank it against the stored reference cases of its points "
        "in these run files or folders (repeatable; e.g. results/reference)",
    )
    r.add_argument(
        "--retime-references", action="store_true", help="with --against: rerun the matching reference cases here"
    )
    r.add_argument("--scale", default="auto", help="smoke, small, full, or auto (smoke on CPU, small on GPU)")
    r.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2", help="override a grid axis")
    r.add_argument(
        "--seed", action="append", type=options.seed, default=[], help="seeds in [0, 2^32) (default: the scale's)"
    )
    r.add_argument("--device", type=options.device, help="cpu, cuda or cuda:N (default: cuda when available)")
    r.add_argument("--out", type=Path, default=Path("results/local"), help="folder for run files")
    r.add_argument("--data-root", type=Path, default=CACHE / "data", help="where datasets live")
    r.add_argument("--timeout", type=options.positive_seconds, help="seconds per case, > 0 (default: the scale's)")
    r.add_argument(
        "--threads",
        type=options.threads,
        help="torch threads per case, >= 1, or auto (default): 1 on a "
        "CPU, torch's own on a GPU; a scale that declares its threads keeps them on a CPU",
    )
    r.add_argument(
        "--sandbox",
        choices=SANDBOX_MODES,
        default="auto",
        help="bubblewrap sandbox: auto (default: "
        "submissions, where bwrap exists), on (every case; bwrap required), off",
    )
    r.add_argument(
        "--max-memory",
        type=options.memory,
        metavar="SIZE",
        help="memory limit per case: 8G, 512M or "
        "50%% of RAM (default: 80%% of RAM); a case past it is ended with status oom",
    )
    r.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where cases run: this machine, one at a time (default), or a Ray cluster (--ray-address)",
    )
    r.add_argument("--ray-address", metavar="HOST:PORT", help="the Ray head node's address (ray start --head)")
    r.add_argument(
        "--cases-per-node",
        type=options.count,
        default=1,
        metavar="N",
        help="with --executor ray: CPU cases at once on a node (default 1: a timed case never shares its cores)",
    )
    r.add_argument(
        "--start",
        choices=("auto", "warm", "cold"),
        default="auto",
        help="start each case by forking a warm template that has imported torch and the tasks, or in a fresh "
        "interpreter; auto (default): warm on a CPU, cold on a GPU (the warm path has not run on a GPU yet); "
        "sandboxed cases always start fresh",
    )
    r.add_argument(
        "--max-run-time",
        type=options.positive_seconds,
        metavar="SECONDS",
        help="time budget of the whole run: cases not started by then are recorded as not run",
    )
    r.add_argument("--report-dir", type=Path, default=DEFAULT_REPORT, help="where the HTML report goes")
    r.add_argument("--no-report", action="store_true", help="do not build the HTML report at the end")
    r.set_defaults(fn=run.cmd_run)

    s = sub.add_parser("show", help="leaderboards in the terminal")
    s.add_argument("results", nargs="+", help="run files or folders")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table", help="table (default: as wide as "
                   "the terminal, human units), or every column as csv or json")  # fmt: skip
    ranking_flags(s)
    s.set_defaults(fn=view.cmd_show)

    c = sub.add_parser("compare", help="metric-by-metric change between two runs")
    c.add_argument("a")
    c.add_argument("b")
    c.set_defaults(fn=view.cmd_compare)

    rep = sub.add_parser("report", help="build the static HTML report")
    rep.add_argument("results", nargs="+", help="run files or folders")
    rep.add_argument("-o", "--output", type=Path, default=DEFAULT_REPORT)
    ranking_flags(rep)
    rep.add_argument("--pytest-benchmark", type=Path, help="pytest-benchmark JSON to show")
    rep.add_argument("--asv-url", help="link to a published asv site")
    rep.add_argument(
        "--asv-results",
        type=Path,
        default=Path(".asv/results"),
        metavar="DIR",
        help="asv's results folder, plotted across commits on the History page (default: .asv/results)",
    )
    rep.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="run files or run ids for the compare page (default: the newest run sharing cases with an earlier one)",
    )
    rep.set_defaults(fn=view.cmd_report)
    return p


def _lenient_output() -> None:
    """Text that UTF-8 cannot encode (a lone surrogate from a file name or a run file) is printed as an escape,
    never raised as an error after the cases have run."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # not a text stream we may reconfigure
            pass


def main(argv: list[str] | None = None) -> int:
    _lenient_output()
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except BrokenPipeError:  # `ctbench show ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ImplementationError, OSError) as exc:  # bad input, or a folder that cannot be written
        print(f"ctbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
