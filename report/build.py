"""``build_report``: run files -> static HTML pages, PNG plots and CSV tables in one folder.

Pages: ``index.html`` (one leaderboard per task), ``task-<name>.html`` (summary, paper, the paper's numbers
beside ours, plots, checks, failures), ``compare.html``, ``env.html`` (every run's environment record),
``benchmarks.html`` (pytest-benchmark timings, link to the asv site), and ``leaderboard.csv`` / ``cases.csv``.
Nothing is fetched from the network: the CSS and the sorting script are copied beside the pages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ctbench import __version__
from ctbench.boards.groups import board_groups, board_title
from ctbench.boards.spreadsheet import CSV_LINES, csv_frame
from ctbench.boards.table import METRIC, cases_frame, direction, latest, leaderboard, task_specs
from ctbench.figures.plotting import report_styles
from ctbench.machine.env import hardware_label
from ctbench.store.results import Describe, Skipped, load_runs
from ctbench.store.text import printable, shown
from report import asv_history, comparison, pybench
from report.fmt import safe_url
from report.plots import CustomPlots, save_all
from report.site import Site
from report.views import (
    TaskMeta,
    boards,
    case_checks,
    environments,
    failures,
    page_names,
    paper_rows,
    run_checks,
    task_meta,
)


@dataclass
class Built:
    """What ``build_report`` wrote; ``index`` is None when no run file could be read (nothing written)."""

    index: Path | None
    skipped: list[Skipped]
    problems: list[str] = field(default_factory=list)  # e.g. a task whose plotting raised; terminal-safe


def _records(runs: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Case records per task, each with its run's id and hardware label (what ``Task.plots`` receives)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        hardware = hardware_label(run["env"])
        for case in run["cases"]:
            out.setdefault(case["task"], []).append({**case, "run_id": run["run_id"], "hardware": hardware})
    return out


OUTCOMES = ("ok", "invalid as expected", "invalid", "failed", "timeout", "oom")


def _status_counts(statuses: Iterable[str]) -> list[tuple[str, int]]:
    counts = Counter(statuses)
    return [(s, counts[s]) for s in (*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))) if counts[s]]


def _outcomes(df: pd.DataFrame) -> pd.Series:
    """Each case's status, ``invalid as expected`` for a negative control that was invalid."""
    expected = (df["status"] == "invalid") & (df["expected_invalid"].fillna("") != "")
    return df["status"].where(~expected, "invalid as expected")


def _synthetic(df: pd.DataFrame) -> list[str]:
    """Datasets that are synthetic stand-ins (named ``synthetic-...`` by their task), for a banner."""
    return sorted(d for d in df["dataset"].unique() if str(d).startswith("synthetic"))


def _write_csv(frame: pd.DataFrame, target: Path) -> None:
    """``frame`` as CSV, every string a spreadsheet would run as a formula neutralised (``csv_cell``), every field
    holding a CR or a LF quoted (RFC 4180 line ends)."""
    csv_frame(frame).to_csv(target, index=False, lineterminator=CSV_LINES, errors="backslashreplace")


