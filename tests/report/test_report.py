"""The HTML report: pages, escaping, skipped files, CSV, ranking groups, failed rows, compare, benchmarks.

The run documents below are test fixtures written here (valid against ``ctbench.store.results.Run.validated``); they
carry the real ``adjoint_resnet`` task's description (``ctbench.catalog.describe``) so its metrics, units and plots are
used, plus a run of a task whose run file describes nothing.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from html import escape as html_escape
from pathlib import Path

import pandas as pd
import pytest
from runfiles import (
    CPU_ENV,
    INJECTION,
    METHODS,
    REPO,
    case,
    fixture_site,
    good_doc,
    run_doc,
    smoke_cases,
    write,
    write_results,
)

from ctbench.boards.cells import number
from ctbench.boards.ranking import PARETO_NO_SPREAD
from ctbench.catalog.registry import description
from report import Built, build_report
from report.benchmark_build import synthetic_runs
from report.fmt import safe_url
from report.views import case_page, page_names


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> tuple[Path, Built, dict[str, Path]]:
    return fixture_site(tmp_path_factory.getbasetemp() / "report")


@pytest.fixture
def no_plots(monkeypatch):
    """For tests about something else: skip drawing the task's figures (seconds each on 2 cores)."""
    monkeypatch.setattr("report.build.start_drawing", lambda jobs: lambda: [([], "")] * len(jobs))


def html(site_dir: Path, name: str) -> str:
    return (site_dir / name).read_text()


def test_builds_every_page_and_lists_skipped_files(site):
    site_dir, built, paths = site
    assert built.index == site_dir / "index.html"
    for page in (
        "index.html",
        "task-adjoint_resnet.html",
        "task-not_a_task_here.html",
        "compare.html",
        "env.html",
        "benchmarks.html",
        "leaderboard.csv",
        "cases.csv.gz",
        "task-adjoint_resnet-cases-1.html",
        "static/report.css",
        "static/sort.js",
    ):
        assert (site_dir / page).is_file(), page
    reasons = {Path(s.path).name: s.reason for s in built.skipped}
    assert set(reasons) == {"corrupt.json", "newer.json"}
    assert "not valid JSON" in reasons["corrupt.json"]
    assert "newer" in reasons["newer.json"]
    index = html(site_dir, "index.html")
    for s in built.skipped:
        assert html_escape(s.path) in index and html_escape(s.reason.removeprefix(f"{s.path}: ")) in index


