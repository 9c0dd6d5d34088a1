"""The report in headless Chromium (Debian's ``/usr/bin/chromium`` through Python playwright).

Each page loads from file:// with no console error; task pages show their leaderboards and plots that decode;
sorting a column reorders the rows; the compare page shows verdicts; the injection string renders as text and
never runs. A screenshot of every page is kept under the test's output folder (and copied to
``.ci/out/screenshots/`` when ``CTBENCH_SCREENSHOTS`` is set).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from runfiles import INJECTION, case, fixture_site, run_doc

from report import build_report

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = (
    "index.html",
    "task-adjoint_resnet.html",
    "task-not_a_task_here.html",
    "task-adjoint_resnet-cases-1.html",
    "compare.html",
    "env.html",
    "benchmarks.html",
)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    return fixture_site(tmp_path_factory.getbasetemp() / "report")[0]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page recording console errors, uncaught exceptions and dialogs (an alert means injection)."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: m.type == "error" and page.problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: page.problems.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: page.problems.append(f"request failed: {r.url}"))
    page.on("dialog", lambda d: (page.problems.append(f"dialog: {d.message}"), d.dismiss()))
    yield page
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("screenshots")
    yield out
    if os.environ.get("CTBENCH_SCREENSHOTS"):
        dest = REPO / ".ci" / "out" / "screenshots"
        dest.mkdir(parents=True, exist_ok=True)
        for png in out.glob("*.png"):
            shutil.copyfile(png, dest / png.name)


def open_page(page, site_dir: Path, name: str, shots: Path):
    page.goto((site_dir / name).as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(shots / f"{Path(name).stem}.png"), full_page=True)
    return page


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_without_errors(page, site_dir, shots, name):
    open_page(page, site_dir, name, shots)
    assert page.title().endswith("ctbench report")
    assert page.locator("header.top nav a").count() >= 5
    assert page.problems == []


def test_overview_and_injection_render_as_text(page, site_dir, shots):
    open_page(page, site_dir, "index.html", shots)
    assert page.locator("section.task").count() == 2
    impl_cells = page.locator("td.impl").all_inner_texts()
    assert any(INJECTION in text for text in impl_cells)
    assert page.evaluate("document.querySelectorAll('main script').length") == 0
    assert page.locator("#skipped li").count() == 2  # corrupt, newer schema
    assert page.problems == []


def test_task_pages_show_leaderboards_and_plots_that_decode(page, site_dir, shots):
    open_page(page, site_dir, "task-adjoint_resnet.html", shots)
    assert page.locator("#leaderboards table.lb").count() == 3
    images = page.locator("#plots img")
    assert images.count() >= 1
    for i in range(images.count()):
        assert images.nth(i).evaluate("img => img.decode().then(() => img.naturalWidth)") > 0, f"plot {i}"
    open_page(page, site_dir, "task-not_a_task_here.html", shots)
    assert page.locator("table.lb tbody tr").count() == 1 and page.locator("#plots img").count() == 0
    assert page.problems == []


def _column(board, index: int) -> list[float]:
    return [
        float(v)
        for v in board.locator(f"tbody tr:not(.bad) td:nth-child({index + 1})").evaluate_all(
            "cells => cells.map(c => c.dataset.v)"
        )
    ]


def test_sorting_a_column(page, site_dir, shots):
    open_page(page, site_dir, "task-adjoint_resnet.html", shots)
    # smoke, depth 8: six ranked rows, two failed or invalid
    board = page.locator("#leaderboards .board").filter(has_text="nan_method")
    headers = board.locator("thead th").all_inner_texts()
    index = next(i for i, h in enumerate(headers) if h.startswith("step_time_s"))
    header = board.locator("thead th").nth(index)
    header.locator("button").click()  # lower is better: best (smallest) first
    times = _column(board, index)
    assert times == sorted(times) and len(times) == 6
    assert header.get_attribute("aria-sort") == "ascending"
    header.locator("button").click()
    assert _column(board, index) == sorted(times, reverse=True)
    assert board.locator("tbody tr").last.get_attribute("class").endswith("bad")  # failed rows stay below
    rank = board.locator("thead th").first
    rank.locator("button").click()
    assert _column(board, 0) == [1, 2, 3, 4, 5, 6]
    assert page.problems == []


def test_compare_page_shows_verdicts(page, site_dir, shots):
    open_page(page, site_dir, "compare.html", shots)
    verdicts = set(page.locator("#compare tbody td:last-child").all_inner_texts())
    assert {"worse", "within noise", "no spread"} <= verdicts  # the fixture's only gain has no spread
    noise_rows = page.locator("#compare tr.v-within-noise")
    assert noise_rows.first.is_visible()
    page.locator("#hide-noise").check()
    assert not noise_rows.first.is_visible()
    assert page.locator("#compare tr.v-worse").first.is_visible()
    assert page.problems == []


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_pages_over_a_static_server(page, site_dir):
    handler = functools.partial(QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for name in ("index.html", "task-adjoint_resnet.html"):
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/{name}")
            page.wait_for_load_state("load")
        assert page.locator("#plots img").first.evaluate("img => img.naturalWidth > 0")
    finally:
        server.shutdown()
        server.server_close()
    assert page.problems == []


def wide_run(folder: Path) -> Path:
    """A run of a task with many metrics (implicit_jfb's description) and long implementation names."""
    names = ("jfb", "ift", "unrolled", "torchdeq_onestep", "an_implementation_with_a_rather_long_name")
    cases = []
    for i, impl in enumerate(names):
        for tol in (0.01, 1e-05):
            record = case(impl, 8, task="implicit_jfb", dataset="fashion-mnist", accuracy=0.8 + 0.01 * i,
                          submission="mine" if i == 4 else "reference")  # fmt: skip
            record["params"] = {"solver": "fixed_point", "tol": tol}
            record["impl_hash"] = f"{i:02d}c0ffee{i:02d}" * 2
            record["metrics"].update({"forward_iterations": 12.0, "step_forward_iterations": 11.5 + i,
                "latent_bytes": 2.0**20, "residual": 1e-3 * (i + 1), "converged": 1.0,
                "backward_jacobian_products": 3.0 * i, "backward_time_vs_one_step": 1.0 + i, "grad_cosine": 0.99,
                "parameters": 12345.0, "epoch_time_s": 12.5, "epoch_throughput_samples_s": 800.0,
                "backward_time_s": 0.01 * (i + 1)})  # fmt: skip
            cases.append(record)
    doc = run_doc("20250105T000000Z-wide", "2025-01-05T00:00:00+00:00", cases)
    path = folder / "wide.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def wide_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wide")
    _, _, paths = fixture_site(tmp_path_factory.getbasetemp() / "report")
    built = build_report([paths["old"], paths["new"], wide_run(root)], root / "site")
    assert built.problems == []
    return root / "site"


