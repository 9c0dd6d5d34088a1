"""``ctbench run``: expand the cases, check every flag and name before anything runs, run, summarise, report."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ctbench.api.implementation import unavailable_references
from ctbench.catalog.registry import UsageError, broken_tasks, tasks
from ctbench.isolation.sandbox import bwrap
from ctbench.run import selection
from ctbench.run.against import Against, plan
from ctbench.run.cases import Case, SkippedPoint
from ctbench.run.runner import SANDBOX_MODES, RunSettings, run
from ctbench.run.selection import CACHE, default_device, scale_for
from ctbench.run.settings import START_MODES, default_threads, warm_start
from ctbench_cli import options
from ctbench_cli.board_text import show
from ctbench_cli.command import Command
from ctbench_cli.commands.report import build, report_dir
from ctbench_cli.summary import summarise
from ctbench_cli.terminal import printable


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _against(args: argparse.Namespace, cases: Sequence[Case]) -> Against | None:
    """``--against``: None without it; ``--retime-references`` or ``--keep-stored-references`` alone is a usage
    error."""
    if not args.against:
        if args.retime_references:
            raise UsageError("--retime-references needs --against RESULTS (the stored references to rerun)")
        if args.keep_stored_references:
            raise UsageError("--keep-stored-references needs --against RESULTS (the stored references to keep)")
        return None
    if args.retime_references and args.keep_stored_references:
        raise UsageError("--retime-references and --keep-stored-references exclude each other")
    return plan(args.against, cases, args.retime_references, keep_stored=args.keep_stored_references)


def _against_summary(stored: Against, doc: Mapping[str, Any]) -> None:
    """After the run: datasets that differ, then the submission's boards with the stored references."""
    for line in stored.mismatches(doc):
        print(f"WARNING: against: not on the same dataset (another board): {line}")
    carried = any(c.reuse is not None for c in stored.cases)
    which = "the stored references"
    if stored.retime:
        which = "the references brought here (steps timed here)" if carried else "the references rerun here"
    print(f"\nagainst: the submission's boards, with {which} (as `ctbench show` prints them):")
    show(stored.board_runs(doc))
    for line in stored.differs:
        print(f"WARNING: against: {line}")


