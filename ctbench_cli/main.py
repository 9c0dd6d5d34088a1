"""``ctbench``: list tasks, run them, show and compare results, build the HTML report.

Exit codes: 0 every case ok; 1 some case failed, timed out or was invalid (or nothing could be read); 2 usage or
harness error (unknown task, implementation, scale or parameter; a submission that does not load).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch

from ctbench.cases import Case, expand, parse_param
from ctbench.implementation import ImplementationError, ImplRef, reference_impls, resolve
from ctbench.registry import UsageError, broken_tasks, description, get_task, tasks
from ctbench.results import load_runs
from ctbench.runner import RunSettings, run
from ctbench.table import cases_frame, compare, leaderboard, primary_metric, task_specs

CACHE = Path(os.environ.get("CTBENCH_CACHE", Path.home() / ".cache" / "ctbench"))
DEFAULT_REPORT = Path("report/site")


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _scale_for(device: str, scale: str) -> str:
    """``auto``: smoke on a CPU, small on a GPU."""
    if scale != "auto":
        return scale
    return "small" if device.startswith("cuda") else "smoke"


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
        for ref in reference_impls(task.name, task.interface):
            print(f"  impl:    {ref.name}  ({ref.spec})")
    for name, reason in broken_tasks().items():
        print(f"{name}: NOT LOADED: {reason}", file=sys.stderr)
    return 0


def _impls_for(task_name: str, selectors: list[str], skip_references: bool) -> list[ImplRef]:
    task = get_task(task_name)
    refs = reference_impls(task.name, task.interface)
    by_name = {r.name: r for r in refs}
    names = [s for s in selectors if s in by_name]
    specs = [s for s in selectors if s not in by_name]
    for spec in specs:
        if ":" not in spec and not spec.endswith(".py") and not Path(spec).is_dir() and "." not in spec:
            raise UsageError(f"unknown implementation {spec!r} for {task.name}; references: {', '.join(by_name)}")
    submissions = [ref for spec in specs for ref in resolve(spec, task.interface)]
    chosen = [by_name[n] for n in names]
    if not names and not skip_references:
        chosen = refs
    return chosen + submissions


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    device = args.device or _default_device()
    names = args.task or list(tasks())
    if not args.task:
        for name, reason in broken_tasks().items():
            print(f"WARNING: task {name} is left out: {reason}", file=sys.stderr)
    overrides = dict(parse_param(p) for p in args.param)
    scale = _scale_for(device, args.scale)
    cases: list[Case] = []
    for name in names:
        task = get_task(name)
        grid = task.scales[scale].grid if scale in task.scales else {}
        # with several tasks, an override applies to the tasks that have that parameter
        task_overrides = {k: v for k, v in overrides.items() if len(names) == 1 or k in grid}
        cases += expand(
            task, _impls_for(name, args.impl, args.skip_references), scale, task_overrides, args.seed or None
        )
    if not cases:
        raise UsageError("no case to run (every combination was skipped)")
    # one thread per case on a CPU by default: small steps gain little from intra-op threads, and spinning
    # threads on a shared machine made cases 10-30x slower here; recorded in the run's settings
    threads = args.threads if args.threads is not None else (1 if device == "cpu" else 0)
    settings = RunSettings(args.out, args.data_root, CACHE, device, args.timeout, threads)
    print(f"ctbench: {len(cases)} cases on {device}; results go to {args.out}/", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a kill stops the case's process group too, as Ctrl-C does
    try:
        outcome = run(cases, settings, say=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished cases are saved under {args.out}/.partial/; run the same command to resume")
        return 130
    counts = {s: sum(c["status"] == s for c in outcome.doc["cases"]) for s in ("ok", "failed", "invalid", "timeout")}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    print(f"run file: {outcome.path}")
    if not args.no_report:
        _report([args.out], args.report_dir)
    return 0 if outcome.all_ok else 1


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
    df, specs = cases_frame(runs), task_specs(runs)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_colwidth", 40):
        for task in dict.fromkeys(df["task"]):
            board = leaderboard(df, task, specs)
            primary = "metric." + (primary_metric(specs, task) or "")
            cols = ["dataset", "scale", "params", "rank", "impl", "submission", "status", primary]
            cols += [c for c in board.columns if c.startswith("metric.") and c != primary][:6]
            print(f"\n== {task} (ranked by {primary[7:]}) ==")
            print(board[[c for c in cols if c in board]].to_string(index=False))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    a, b = _load([args.a]), _load([args.b])
    if not a or not b:
        print("compare needs two readable run files", file=sys.stderr)
        return 1
    changes, unshared = compare(cases_frame(a), cases_frame(b), task_specs(a + b))
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_rows", 500):
        if not changes.empty:
            cols = ["task", "impl", "scale", "params", "metric", "a", "b", "change", "noise", "verdict"]
            print(changes[cols].to_string(index=False))
        if not unshared.empty:
            print("\ncases in only one run:")
            print(unshared.to_string(index=False))
    return 0


def _custom_plots(task_name: str, cases, records) -> dict:
    """The figures of an installed task's custom plot hook; none for a task this installation does not have."""
    task = tasks().get(task_name)
    return task.plots(cases, records) if task is not None else {}