@pytest.mark.parametrize("name", ["index.html", "task-implicit_jfb.html", "task-adjoint_resnet.html"])
def test_key_columns_fit_a_1366x768_screen(browser, wide_site, shots, name):
    """At 1366x768 the ranking metric and the task's objectives are in view without scrolling sideways: neither
    the page nor any board scrolls horizontally, the implementation column is pinned."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.goto((wide_site / name).as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(shots / f"fit-1366x768-{Path(name).stem}.png"), full_page=True)
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    boards = page.locator(".board")
    assert boards.count() >= 2
    for i in range(boards.count()):
        board = boards.nth(i)
        scroll = board.locator(".scroll")
        assert scroll.evaluate("e => e.scrollWidth <= e.clientWidth"), f"board {i} scrolls sideways"
        keys = board.locator("th.key")
        texts = keys.all_inner_texts()
        for objective in ("test_accuracy", "step_peak_memory_bytes", "step_time_s"):  # both tasks' objectives
            assert any(t.startswith(objective) for t in texts), (objective, texts)
        assert board.locator("th.primary").first.inner_text().startswith("test_accuracy")
        for j in range(keys.count()):
            box = keys.nth(j).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 1366, (texts[j], box)
    assert page.locator("td.impl").first.evaluate("td => getComputedStyle(td).position") == "sticky"
    context.close()


def test_more_metrics_open_and_the_pareto_and_ties_show(browser, wide_site, shots):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.goto((wide_site / "task-implicit_jfb.html").as_uri())
    more = page.locator("details.more").first
    assert not more.locator("table").is_visible()
    more.locator("summary").click()
    assert more.locator("table").is_visible() and "grad_cosine" in more.inner_text()
    assert page.locator("th.pareto").count() >= 2 and page.locator("td.pareto").first.inner_text() == "1"
    figures = page.locator("#plots figcaption").all_inner_texts()
    assert any(t.startswith("Pareto") for t in figures), figures
    page.screenshot(path=str(shots / "more-metrics-open.png"), full_page=False)
    context.close()