def test_no_readable_run_means_no_report(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    built = build_report([empty], tmp_path / "site")
    assert built.index is None and built.skipped == []
    paths = write_results(tmp_path / "results")
    built = build_report([paths["corrupt"], paths["newer"]], tmp_path / "site")
    assert built.index is None and len(built.skipped) == 2
    assert not (tmp_path / "site").exists()


def test_strings_from_results_are_escaped(site):
    site_dir, _, _ = site
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for page in site_dir.glob("*.html"):
        text = page.read_text()
        assert INJECTION not in text, page.name
        assert "javascript:" not in text, page.name  # a manifest URL that is not http(s) is never a link
    assert escaped in html(site_dir, "index.html")
    assert escaped in html(site_dir, "task-adjoint_resnet.html")  # the failed case's error text
    assert escaped in html(site_dir, "task-adjoint_resnet-cases-1.html")  # there too, on its case page
    assert re.findall(r"<script[^>]*>", html(site_dir, "index.html")) == ['<script src="static/sort.js" defer>']
    assert safe_url("javascript:alert(1)") == "" and safe_url("https://x.org") == "https://x.org"


def test_csv_is_the_aggregated_table(site):
    site_dir, _, _ = site
    board = pd.read_csv(site_dir / "leaderboard.csv")
    cases = pd.read_csv(site_dir / "cases.csv.gz")
    assert len(cases) == len(smoke_cases()) + len(smoke_cases(0.1, 3.0)) + len(METHODS) + 1
    ar = board[board["task"] == "adjoint_resnet"]
    # the two smoke runs share hardware and cases: one row per implementation and depth, seeds merged
    smoke8 = ar[(ar["scale"] == "smoke") & (ar["params"] == "depth=8")]
    assert sorted(smoke8["impl"]) == sorted([*METHODS, INJECTION, "nan_method", "sloppy"])
    heun = smoke8[smoke8["impl"] == "adjoint_heun"]["metric.test_accuracy"].item()
    assert heun == pytest.approx(0.82 + 0.05)  # median of 0.82 (old run) and 0.92 (new run)


def test_ranks_never_cross_datasets_scales_or_hardware(site):
    site_dir, _, _ = site
    board = pd.read_csv(site_dir / "leaderboard.csv")
    ar = board[(board["task"] == "adjoint_resnet") & board["rank"].notna()]
    for _, group in ar.groupby(["scale", "dataset", "params", "hardware"]):
        assert sorted(group["rank"]) == list(range(1, len(group) + 1))
    small = ar[ar["scale"] == "small"]
    assert small.sort_values("rank")["impl"].tolist() == list(METHODS)  # accuracy 0.9, 0.89, ...
    assert set(small["hardware"]) == {"Test GPU (32 GiB, driver 550.1)"}
    # the submission tops its own group only: the small-scale group is ranked on its own
    top = ar[ar["rank"] == 1]
    assert set(top["impl"]) == {INJECTION, "adjoint_heun", "backprop"}


def test_failed_and_invalid_rows_are_shown_unranked(site):
    site_dir, _, _ = site
    board = pd.read_csv(site_dir / "leaderboard.csv")
    bad = board[board["impl"].isin(["nan_method", "sloppy"])]
    assert set(bad["status"]) == {"failed", "invalid"}
    assert bad["rank"].isna().all()
    assert "did not converge" in set(bad["reason"])
    index = html(site_dir, "index.html")
    row = re.search(r'<tr class="sub bad">\s*<td class="rank" data-v="">—</td>\s*<td class="impl">nan_method', index)
    assert row, "failed row greyed (class bad) with no rank"


def test_unknown_task_rows_shown_without_plots(site):
    site_dir, built, _ = site
    page = html(site_dir, "task-not_a_task_here.html")
    assert "do not describe the task" in page and "solver" in page and "<img" not in page
    assert "solver" in html(site_dir, "index.html")
    assert built.problems == []


def test_task_page_has_paper_plots_and_checks(site):
    site_dir, _, _ = site
    page = html(site_dir, "task-adjoint_resnet.html")
    images = re.findall(r'<img src="(plots/[^"]+\.png)"', page)
    assert images and all((site_dir / src).stat().st_size > 1000 for src in images)
    assert "https://arxiv.org/abs/2205.14612" in page
    assert "memory_flat_in_depth" in page and "heun_error_below_euler" in page
    assert "loss_finite" in page and "0.15" in page


def test_compare_picks_the_two_newest_runs_sharing_cases(site):
    site_dir, _, paths = site
    page = html(site_dir, "compare.html")
    assert "20250101T000000Z-aaaa" in page and "20250102T000000Z-aaaa" in page
    assert "20250103T000000Z-bbbb" not in page  # newest run, but shares no case
    changes = pd.read_csv(site_dir / "compare.csv")
    verdict = changes.set_index(["impl", "params", "metric"])["verdict"]
    assert verdict["adjoint_heun", "depth=8", "test_accuracy"] == "no spread"  # +0.1, but one seed and no spread
    assert verdict["backprop", "depth=8", "step_time_s"] == "worse"
    assert verdict["checkpoint", "depth=8", "step_time_s"] == "within noise"
    assert pd.isna(
        changes.set_index(["impl", "params", "metric"]).loc[("adjoint_heun", "depth=8", "test_accuracy"), "noise"]
    )
    assert 'class="verdict v-no-spread"' in page and "the change is not judged" in page


def test_compare_the_other_way_round(tmp_path, site, no_plots):
    """From the slower run to the faster: backprop's step time is better, its rate with it."""
    _, _, paths = site
    build_report([paths["new"], paths["old"]], tmp_path / "r", compare=[paths["new"], paths["old"]])
    changes = pd.read_csv(tmp_path / "r" / "compare.csv").set_index(["impl", "params", "metric"])["verdict"]
    assert changes["backprop", "depth=8", "step_time_s"] == changes["backprop", "depth=8", "throughput_samples_s"]
    assert changes["backprop", "depth=8", "step_time_s"] == "better"


def test_compare_named_runs_and_unreadable_ones(tmp_path, site, no_plots):
    _, _, paths = site
    built = build_report([paths["old"], paths["gpu"]], tmp_path / "a", compare=[paths["old"], paths["gpu"]])
    page = html(tmp_path / "a", "compare.html")
    assert "different hardware" in page and "Cases in only one run" in page
    built = build_report([paths["old"]], tmp_path / "b", compare=[paths["old"], paths["corrupt"]])
    assert [Path(s.path).name for s in built.skipped] == ["corrupt.json"]
    assert "not valid JSON" in html(tmp_path / "b", "compare.html")


def test_pytest_benchmark_table_and_asv_link(tmp_path, site, no_plots):
    _, _, paths = site
    built = build_report(
        [paths["old"]], tmp_path / "site", pytest_benchmark=paths["bench"], asv_url="https://asv.example/"
    )
    page = html(tmp_path / "site", "benchmarks.html")
    assert built.skipped == [] and "20 ms" in page and "impl=adjoint_heun" in page and INJECTION not in page
    assert '<a href="https://asv.example/"' in page
    build_report([paths["old"]], tmp_path / "site2", asv_url="javascript:alert(1)")
    assert "javascript:" in html(tmp_path / "site2", "benchmarks.html")  # shown as text only
    assert 'href="javascript:' not in html(tmp_path / "site2", "benchmarks.html")


def test_unreadable_pytest_benchmark_json_is_skipped(tmp_path, site, no_plots):
    _, _, paths = site
    for bad in (tmp_path / "missing.json", paths["corrupt"], paths["old"]):
        built = build_report([paths["old"]], tmp_path / "site", pytest_benchmark=bad)
        assert [s.path for s in built.skipped] == [str(bad)]
        assert "could not be read" in html(tmp_path / "site", "benchmarks.html")


def test_rebuild_removes_pages_it_wrote_before(tmp_path, site, no_plots):
    _, _, paths = site
    out = tmp_path / "site"
    (tmp_path / "site").mkdir()
    (out / "mine.txt").write_text("not the report's")
    build_report([paths["old"], paths["unknown"]], out)
    assert (out / "task-not_a_task_here.html").exists()
    build_report([paths["old"]], out)
    assert not (out / "task-not_a_task_here.html").exists()
    assert (out / "mine.txt").exists() and (out / "task-adjoint_resnet.html").exists()


@pytest.mark.parametrize(
    "value, unit, text",
    [
        (3 * 2**20, "bytes", "3 MiB"),
        (0.0123, "s", "12.3 ms"),
        (0.8125, "fraction", "81.25%"),
        (1.23456e-5, "", "1.235e-05"),
        (float("nan"), "s", "—"),
    ],
)
def test_number_format(value, unit, text):
    assert number(value, unit) == text


def test_paper_numbers_beside_ours_on_the_same_data_first(site):
    from dataclasses import asdict

    from ctbench import PaperNumber
    from ctbench.boards.table import cases_frame
    from ctbench.store.results import load_runs
    from report.views import paper_rows, task_meta

    _, _, paths = site
    runs, _ = load_runs([paths["old"], paths["gpu"]])
    number = PaperNumber("test_accuracy", 0.93, "backprop", "cifar10", "Table 1", "ResNet-101")
    spec = {**description("adjoint_resnet"), "paper_numbers": [asdict(number)]}
    meta = task_meta("adjoint_resnet", "task-adjoint_resnet.html", spec, [])
    (row,) = paper_rows(cases_frame(runs), meta)
    assert (row["paper"], row["source"], row["note"]) == ("93%", "Table 1", "ResNet-101")
    ours = [(o["text"], o["comparable"]) for o in row["ours"]]
    assert ours == [("90%", True), ("70%", False), ("70%", False)]  # cifar10 (small) first, then synthetic


def test_rows_of_different_code_ties_pareto_and_negative_controls_on_the_page(tmp_path, no_plots):
    cases = [case(m, 8, accuracy=0.8) for m in METHODS[:2]] + [case("adjoint_euler", 8, accuracy=0.7)]
    for c, digest in zip(cases, ("a1" * 6, "b2" * 6, "c3" * 6), strict=True):
        c["impl_hash"] = digest
    control = case("adjoint_heun", 8, status="invalid", error="diverged")
    control["expected_invalid"] = "negative control: the paper expects this one to diverge"
    old = run_doc("20250101T000000Z-aaaa", "2025-01-01T00:00:00+00:00", [*cases, control])
    changed = copy.deepcopy(cases[2])
    changed.update(impl_hash="d4" * 6, metrics={**changed["metrics"], "test_accuracy": 0.9})
    new = run_doc("20250102T000000Z-aaaa", "2025-01-02T00:00:00+00:00", [changed])
    for doc in (old, new):
        (tmp_path / f"{doc['run_id']}.json").write_text(json.dumps(doc))
    build_report([tmp_path], tmp_path / "site")
    page = html(tmp_path / "site", "task-adjoint_resnet.html")
    # 0.9 (the new code), 0.8 and 0.8 tied, 0.7 (the old code): ranks 1, 2=, 2=, 4 (in the board and its more metrics)
    ranks = re.findall(r'<td class="rank" data-v="\d*"[^>]*>([^<]+)</td>', page)
    assert ranks == ["1", "2=", "2=", "4", "—"] * 2
    assert "c3c3c3c3" in page and "d4d4d4d4" in page
    assert "invalid as expected" in page and "the paper expects this one to diverge" in page
    assert '<th class="num pareto"' in page and "Objectives" in page
    assert PARETO_NO_SPREAD in page  # each row's step timed in one process: the caption says why layers are shared
    board = pd.read_csv(tmp_path / "site" / "leaderboard.csv")
    euler = board[board["impl"] == "adjoint_euler"].set_index("code")
    assert euler.loc["c3" * 6, "metric.test_accuracy"] == 0.7 and euler.loc["d4" * 6, "metric.test_accuracy"] == 0.9
    assert {"pareto", "tied", "cases", "seeds", "runs", "rank_by", "objectives"} <= set(board.columns)
    assert "1 invalid as expected" in html(tmp_path / "site", "index.html")


def test_a_case_that_did_not_end_ok_is_listed_with_its_tuned_values_apart_from_notes(tmp_path, no_plots):
    diverged = case("adjoint_heun", 8, status="invalid", error="diverged at iteration 7483", tuned_step_size=0.5,
                    tuned_outer_ratio=10.0)  # fmt: skip
    noted = {**case("backprop", 8), "note": "a peer configured by hand"}
    doc = run_doc("20250101T000000Z-aaaa", "2025-01-01T00:00:00+00:00", [noted, diverged])
    (tmp_path / "run.json").write_text(json.dumps(doc))
    build_report([tmp_path / "run.json"], tmp_path / "site")
    page = html(tmp_path / "site", "task-adjoint_resnet.html")
    broken = page[page.index('<section id="failures">') : page.index('<section id="notes">')]
    notes = page[page.index('<section id="notes">') :]
    assert "diverged at iteration 7483" in broken and "tuned: step_size 0.5, outer_ratio 10" in broken
    assert "a peer configured by hand" not in broken and "backprop" not in broken
    assert "a peer configured by hand" in notes and "diverged at iteration" not in notes
    assert 'href="#failures">failed, invalid, timed out (1)</a>' in page and 'href="#notes">notes (1)</a>' in page


def test_report_rank_by_and_latest(tmp_path, site, monkeypatch):
    _, _, paths = site
    handed: list[tuple[int, set[str]]] = []

    def drawing(jobs):  # what the figures would be drawn from: the boards' cases and the hooks' records
        handed.extend((len(job["cases"]), {r["run_id"] for r in job["records"]}) for job in jobs)
        return lambda: [([], "")] * len(jobs)

    monkeypatch.setattr("report.build.start_drawing", drawing)
    build_report([paths["old"], paths["new"]], tmp_path / "site", rank_by="step_time_s", latest_only=True)
    [(cases, run_ids)] = [h for h in handed if h[1]]
    assert run_ids == {"20250102T000000Z-aaaa"} and cases == len(json.loads(paths["new"].read_text())["cases"])
    board = pd.read_csv(tmp_path / "site" / "leaderboard.csv")
    assert set(board["rank_by"].dropna()) == {"step_time_s"}
    heun = board[(board["impl"] == "adjoint_heun") & (board["params"] == "depth=8")]
    assert heun["metric.test_accuracy"].item() == pytest.approx(0.92) and heun["runs"].item() == "20250102T000000Z-aaaa"
    assert "chosen with --rank-by" in html(tmp_path / "site", "index.html")
    built = build_report([paths["old"]], tmp_path / "site2", rank_by="no_such_metric")
    assert any("--rank-by no_such_metric" in p for p in built.problems)


FORKED_DRAWING = """
import json, os, signal, sys
from pathlib import Path
import pandas as pd
from report.plots import save_all

root, workers, dies = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def interrupt(signum, frame):  # as ``ctbench run``, which builds the report in the same process
    raise KeyboardInterrupt

signal.signal(signal.SIGTERM, interrupt)

def custom(task, cases, records):
    import matplotlib.pyplot as plt
    (root / f"pid-{task}").write_text(str(os.getpid()))
    if task == dies:
        os.kill(os.getpid(), signal.SIGKILL)
    fig, ax = plt.subplots()
    ax.plot(cases["x"], label=task)
    return {f"{task} curve": fig}

def target(src):
    (root / src).parent.mkdir(parents=True, exist_ok=True)
    return root / src

frame = pd.DataFrame({"x": [1.0, 2.0, 4.0]})
jobs = [{"task": t, "spec": None, "cases": frame, "records": [], "target": target, "custom": custom} for t in "abc"]
done = save_all(jobs, workers)
pids = {t: int((root / f"pid-{t}").read_text()) for t in "abc"}
print(json.dumps({"plots": [[[p.name, p.src] for p in plots] for plots, _ in done], "errors": [e for _, e in done],
                  "forked": all(pid != os.getpid() for pid in pids.values())}))
"""


def draw(folder: Path, workers: int, dies: str = "") -> dict:
    folder.mkdir()
    args = [sys.executable, "-c", FORKED_DRAWING, str(folder), str(workers), dies]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def test_plots_drawn_in_forked_workers_are_those_drawn_in_order(tmp_path):
    serial, forked = draw(tmp_path / "serial", 1), draw(tmp_path / "forked", 2)
    assert not serial["forked"] and forked["forked"]
    assert forked["plots"] == serial["plots"] == [[[f"{t} curve", f"plots/{t}-{t}-curve-custom-0.png"]] for t in "abc"]
    assert forked["errors"] == ["", "", ""]
    for t in "abc":
        assert (tmp_path / "forked" / f"plots/{t}-{t}-curve-custom-0.png").stat().st_size > 1000


def test_a_drawing_process_that_dies_costs_its_figures_not_the_report(tmp_path):
    drawn = draw(tmp_path / "out", 2, dies="b")
    a, c = [["a curve", "plots/a-a-curve-custom-0.png"]], [["c curve", "plots/c-c-curve-custom-0.png"]]
    assert drawn["plots"] == [a, [], c]
    assert drawn["errors"][0] == drawn["errors"][2] == ""
    assert drawn["errors"][1].startswith("not drawn: its drawing process died")


def test_pages_stay_small_however_many_cases(tmp_path, no_plots, monkeypatch):
    """Every case is on a case page, ``cases_per_page`` to a page; the task page lists at most that many failed checks
    and ``FAILURES_SHOWN`` failures. The control: four times the cases leave the largest page as it was (before the
    case pages, the task page grew with every case)."""
    per_page = 40
    monkeypatch.setattr("report.build.FAILURES_SHOWN", 10)
    largest = {}
    for n in (600, 2400):
        monkeypatch.setattr("report.benchmark_build.CASES_PER_RUN", n // 3)  # three runs, two machines: the same boards
        synthetic_runs(n, tmp_path / f"runs-{n}")
        site = tmp_path / f"site-{n}"
        build_report([tmp_path / f"runs-{n}"], site, cases_per_page=per_page)
        pages = sorted(site.glob("task-adjoint_resnet-cases-*.html"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        assert len(pages) == -(-n // per_page)
        rows = [len(re.findall(r'<tr class="case ', page.read_text())) for page in pages]
        assert sum(rows) == n and max(rows) == per_page, rows
        numbers = [
            int(i)
            for page in pages
            for i in re.findall(r'<tr class="case [^"]*"><td class="num">(\d+)<', page.read_text())
        ]
        assert numbers == list(range(1, n + 1))  # every case once, in order across the pages
        task = html(site, "task-adjoint_resnet.html")
        assert len(re.findall(r'<details class="failure">', task)) <= 10
        assert len(re.findall(r'<tr class="fail">', task)) <= per_page + 1  # the failed checks, and their summary row
        assert all(f'href="{page.name}"' in task for page in pages)
        largest[n] = max((page.stat().st_size, page.name) for page in site.glob("*.html"))
    failed = n * 0.02
    assert failed > per_page and failed > 10  # the caps were reached
    assert largest[2400][0] < 1.2 * largest[600][0], largest


def test_index_lists_the_runs_it_holds(tmp_path, no_plots):
    elsewhere = {**CPU_ENV, "hostname": "bench-node-7", "git_commit": "fedcba9876543210ffff", "git_dirty": True}
    write(tmp_path / "runs", "a.json", good_doc())
    later = run_doc("20250102T000000Z-later", "2025-01-02T00:00:00+00:00", [case("backprop", 16)], env=elsewhere)
    write(tmp_path / "runs", "b.json", later)
    build_report([tmp_path / "runs"], tmp_path / "site")
    runs = html(tmp_path / "site", "index.html").split('<section id="runs">')[1]
    rows = [re.sub(r"<[^>]+>", "|", row) for row in re.findall(r"<tr><td>.*?</tr>", runs)]
    assert len(rows) == 2  # newest first
    assert "20250102T000000Z-later" in rows[0] and "2025-01-02T00:00:00+00:00" in rows[0]
    assert "|fedcba987654 (uncommitted changes)|" in rows[0] and "|1|" in rows[0] and "|bench-node-7|" in rows[0]
    assert "20250101T000000Z-good" in rows[1] and "|0123456789ab|" in rows[1]
    assert f"|{len(good_doc()['cases'])}|" in rows[1]


def test_no_task_page_takes_the_name_of_a_case_page():
    pages = page_names(["a", "a-cases-1", "a-cases", "a_cases-2", "a-cases-1-cases-3"])
    assert len(set(pages.values())) == len(pages)
    taken = {case_page(page, n) for page in pages.values() for n in range(1, 5)}
    assert not taken & set(pages.values()), pages


def test_a_task_drawing_its_own_figures_says_where_it_is_not_installed(tmp_path, no_plots):
    doc = run_doc("20250101T000000Z-aaaa", "2025-01-01T00:00:00+00:00", [case("backprop", 8)])
    assert doc["tasks"]["adjoint_resnet"]["custom_plots"] is False  # the real task draws only declared plots
    doc["tasks"]["adjoint_resnet"]["custom_plots"] = True
    write(tmp_path, "run.json", doc)
    missing = "draws more figures with its own code"
    build_report([tmp_path / "run.json"], tmp_path / "without", describe=lambda name: None)
    assert missing in html(tmp_path / "without", "task-adjoint_resnet.html")
    build_report([tmp_path / "run.json"], tmp_path / "with", describe=description)
    assert missing not in html(tmp_path / "with", "task-adjoint_resnet.html")
