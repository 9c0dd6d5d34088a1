"""The regression-history page: asv's results folder read offline, each benchmark plotted across commits, steps
flagged by asv's own step detection.

The folder is written here in asv 0.6's results format, as ``asv run`` writes it (``benchmarks.json`` beside one
folder per machine: ``machine.json`` and one ``<commit[:8]>-<env>.json`` per commit and environment, results in
``result_columns`` order, a ``-Infinity``/``Infinity`` interval where asv had too few samples): twelve commits
of a parameterised timing benchmark whose second case gets 50% slower at the eighth commit, and a memory
benchmark whose first result is of an older benchmark version.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex

from report import build_report
from report.asv_history import build
from report.benchmark_build import synthetic_runs

REPO = Path(__file__).resolve().parents[2]
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
           "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples", "profile"]  # fmt: skip
CASES = ["'tiny:direct[n=8]'", "'tiny:direct[n=64]'"]
TIME, MEMORY = "bench_tasks.Step.time_step", "bench_tasks.Step.peakmem_step"
N_COMMITS, JUMP = 12, 7


def commit(i: int) -> str:
    return f"{i:02d}" + "c0ffee" * 6 + "00"


def write_results(root: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    machine = root / "ci"
    machine.mkdir(parents=True)
    benchmarks = {
        TIME: {"name": TIME, "param_names": ["case"], "params": [CASES], "type": "time", "unit": "seconds",
               "version": "t1", "number": 0, "repeat": 0, "timeout": 600},
        MEMORY: {"name": MEMORY, "param_names": [], "params": [], "type": "peakmemory", "unit": "bytes",
                 "version": "m1", "timeout": 600},
        "version": 2,
    }  # fmt: skip
    (root / "benchmarks.json").write_text(json.dumps(benchmarks))
    (machine / "machine.json").write_text(json.dumps({"machine": "ci", "cpu": "x", "version": 1}))
    for i in range(N_COMMITS):
        small = 1e-4 * (1 + 0.01 * rng.random())
        big = 1e-3 * (1.5 if i >= JUMP else 1.0) * (1 + 0.01 * rng.random())
        low, high = [small * 0.99, big * 0.99], [small * 1.01, big * 1.01]
        quartiles = [[small, big], [small, big]]  # stats_q_25, stats_q_75
        if i == 0:
            low, high = [-float("inf")] * 2, [float("inf")] * 2  # asv's interval with too few samples
        doc = {
            "commit_hash": commit(i),
            "env_name": "existing-py_venv",
            "date": 1_700_000_000_000 + i * 86_400_000,
            "params": {"machine": "ci", "python": "3.11"},
            "python": "3.11",
            "requirements": {},
            "env_vars": {},
            "result_columns": COLUMNS,
            "results": {
                TIME: [[small, big], [CASES], "t1", 1_700_000_000_000, 4.7, low, high, *quartiles, [1, 1], [10, 10]],
                MEMORY: [[320_000_000 + i], [], "m1" if i else "m0", 1_700_000_000_000, 4.6],
            },
            "durations": {"<build>": 0.001},
            "version": 2,
        }
        # asv writes non-finite floats as bare -Infinity / Infinity, which its reader (and json) accept
        (machine / f"{commit(i)[:8]}-existing-py_venv.json").write_text(json.dumps(doc))
    return root


def _target(out: Path):
    def target(name: str) -> Path:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    return target


def test_the_step_is_flagged_by_asvs_step_detection_and_only_there(tmp_path):
    folder = write_results(tmp_path / "results")
    (folder / "ci" / "broken.json").write_text("{not json")
    history, problems = build(folder, _target(tmp_path / "site"))
    assert problems == [] and history.error == ""
    assert history.files == N_COMMITS and history.commits == N_COMMITS and history.machines == ["ci / existing-py_venv"]
    assert [path for path, _ in history.skipped] == [str(folder / "ci" / "broken.json")]
    assert history.outdated == 1  # the memory result of benchmark version m0, left out as asv publish does
    by_name = {b.name: b for b in history.benchmarks}
    assert set(by_name) == {TIME, MEMORY} and by_name[TIME].series == 2 and by_name[MEMORY].commits == N_COMMITS - 1
    (flag,) = by_name[TIME].flags
    assert flag.series == "case=tiny:direct[n=64]" and flag.regression
    assert (flag.before_commit, flag.after_commit) == (commit(JUMP - 1), commit(JUMP))
    assert 0.45 < flag.change < 0.55 and history.regressions == 1
    assert by_name[MEMORY].flags == []
    for bench in history.benchmarks:
        png = tmp_path / "site" / bench.plot
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_each_series_is_drawn_in_its_implementation_s_colour_and_marker(tmp_path):
    """The report's palette holds here too: a series of an implementation (``case=task:impl[point]``) in its colour
    and marker, a series of none in the guide's grey; without the report's styles another colour (the control)."""
    from ctbench.figures.palette import GUIDE, Style
    from report.asv_history import figure, load

    frame, _, _ = load(write_results(tmp_path / "results"))
    drawn = {}
    for name, styles in (("report", {"direct": Style("#123456", "D")}), ("control", None)):
        for bench in (TIME, MEMORY):
            rows = frame[frame["benchmark"] == bench]
            order = sorted(set(rows["commit"]))
            fig = figure(rows, order, [0] * len(order), bench, "seconds", [], styles)
            lines = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) > 1]
            drawn[name, bench] = {(to_hex(line.get_color()), line.get_marker()) for line in lines}
            plt.close(fig)
    assert drawn["report", TIME] == {("#123456", "D")}
    assert drawn["report", MEMORY] == {(to_hex(GUIDE.colour), GUIDE.marker)}
    assert {colour for colour, _ in drawn["control", TIME]} != {"#123456"}


def test_an_improvement_is_a_step_but_not_a_regression(tmp_path):
    folder = write_results(tmp_path / "results")
    for path in (folder / "ci").glob("*-existing-py_venv.json"):  # the slow-down becomes a speed-up
        doc = json.loads(path.read_text())
        values = doc["results"][TIME][0]
        doc["results"][TIME][0] = [values[0], 2.5e-3 - values[1]]
        path.write_text(json.dumps(doc))
    history, _ = build(folder, _target(tmp_path / "site"))
    (flag,) = next(b for b in history.benchmarks if b.name == TIME).flags
    assert flag.change < -0.3 and not flag.regression and history.regressions == 0


def test_the_report_has_a_history_page_and_says_when_there_is_no_folder(tmp_path):
    runs = tmp_path / "runs"
    synthetic_runs(20, runs)
    folder = write_results(tmp_path / "results")
    built = build_report([runs], tmp_path / "site", asv_results=folder)
    assert [p for p in built.problems if p.startswith("history")] == []
    page = (tmp_path / "site" / "history.html").read_text()
    assert "1 regression" in page and TIME in page and "+50" in page
    assert commit(JUMP)[:12] in page and commit(JUMP - 1)[:12] in page
    assert 'src="plots/history-' in page and "1 result of an older version" in page
    assert 'href="history.html"' in (tmp_path / "site" / "index.html").read_text()  # in every page's navigation
    built = build_report([runs], tmp_path / "site2", asv_results=tmp_path / "nowhere")
    assert "No asv results at" in (tmp_path / "site2" / "history.html").read_text()
    build_report([runs], tmp_path / "site3")  # not asked for: no page, no link
    assert not (tmp_path / "site3" / "history.html").exists()
    assert 'href="history.html"' not in (tmp_path / "site3" / "index.html").read_text()


def test_ctbench_report_takes_asv_results(tmp_path, capsys):
    from ctbench_cli.main import main

    synthetic_runs(10, tmp_path / "runs")
    folder = write_results(tmp_path / "results")
    assert main(["report", str(tmp_path / "runs"), "-o", str(tmp_path / "site"), "--asv-results", str(folder)]) == 0
    assert "1 regression" in (tmp_path / "site" / "history.html").read_text()


@pytest.mark.browser
def test_the_history_page_in_a_browser(tmp_path):
    """Loads from file:// without an error or a network request; its figures decode; a screenshot is kept."""
    from playwright.sync_api import sync_playwright

    synthetic_runs(10, tmp_path / "runs")
    build_report([tmp_path / "runs"], tmp_path / "site", asv_results=write_results(tmp_path / "results"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        problems = []
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: r.url.startswith("file:") or problems.append(f"request {r.url}"))
        page.goto((tmp_path / "site" / "history.html").as_uri())
        page.wait_for_load_state("load")
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(sizes) == 2 and all(w > 500 for w in sizes)
        assert page.locator("table.steps tr.fail").count() == 1
        shot = tmp_path / "history.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == []
    if os.environ.get("CTBENCH_SCREENSHOTS"):
        dest = REPO / ".ci" / "out" / "screenshots"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, dest / "history.png")


def test_history_figures_keep_their_texts_apart(tmp_path, monkeypatch):
    """The report's figure audit holds on the history page: tick labels, axis labels, the legend and each flagged
    step's percentage keep apart, and no bar stands on a log axis. Its control, in each figure: a percentage put
    on a tick label is found."""
    from ctbench.figures import audit
    from report import asv_history

    draw, audited, problems = asv_history.figure, [], []

    def audited_figure(*args, **kwargs):
        fig = draw(*args, **kwargs)
        problems.extend(audit.overlapping_texts(fig) + audit.bars_on_log_axes(fig))
        ax = fig.axes[0]
        tick = ax.get_xticklabels()[0]
        control = ax.annotate("+50%", tick.get_position(), xycoords=tick.get_transform(), ha="center", va="top")
        audited.append(bool(audit.overlapping_texts(fig)))
        control.remove()
        return fig

    monkeypatch.setattr(asv_history, "figure", audited_figure)
    history, errors = build(write_results(tmp_path / "results"), _target(tmp_path / "site"))
    assert errors == [] and audited == [True] * len(history.benchmarks) == [True, True]
    assert any(bench.flags for bench in history.benchmarks)  # a step's percentage is among the texts audited
    assert problems == []
