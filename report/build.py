"""``build_report``: run files -> static HTML pages, PNG plots and CSV tables in one folder.

Pages: ``index.html`` (one leaderboard per task, the runs the site holds), ``task-<name>.html`` (summary, paper, the
paper's numbers beside ours, plots, checks, failures), ``task-<name>-cases-<n>.html`` (every case, a page at a time),
``compare.html``, ``env.html`` (every run's environment record), ``benchmarks.html`` (pytest-benchmark timings, link to
the asv site), and ``leaderboard.csv`` / ``cases.csv.gz``. Nothing is fetched from the network: the CSS and the sorting
script are copied beside the pages.

Pages stay small however many cases the runs hold: what grows with the cases is paginated, never loaded on demand (a
page opened from ``file://`` may not read a file beside it), so every page opens offline. The boards grow only with
the implementations and points compared; a task page lists at most ``CASES_PER_PAGE`` failed checks and
``FAILURES_SHOWN`` failed cases, each error cut to its last ``views.ERROR_CHARS`` characters, and links its case
pages, ``CASES_PER_PAGE`` cases each, ordered by scale, dataset, parameters, implementation, seed and run. The whole
case table is offered gzip-compressed (``cases.csv.gz``; pandas and most tools read it as it is).
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
from ctbench.store.verdict import OUTCOMES, outcome
from report import asv_history, comparison, pybench
from report.cases import CaseRow, case_rows
from report.fmt import safe_url
from report.plots import CustomPlots, start_drawing
from report.site import Site
from report.views import (
    TaskMeta,
    boards,
    case_checks,
    case_page,
    check_summary,
    environments,
    failures,
    page_names,
    paper_rows,
    run_checks,
    task_meta,
)

CASES_PER_PAGE = 500  # case rows on one case page; also the most failed checks a task page lists
FAILURES_SHOWN = 100  # failed cases a task page shows with their error; every one is on the case pages


@dataclass
class Built:
    """What ``build_report`` wrote; ``index`` is None when no run file could be read (nothing written)."""

    index: Path | None
    skipped: list[Skipped]
    problems: list[str] = field(default_factory=list)  # e.g. a task whose plotting raised; terminal-safe


def _records(runs: Sequence[dict[str, Any]], kept: pd.Index | None = None) -> dict[str, list[dict[str, Any]]]:
    """Case records per task, each with its run's id and hardware label (what ``Task.plots`` receives); with
    ``kept``, only the cases at those positions of ``cases_frame(runs)`` (``--latest``: the frame's rows kept)."""
    keep = None if kept is None else set(kept)
    out: dict[str, list[dict[str, Any]]] = {}
    position = 0
    for run in runs:
        hardware = hardware_label(run["env"])
        for case in run["cases"]:
            if keep is None or position in keep:
                out.setdefault(case["task"], []).append({**case, "run_id": run["run_id"], "hardware": hardware})
            position += 1
    return out


def _status_counts(statuses: Iterable[str]) -> list[tuple[str, int]]:
    counts = Counter(statuses)
    return [(s, counts[s]) for s in (*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))) if counts[s]]


def _outcomes(df: pd.DataFrame) -> pd.Series:
    """Each case's status, ``invalid as expected`` for a negative control that was invalid."""
    rows = df[["status", "expected_invalid"]].fillna("").to_dict("records")
    return pd.Series([outcome(r) for r in rows], index=df.index, dtype=object)


def _synthetic(df: pd.DataFrame) -> list[str]:
    """Datasets that are synthetic stand-ins (named ``synthetic-...`` by their task), for a banner."""
    return sorted(d for d in df["dataset"].unique() if str(d).startswith("synthetic"))


def _write_csv(frame: pd.DataFrame, target: Path) -> None:
    """``frame`` as CSV, every string a spreadsheet would run as a formula neutralised (``csv_cell``), every field
    holding a CR or a LF quoted (RFC 4180 line ends); gzip-compressed when ``target`` ends in ``.gz`` (no time stamp
    inside: the same table gives the same bytes)."""
    gz = {"method": "gzip", "compresslevel": 3, "mtime": 0} if target.suffix == ".gz" else None
    csv_frame(frame).to_csv(target, index=False, lineterminator=CSV_LINES, errors="backslashreplace", compression=gz)


