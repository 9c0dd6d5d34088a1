"""The command line's own flags."""

from __future__ import annotations

import pytest

import ctbench
from ctbench_cli.main import main


def test_version_prints_the_one_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ctbench {ctbench.__version__}"
