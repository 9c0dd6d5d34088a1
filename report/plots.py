"""A task's plots, saved as PNG files beside the pages: the Pareto scatter of its leaderboards and the declarative
``LinePlot``s its run files describe (both drawn from the run files alone), then the figures of its custom hook
where the task is installed. Every figure draws an implementation in the report's one style for it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ctbench.boards.ranking import objectives
from ctbench.figures.palette import Style, using
from ctbench.figures.pareto import MEMORY, TIME, pareto_figures
from ctbench.figures.plotting import DPI, draw_all, plain_text
from ctbench.figures.records import named
from report.fmt import slug

# task name, its cases frame and records -> named figures (``Task.plots``), supplied by the command line
CustomPlots = Callable[[str, pd.DataFrame, Sequence[Mapping[str, Any]]], Mapping[str, Any]]


@dataclass(frozen=True)
class Plot:
    name: str
    src: str  # path relative to the pages


def _named(name: str, figures: Sequence[Any]) -> list[tuple[str, Any]]:
    return list(named(name, figures).items())


def _pareto(spec: Mapping[str, Any] | None, boards: Sequence[tuple[str, pd.DataFrame]], styles: Any) -> list:
    """The Pareto scatter over the task's declared objectives (its quality, memory and time metrics)."""
    declared = objectives(spec)
    kinds = {kind: metric for metric, kind in reversed(list(declared.items()))}  # the first of each kind
    quality = kinds.get("quality") or (spec or {}).get("primary_metric")
    if not quality or not boards:
        return []
    metric = ((spec or {}).get("metrics") or {}).get(quality) or {}
    higher = metric.get("higher_is_better") if isinstance(metric, Mapping) else None
    figures = pareto_figures(boards, quality, memory=kinds.get("memory", MEMORY), time=kinds.get("time", TIME),
                             quality_label=quality, higher=higher, styles=styles)  # fmt: skip
    return _named("Pareto: the task's objectives per board", figures)


def figure_parts(spec: Mapping[str, Any] | None, custom: CustomPlots | None) -> list[str]:
    """The parts of a task's figures that draw independently, in page order: ``pareto``, ``plot<i>`` for each
    declared ``LinePlot``, ``custom`` for its hook's."""
    declared = (spec or {}).get("plots", [])
    return ["pareto", *(f"plot{i}" for i in range(len(declared))), *(["custom"] if custom is not None else [])]


def task_figures(
    task: str,
    spec: Mapping[str, Any] | None,
    cases: pd.DataFrame,
    records: Sequence,
    custom: CustomPlots | None,
    styles: Mapping[str, Style] | None,
    boards: Sequence[tuple[str, pd.DataFrame]],
    part: str | None = None,
) -> tuple[list[tuple[str, Any]], list[str]]:
    """A task's named figures (Pareto scatters, its ``LinePlot``s, its custom hook's), or those of one of its
    ``figure_parts``, and the errors of those that failed to draw. Drawn as the report draws them, not yet saved."""
    figures, errors = [], []
    if part in (None, "pareto"):
        try:
            figures += _pareto(spec, boards, styles)
        except Exception as exc:  # shown on the page; the rest still builds
            errors.append(f"Pareto scatter: {type(exc).__name__}: {exc}")
    for i, plot in enumerate((spec or {}).get("plots", [])):
        if part not in (None, f"plot{i}"):
            continue
        try:
            figures += _named(str(plot.get("name", "plot")), draw_all(plot, cases, styles))
        except Exception as exc:  # a bad description is shown on the page; the rest still builds
            errors.append(f"{plot.get('name', '?')}: {type(exc).__name__}: {exc}")
    if custom is not None and part in (None, "custom"):
        try:
            with using(styles or {}):
                figures += list(custom(task, cases, records).items())
        except Exception as exc:  # a task's plotting bug is shown on its page
            errors.append(f"{type(exc).__name__}: {exc}")
    return figures, errors