def _runs_table(runs: Sequence[dict[str, Any]], links: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for run in sorted(runs, key=lambda r: r["created"], reverse=True):
        label = hardware_label(run["env"])
        rows.append(
            {
                "run_id": run["run_id"],
                "created": run["created"],
                "path": shown(run.get("_path", "")),
                "hardware": label,
                "anchor": links[label],
                "tasks": ", ".join(dict.fromkeys(c["task"] for c in run["cases"])),
                "statuses": _status_counts(c["status"] for c in run["cases"]),
            }
        )
    return rows


def build_report(
    inputs: Sequence[Path | str],
    out_dir: Path | str,
    pytest_benchmark: Path | None = None,
    asv_url: str | None = None,
    compare: Sequence[Path | str] | None = None,
    describe: Describe | None = None,
    custom_plots: CustomPlots | None = None,
    rank_by: str | None = None,
    latest_only: bool = False,
    banners: Sequence[str] = (),
    asv_results: Path | str | None = None,
) -> Built:
    """Build the report from the run files in ``inputs`` (files or folders) into ``out_dir``.

    Unreadable files are skipped and listed (on the overview and in ``Built.skipped``). ``compare`` names two
    runs (file paths or run ids) for the compare page, else the two newest runs sharing cases are compared.
    Units, directions and plots come from the task descriptions in the run files; ``describe`` supplies them
    for old run files that carry none, and ``custom_plots`` draws the figures of a task's custom hook (both are
    given by the command line, which knows the installed tasks; the report never imports them). ``banners`` are
    shown at the top of every page (``ctbench run --against``: where the stored references came from);
    ``asv_results``, an asv results folder, adds the regression-history page (``report.asv_history``).
    ``rank_by`` ranks every board by that metric instead of its task's primary one; ``latest_only`` keeps only the
    newest run of each leaderboard row.
    """
    runs, skipped = load_runs(inputs, describe)
    bench, bad_bench = pybench.load(pytest_benchmark)
    skipped += [bad_bench] if bad_bench else []
    if not runs:
        return Built(None, skipped)
    df = cases_frame(runs)
    df = latest(df) if latest_only else df
    styles = report_styles(df)  # one colour and marker per implementation across every plot
    records = _records(runs)
    labels = {hardware_label(run["env"]) for run in runs}  # a run with no case has hardware too
    links = {label: f"hw-{i}" for i, label in enumerate(sorted(labels), 1)}
    names = sorted(set(df["task"]))
    pages = page_names(names)
    specs = task_specs(runs)
    metas: dict[str, TaskMeta] = {}
    for name in names:
        sub = df[df["task"] == name]
        present = sub[[c for c in df if c.startswith(METRIC)]].dropna(axis=1, how="all")
        metric_names = [c[len(METRIC) :] for c in present]
        metas[name] = task_meta(name, pages[name], specs.get(name), metric_names, sorted(set(sub["scale"])))
    compared, more = comparison.build(runs, metas, compare, describe)
    skipped += more

    common = {
        "tasks": list(metas.values()),
        "asv_url": safe_url(asv_url),
        "asv_given": asv_url or "",
        "skipped": skipped,
        "version": __version__,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "banners": list(banners),
        "history_page": asv_results is not None,
    }
    problems, sections, tables = [], [], []
    if rank_by and not any(direction(specs, name, rank_by) is not None for name in names):
        problems.append(f"--rank-by {rank_by}: no task in these runs ranks that metric; the boards are not ranked")
    with Site(Path(out_dir), common) as site:  # built aside; a failure before ``finish`` leaves the old site
        jobs = []
        for name in names:
            meta, sub = metas[name], df[df["task"] == name]
            board = leaderboard(sub, name, specs, rank_by)
            tables.append(board)
            section = {
                "meta": meta,
                "boards": boards(board, meta, links),
                "counts": _status_counts(_outcomes(sub)),
                "rank_by": str(board["rank_by"].iloc[0]) if len(board) else "",
            }
            sections.append(section)
            groups = [(board_title(key), group) for key, group in board_groups(board)]
            jobs.append(
                {"task": name, "spec": meta.spec, "cases": sub, "records": records[name], "target": site.path,
                 "custom": custom_plots, "styles": styles, "boards": groups}
            )  # fmt: skip
        for name, section, job, (plots, plot_error) in zip(names, sections, jobs, save_all(jobs), strict=True):
            meta, sub = metas[name], job["cases"]
            for plot in plots:
                site.add(plot.src)
            if plot_error:
                problems.append(f"{name}: plots: {plot_error}")
            site.render(
                "task.html.j2",
                meta.page,
                section=section,
                plots=plots,
                plot_error=plot_error,
                paper=paper_rows(sub, meta),
                run_checks=run_checks(runs, name),
                case_checks=case_checks(records[name]),
                failures=failures(records[name]),
                synthetic=_synthetic(sub),
            )
        _write_csv(pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(), site.add("leaderboard.csv"))
        _write_csv(df, site.add("cases.csv"))
        if compared.frame is not None:
            _write_csv(compared.frame, site.add("compare.csv"))
        site.render("compare.html.j2", "compare.html", cmp=compared)
        site.render("env.html.j2", "env.html", sections=environments(runs, links))
        site.render("benchmarks.html.j2", "benchmarks.html", bench=bench, bench_skipped=bad_bench)
        if asv_results is not None:
            problems += asv_history.render(site, asv_results)
        index = site.render(
            "index.html.j2",
            "index.html",
            sections=sections,
            runs=_runs_table(runs, links),
            totals=_status_counts(_outcomes(df)),
            n_cases=len(df),
            synthetic=_synthetic(df),
        )
        site.finish()
    return Built(index, skipped, [printable(p) for p in problems])  # printed by the command line as they are
