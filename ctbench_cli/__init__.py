"""The ``ctbench`` command line, above both the engine (``ctbench``) and the report (``report``)."""

from ctbench_cli.main import main

__all__ = ["main"]
