"""The command line: its own flags, its help, and the lines its run summary prints."""

from __future__ import annotations

import pytest

import ctbench
from ctbench_cli.main import main
from ctbench_cli.summary import check_lines


def test_version_prints_the_one_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ctbench {ctbench.__version__}"


def test_compare_help_says_what_its_arguments_are_and_how_it_judges(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "A the earlier run" in text.replace(":", "") and "B the later run" in text.replace(":", "")
    assert "--impl NAME" in text and "give twice" in text
    for verdict in ("within noise", "no spread", "machine", "sum of the two sides' spreads"):
        assert verdict in text, verdict


def test_an_undecided_check_says_why_with_or_without_an_interval():
    doc = {
        "cases": [{"task": "t", "impl": "ref", "submission": "reference", "status": "ok"}],
        "checks": [
            {"task": "t", "name": "timed", "scope": {}, "value": 1.8, "threshold": 1.7, "passed": None,
             "interval": [1.6, 1.9], "description": "a paired ratio"},
            {"task": "t", "name": "raced", "scope": {}, "value": 2.0, "threshold": 3.0, "passed": None,
             "description": "seeds overlap"},
        ],
    }  # fmt: skip
    timed, raced = check_lines(doc, None)
    assert "1.8 [1.6, 1.9] against 1.7" in timed and "the interval holds the threshold" in timed
    assert "2 against 3" in raced and "interval" not in raced.split("(")[1] and "see its description" in raced
    assert all("the run does not fail" in line for line in (timed, raced))