class Run(Command):
    name = "run"
    help = "run cases and write a run file"

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--task", action="append", default=[], help="task name (repeatable; default: all, or "
                            "with --impl the one task whose interface its classes implement)")  # fmt: skip
        parser.add_argument(
            "--impl", action="append", default=[], help="reference name or submission spec (repeatable)"
        )
        parser.add_argument("--skip-references", action="store_true", help="with --impl SPEC: run only the submission")
        parser.add_argument(
            "--against",
            action="append",
            default=[],
            metavar="RESULTS",
            help="with --impl SPEC: run only the submission and rank it against the stored reference cases of its "
            "points in these run files or folders (repeatable; e.g. results/reference)",
        )
        parser.add_argument(
            "--retime-references",
            action="store_true",
            help="with --against: rerun the matching reference cases here, whole (when they ran on other hardware "
            "they are brought here anyway: their steps timed, their machine-independent numbers reused)",
        )
        parser.add_argument(
            "--keep-stored-references",
            action="store_true",
            help="with --against: show the stored numbers even when they ran on other hardware (on their own "
            "boards: the submission is not ranked against them)",
        )
        parser.add_argument("--scale", default="auto", help="smoke, small, full, or auto (smoke on CPU, small on GPU)")
        parser.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2", help="override a grid axis")
        parser.add_argument(
            "--seed", action="append", type=options.seed, default=[], help="seeds in [0, 2^32) (default: the scale's)"
        )
        parser.add_argument("--device", type=options.device, help="cpu, cuda or cuda:N (default: cuda when available)")
        parser.add_argument(
            "--out", type=Path, default=Path("results/local"), help="folder for run files (and their reports)"
        )
        parser.add_argument("--data-root", type=Path, default=CACHE / "data", help="where datasets live")
        parser.add_argument(
            "--timeout", type=options.positive_seconds, help="seconds per case, > 0 (default: the scale's)"
        )
        parser.add_argument(
            "--threads",
            type=options.threads,
            help="torch threads per case, >= 1, or auto (default): 1 on a "
            "CPU, torch's own on a GPU; a scale that declares its threads keeps them on a CPU",
        )
        parser.add_argument(
            "--sandbox",
            choices=SANDBOX_MODES,
            default="auto",
            help="bubblewrap sandbox: auto (default: "
            "submissions, where bwrap exists), on (every case; bwrap required), off",
        )
        parser.add_argument(
            "--max-memory",
            type=options.memory,
            metavar="SIZE",
            help="memory limit per case: 8G, 512M or "
            "50%% of RAM (default: 80%% of RAM); a case past it is ended with status oom",
        )
        parser.add_argument(
            "--executor",
            choices=("local", "ray"),
            default="local",
            help="where cases run: this machine, one at a time (default), or a Ray cluster (--ray-address)",
        )
        parser.add_argument("--ray-address", metavar="HOST:PORT", help="the Ray head node's address (ray start --head)")
        parser.add_argument(
            "--cases-per-node",
            type=options.count,
            default=1,
            metavar="N",
            help="with --executor ray: CPU cases at once on a node (default 1: a timed case never shares its cores)",
        )
        parser.add_argument(
            "--start",
            choices=START_MODES,
            default="auto",
            help="start each case by forking a warm template that has imported torch and the tasks, or in a fresh "
            "interpreter; auto (default): warm on a CPU, cold on a GPU (the warm path has not run on a GPU yet); "
            "sandboxed cases always start fresh",
        )
        parser.add_argument(
            "--max-run-time",
            type=options.positive_seconds,
            metavar="SECONDS",
            help="time budget of the whole run: cases not started by then are recorded as not run",
        )
        parser.add_argument(
            "--report",
            "--report-dir",
            dest="report_dir",
            type=Path,
            metavar="DIR",
            help="where the run's HTML report goes (default: <out>/<run id>-report/, beside the run file)",
        )
        parser.add_argument("--no-report", action="store_true", help="do not build the HTML report at the end")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        device = args.device or default_device()
        names = args.task or list(tasks())
        if not args.task and args.impl:  # the task the implementations are about, or a usage error
            names = selection.tasks_for(args.impl, args.sandbox, args.data_root)
            print(f"ctbench: task {names[0]}, inferred from --impl (give --task to choose)", flush=True)
        elif not args.task:
            for name, reason in broken_tasks().items():
                print(f"WARNING: task {name} is left out: {reason}", file=sys.stderr)
        if args.sandbox == "on" and bwrap() is None:
            raise UsageError(
                "--sandbox on needs bubblewrap (`bwrap`; Debian package bubblewrap), which is not installed"
            )
        if args.against:
            args.skip_references = True  # the stored cases stand in for the references
        skipped: list[SkippedPoint] = []
        cases = selection.cases(
            names, scale_for(device, args.scale), args.impl, args.param, args.seed, args.skip_references, args.sandbox,
            args.data_root, skipped,
        )  # fmt: skip
        stored = _against(args, cases)  # --against: what matched, what is missing, what differs
        cases = stored.cases if stored else cases
        left_out = [f"{name}/{ref}: {why}" for name in names for ref, why in unavailable_references(name).items()]
        for line in left_out:
            print(f"WARNING: reference {line}; it is left out of this run", file=sys.stderr)
        limits = {"max_memory_bytes": args.max_memory, "max_run_time_s": args.max_run_time}
        settings = RunSettings(
            out_dir=args.out.resolve(),
            data_root=args.data_root.resolve(),
            cache_dir=CACHE.resolve(),
            device=device,
            timeout_s=args.timeout,
            threads=default_threads(device, args.threads or 0),
            left_out=tuple(left_out),
            sandbox=args.sandbox,
            warm=warm_start(args.start, device),
            **{k: v for k, v in limits.items() if v},
        )

        def say(message: str) -> None:
            print(printable(message), flush=True)

        executor = selection.executor(args.executor, settings, say, args.ray_address, args.cases_per_node)
        where = f"a Ray cluster at {args.ray_address}" if args.executor == "ray" else "this machine"
        print(f"ctbench: {len(cases)} cases on {device}, {where}; results go to {args.out}/", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)  # a kill stops the case's process group too, as Ctrl-C does
        try:
            outcome = run(cases, settings, say=say, executor=executor)
        except KeyboardInterrupt:
            print(f"\ninterrupted: finished cases are saved under {args.out}/.partial/; run the same command to resume")
            return 130
        finally:
            if hasattr(executor, "close"):
                executor.close()
        status = summarise(outcome.doc, skipped)  # counts, cases not ok, failed run checks, skipped points
        print(f"run file: {outcome.path}")
        if stored:
            _against_summary(stored, outcome.doc)
        if not args.no_report:  # the run's own report: its file (and the stored runs it was ranked against)
            extra = (stored.report_inputs(outcome.path), stored.report_options()) if stored else ([], {})
            site = args.report_dir or report_dir(outcome.path)
            build([outcome.path, *extra[0]], site, **extra[1])  # its last line names the report's path
        return status