def _report(results: list, output: Path, **options) -> int:
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
    return _report(
        args.results,
        args.output,
        pytest_benchmark=args.pytest_benchmark,
        asv_url=args.asv_url,
        compare=args.compare,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctbench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="tasks, implementations, scales").set_defaults(fn=cmd_list)

    r = sub.add_parser("run", help="run cases and write a run file")
    r.add_argument("--task", action="append", default=[], help="task name (repeatable; default: all)")
    r.add_argument("--impl", action="append", default=[], help="reference name or submission spec (repeatable)")
    r.add_argument("--skip-references", action="store_true", help="with --impl SPEC: run only the submission")
    r.add_argument("--scale", default="auto", help="smoke, small, full, or auto (smoke on CPU, small on GPU)")
    r.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2", help="override a grid axis")
    r.add_argument("--seed", action="append", type=int, default=[], help="seeds (default: the scale's)")
    r.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    r.add_argument("--out", type=Path, default=Path("results/local"), help="folder for run files")
    r.add_argument("--data-root", type=Path, default=CACHE / "data", help="where datasets live")
    r.add_argument("--timeout", type=float, help="seconds per case (default: the scale's)")
    r.add_argument("--threads", type=int, help="torch threads per case (default: 1 on a CPU, torch's own on a GPU)")
    r.add_argument("--report-dir", type=Path, default=DEFAULT_REPORT, help="where the HTML report goes")
    r.add_argument("--no-report", action="store_true", help="do not build the HTML report at the end")
    r.set_defaults(fn=cmd_run)

    s = sub.add_parser("show", help="leaderboards in the terminal")
    s.add_argument("results", nargs="+", help="run files or folders")
    s.set_defaults(fn=cmd_show)

    c = sub.add_parser("compare", help="metric-by-metric change between two runs")
    c.add_argument("a")
    c.add_argument("b")
    c.set_defaults(fn=cmd_compare)

    rep = sub.add_parser("report", help="build the static HTML report")
    rep.add_argument("results", nargs="+", help="run files or folders")
    rep.add_argument("-o", "--output", type=Path, default=DEFAULT_REPORT)
    rep.add_argument("--pytest-benchmark", type=Path, help="pytest-benchmark JSON to show")
    rep.add_argument("--asv-url", help="link to a published asv site")
    rep.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="run files or run ids for the compare page (default: the newest run sharing cases with an earlier one)",
    )
    rep.set_defaults(fn=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except (UsageError, ImplementationError, OSError) as exc:  # bad input, or a folder that cannot be written
        print(f"ctbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