def _case_pages(rows: Sequence[CaseRow], page: str, per_page: int) -> list[dict[str, Any]]:
    """The case pages of a task: each page's name, number, first and last row (1-based, inclusive end)."""
    out = []
    for number, start in enumerate(range(0, len(rows), per_page), 1):
        end = min(start + per_page, len(rows))
        first, last = rows[start], rows[end - 1]
        out.append(
            {
                "page": case_page(page, number),
                "number": number,
                "start": start,
                "end": end,
                "first": f"{first.where} · {first.impl}",
                "last": f"{last.where} · {last.impl}",
            }
        )
    return out


def _commit(env: dict[str, Any]) -> str:
    """The commit a run was made at, short, with a mark when the checkout had uncommitted changes."""
    commit = str(env.get("git_commit") or "")[:12] or "—"
    return commit + (" (uncommitted changes)" if env.get("git_dirty") else "")


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
                "commit": _commit(run["env"]),
                "host": str(run["env"].get("hostname") or "—"),
                "tasks": ", ".join(dict.fromkeys(c["task"] for c in run["cases"])),
                "n_cases": len(run["cases"]),
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
    cases_per_page: int = CASES_PER_PAGE,
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

    No page grows with the number of cases: a task page holds the boards (one row per implementation and point),
    the plots, the run checks, each per-case check counted by name, and at most ``cases_per_page`` failed checks and
    ``FAILURES_SHOWN`` failed cases (each error cut to its end, ``views.ERROR_CHARS``); every case, with its metrics,
    checks and error, is on the task's case pages, ``cases_per_page`` to a page (``task-<name>-cases-<n>.html``).
    The full case table is ``cases.csv.gz``.
    """
    if cases_per_page < 1:
        raise ValueError(f"cases_per_page must be >= 1, not {cases_per_page}")
    runs, skipped = load_runs(inputs, describe)
    bench, bad_bench = pybench.load(pytest_benchmark)
    skipped += [bad_bench] if bad_bench else []
    if not runs:
        return Built(None, skipped)
    df = cases_frame(runs)
    df = latest(df) if latest_only else df
    styles = report_styles(df)  # one colour and marker per implementation across every plot
    records = _records(runs, df.index if latest_only else None)  # the cases the boards keep, for every figure
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
        wait_for_plots = start_drawing(jobs)
        case_pages = {}
        try:  # every case, a page at a time, and the CSV files, while the figures are drawn
            for name in names:
                meta = metas[name]
                rows = case_rows(records[name], meta)
                pages_ = _case_pages(rows, meta.page, cases_per_page)
                case_pages[name] = rows, pages_
                for p in pages_:
                    site.render("cases.html.j2", p["page"], task_page=meta.page, meta=meta,
                                cases=rows[p["start"]:p["end"]], number=p["number"], start=p["start"],
                                case_pages=pages_, n_cases=len(rows))  # fmt: skip
            _write_csv(pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(), site.add("leaderboard.csv"))
            _write_csv(df, site.add("cases.csv.gz"))
            if compared.frame is not None:
                _write_csv(compared.frame, site.add("compare.csv"))
        finally:  # the drawing workers are waited for whatever happened here: none outlives the build
            drawn = wait_for_plots()
        for name, section, job, (plots, plot_error) in zip(names, sections, jobs, drawn, strict=True):
            meta, sub = metas[name], job["cases"]
            rows, pages_ = case_pages[name]
            for plot in plots:
                site.add(plot.src)
            if plot_error:
                problems.append(f"{name}: plots: {plot_error}")
            bad_checks = case_checks(records[name], passing=False)  # failing first
            failed = failures(records[name])
            site.render(
                "task.html.j2",
                meta.page,
                section=section,
                plots=plots,
                plot_error=plot_error,
                own_plots_missing=bool((meta.spec or {}).get("custom_plots"))
                and (describe is None or describe(name) is None),
                paper=paper_rows(sub, meta),
                run_checks=run_checks(runs, name),
                check_summary=check_summary(records[name]),
                case_checks=bad_checks[:cases_per_page],
                bad_checks=len(bad_checks),
                failures=failed[:FAILURES_SHOWN],
                n_failures=len(failed),
                case_pages=pages_,
                n_cases=len(rows),
                per_page=cases_per_page,
                synthetic=_synthetic(sub),
            )
        site.render("compare.html.j2", "compare.html", cmp=compared)
        site.render("env.html.j2", "env.html", sections=environments(runs, links))
        site.render("benchmarks.html.j2", "benchmarks.html", bench=bench, bench_skipped=bad_bench)
        if asv_results is not None:
            problems += asv_history.render(site, asv_results, styles)
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
