"""The check table a README quotes is the run file's, written by ``report.check_table``, never pasted by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ctbench.store.results import Run
from report.check_table import BLOCK, table, update

RESULTS = Path(__file__).resolve().parents[2] / "results"


def test_the_results_readme_quotes_its_reference_run_as_the_file_holds_it():
    text = (RESULTS / "README.md").read_text()
    blocks = list(BLOCK.finditer(text))
    assert blocks, "results/README.md holds no check table"
    for block in blocks:
        assert block.group("table") == table(Run.load(RESULTS / block.group("run"))), (
            "stale: run python -m report.check_table --update results/README.md"
        )


def test_a_changed_check_changes_the_table_and_update_rewrites_it(tmp_path):
    """The control: one check of the run moved is a different table, and ``update`` writes it into the block."""
    [block] = [b for b in BLOCK.finditer((RESULTS / "README.md").read_text())][:1]
    run = json.loads((RESULTS / block.group("run")).read_text())
    flops = next(c for c in run["checks"] if c["name"] == "step_flops_vs_backprop")
    flops["value"], flops["passed"] = 2.5, False
    (tmp_path / "reference").mkdir()
    (tmp_path / block.group("run")).write_text(json.dumps(run))
    readme = tmp_path / "README.md"
    shutil.copy(RESULTS / "README.md", readme)
    assert update(readme) is True
    rewritten = next(BLOCK.finditer(readme.read_text())).group("table")
    assert rewritten != block.group("table")
    assert "| adjoint_resnet | `step_flops_vs_backprop` | 4 pass, 1 fail | 1.317 to 3.33 |" in rewritten
    assert update(readme) is False  # written once, current after
