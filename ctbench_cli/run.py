"""``ctbench run``: expand the cases, check every flag and name before anything runs, run, summarise."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ctbench.api.implementation import ImplRef, task_references, unavailable_references
from ctbench.catalog.registry import UsageError, broken_tasks, get_task, tasks
from ctbench.catalog.resolver import resolve_isolated
from ctbench.isolation.sandbox import bwrap
from ctbench.run.cases import Case, SkippedPoint, parse_param, plan, unique
from ctbench.run.executors import LocalExecutor
from ctbench.run.runner import RunSettings, run
from ctbench_cli import against
from ctbench_cli.summary import summarise
from ctbench_cli.terminal import printable
from ctbench_cli.view import report

CACHE = Path(os.environ.get("CTBENCH_CACHE", Path.home() / ".cache" / "ctbench"))
RESERVED = "reference"  # the label of the shipped implementations: no submission may take it


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def scale_for(device: str, scale: str) -> str:
    """``auto``: smoke on a CPU, small on a GPU."""
    if scale != "auto":
        return scale
    return "small" if device.startswith("cuda") else "smoke"


def _check_names(task_name: str, submissions: list[ImplRef], references: list[ImplRef]) -> None:
    """A submission may not pose as a reference: not named ``reference``, nor after a reference of its task."""
    taken = {RESERVED} | {r.name for r in references}
    for sub in submissions:
        clash = {sub.name, sub.submission} & taken
        if clash:
            raise UsageError(
                f"{sub.spec}: the name {sorted(clash)[0]!r} is reserved for {task_name}'s reference implementations "
                f"({', '.join(sorted(taken))}); give the submission's manifest (or folder) another name"
            )


def impls_for(
    task_name: str, selectors: list[str], skip_references: bool, sandbox: str = "auto", data_root: Path | None = None
) -> list[ImplRef]:
    """The references the selectors name (all of them when they name none) and the submissions they name, each
    submission resolved in its own process, sandboxed unless ``--sandbox off`` (or no bubblewrap with ``auto``):
    the runner never imports a submission's code."""
    task = get_task(task_name)
    refs = task_references(task)
    by_name = {r.name: r for r in refs}
    names = [s for s in selectors if s in by_name]
    specs = [s for s in selectors if s not in by_name]
    for spec in specs:
        if ":" not in spec and not spec.endswith(".py") and not Path(spec).is_dir() and "." not in spec:
            raise UsageError(f"unknown implementation {spec!r} for {task.name}; references: {', '.join(by_name)}")
    isolated = sandbox == "on" or (sandbox == "auto" and bwrap() is not None)
    shown = [CACHE, *([data_root] if data_root else [])]
    submissions = [ref for spec in specs for ref in resolve_isolated(spec, task.name, sandbox=isolated, expose=shown)]
    _check_names(task.name, submissions, refs)
    chosen = [by_name[n] for n in names]
    if not names and not skip_references:
        chosen = refs
    return chosen + submissions


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cases(
    args: argparse.Namespace, names: list[str], scale: str, skipped: list[SkippedPoint] | None = None
) -> list[Case]:
    """The run's cases; the grid points the tasks skip are added to ``skipped``."""
    overrides = dict(parse_param(p) for p in args.param)
    cases: list[Case] = []
    for name in dict.fromkeys(names):
        task = get_task(name)
        grid = task.scales[scale].grid if scale in task.scales else {}
        # with several tasks, an override applies to the tasks that have that parameter
        task_overrides = {k: v for k, v in overrides.items() if len(names) == 1 or k in grid}
        impls = impls_for(name, args.impl, args.skip_references, args.sandbox, args.data_root)
        found, skips = plan(task, impls, scale, task_overrides, args.seed or None)
        cases += found
        if skipped is not None:
            skipped += skips
    if not cases:
        raise UsageError("no case to run (every combination was skipped)")
    return unique(cases)


def _executor(args: argparse.Namespace, settings: RunSettings, say: Callable[[str], None]) -> Any:
    """The executor the flags name; a Ray address that does not answer is a usage error before any case runs."""
    if args.executor == "local":
        if args.ray_address:
            raise UsageError("--ray-address needs --executor ray")
        return LocalExecutor(settings, say)
    if not args.ray_address:
        raise UsageError("--executor ray needs --ray-address HOST:PORT (the head node: `ray start --head`)")
    try:
        from ctbench.run.ray_executor import RayExecutor
    except ImportError as exc:
        raise UsageError(f"--executor ray needs Ray: pip install 'ctbench[ray]' ({exc})") from None
    return RayExecutor(settings, args.ray_address, args.cases_per_node, say)


def cmd_run(args: argparse.Namespace) -> int:
    device = args.device or default_device()
    names = args.task or list(tasks())
    if not args.task:
        for name, reason in broken_tasks().items():
            print(f"WARNING: task {name} is left out: {reason}", file=sys.stderr)
    if args.sandbox == "on" and bwrap() is None:
        raise UsageError("--sandbox on needs bubblewrap (`bwrap`; Debian package bubblewrap), which is not installed")
    if args.against:
        args.skip_references = True  # the stored cases stand in for the references
    skipped: list[SkippedPoint] = []
    cases = _cases(args, names, scale_for(device, args.scale), skipped)
    stored = against.from_args(args, cases)  # --against: what matched, what is missing, what differs
    cases = stored.cases if stored else cases
    left_out = [f"{name}/{ref}: {why}" for name in names for ref, why in unavailable_references(name).items()]
    for line in left_out:
        print(f"WARNING: reference {line}; it is left out of this run", file=sys.stderr)
    # one thread per case on a CPU by default: small steps gain little from intra-op threads, and spinning
    # threads on a shared machine made cases 10-30x slower here; recorded in the run's settings
    threads = args.threads if args.threads else (1 if device == "cpu" else 0)
    limits = {"max_memory_bytes": args.max_memory, "max_run_time_s": args.max_run_time}
    settings = RunSettings(
        out_dir=args.out.resolve(),
        data_root=args.data_root.resolve(),
        cache_dir=CACHE.resolve(),
        device=device,
        timeout_s=args.timeout,
        threads=threads,
        left_out=tuple(left_out),
        sandbox=args.sandbox,
        warm=args.start == "warm" or (args.start == "auto" and device == "cpu"),
        **{k: v for k, v in limits.items() if v},
    )

    def say(message: str) -> None:
        print(printable(message), flush=True)

    executor = _executor(args, settings, say)
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
        stored.summarise(outcome.doc)
    if not args.no_report:
        extra = (stored.report_inputs(args.out), stored.report_options()) if stored else ([], {})
        report([args.out, *extra[0]], args.report_dir, **extra[1])
    return status