def save_plots(
    task: str,
    spec: Mapping[str, Any] | None,
    cases: pd.DataFrame,
    records: Sequence[Mapping[str, Any]],
    target: Callable[[str], Path],
    custom: CustomPlots | None = None,
    styles: Mapping[str, Style] | None = None,
    boards: Sequence[tuple[str, pd.DataFrame]] = (),
    parts: Sequence[str] | None = None,
) -> tuple[list[Plot], str]:
    """Draw the task's plots (those of ``parts``, default all its ``figure_parts``), write each to
    ``target("plots/<task>-<name>-<part>-<i>.png")``; return the plots and an error text.

    ``styles`` are the report's (one per implementation across every plot); ``boards`` (title, leaderboard rows)
    feed the Pareto scatter. A plot that fails to draw does not stop the report: its page shows the error beside
    the other figures. Every text is drawn as it is, never as mathtext (``plain_text``): a name like
    ``$\\undefined{x}$`` cannot fail a figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: list[Plot] = []
    errors: list[str] = []
    with plain_text():
        for part in figure_parts(spec, custom) if parts is None else parts:
            figures, failed = task_figures(task, spec, cases, records, custom, styles, boards, part)
            errors += failed
            for i, (name, fig) in enumerate(figures):
                src = f"plots/{slug(task)}-{slug(name)}-{part}-{i}.png"
                try:
                    fig.savefig(target(src), dpi=DPI, bbox_inches="tight")
                except Exception as exc:
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
                else:
                    plots.append(Plot(name, src))
                finally:
                    plt.close(fig)
    plt.close("all")
    return plots, "; ".join(errors)


_JOBS: Sequence[Mapping[str, Any]] = ()  # what the forked workers of ``save_all`` draw, inherited, never pickled


def _save_part(index: int, part: str) -> tuple[list[Plot], str]:
    return save_plots(**_JOBS[index], parts=[part])


def _worker_signals() -> None:
    """A drawing worker leaves on SIGTERM without a traceback (``ctbench run`` makes SIGTERM raise in the parent)
    and leaves Ctrl-C to the parent."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


Drawn = list[tuple[list[Plot], str]]


def save_all(jobs: Sequence[Mapping[str, Any]], workers: int | None = None) -> Drawn:
    """``save_plots(**job)`` for every job, in order (``start_drawing``, waited for)."""
    return start_drawing(jobs, workers)()


def start_drawing(jobs: Sequence[Mapping[str, Any]], workers: int | None = None) -> Callable[[], Drawn]:
    """Start ``save_plots(**job)`` for every job; the returned function waits for them and gives their plots and
    errors, in order. Each of a job's ``figure_parts`` is drawn by one of up to ``workers`` forked processes
    (default: the cores this process may use), while this process goes on with what needs no figure (the case
    pages). Drawing is most of a report's time and the parts are independent; the jobs (frames, styles, the custom
    hook) reach the workers by the fork, only the plots' names come back. A part whose process dies (a crash in a
    plotting library) comes back with no plots and the reason as its error, and the other parts are drawn. Drawn
    when waited for, in this process, where fork is unsafe (other Python threads running, e.g. a Ray driver's) or
    pointless (one part or one core)."""
    global _JOBS
    parts = [(i, part) for i, job in enumerate(jobs) for part in figure_parts(job.get("spec"), job.get("custom"))]
    workers = min(workers or len(os.sched_getaffinity(0)), len(parts))
    if workers < 2 or threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return lambda: [save_plots(**job) for job in jobs]
    _JOBS = jobs
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_signals)
    futures = [pool.submit(_save_part, i, part) for i, part in parts]  # forks every worker now, with ``_JOBS``

    def wait() -> Drawn:
        global _JOBS
        try:
            pool.shutdown(wait=True)
            # a worker that died broke the pool and every part still in it: each of those again, alone
            drawn = [
                _drawn(future) or _alone(i, part, context) for (i, part), future in zip(parts, futures, strict=True)
            ]
        finally:
            _JOBS = ()
        done: Drawn = []
        for i in range(len(jobs)):
            mine = [d for (j, _), d in zip(parts, drawn, strict=True) if j == i]
            done.append(([p for plots, _ in mine for p in plots], "; ".join(e for _, e in mine if e)))
        return done

    return wait


def _drawn(future: Future) -> tuple[list[Plot], str] | None:
    try:
        return future.result()
    except BrokenProcessPool:
        return None


def _alone(index: int, part: str, context: Any) -> tuple[list[Plot], str]:
    """Part ``part`` of job ``index`` in a pool of its own: its figures, or the reason its process died."""
    with ProcessPoolExecutor(1, mp_context=context, initializer=_worker_signals) as pool:
        future = pool.submit(_save_part, index, part)
    return _drawn(future) or ([], f"not drawn: its drawing process died ({future.exception()})")
