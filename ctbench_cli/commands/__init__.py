"""The subcommands of ``ctbench``, one module each, in the order ``ctbench --help`` lists them."""

from ctbench_cli.commands.compare import Compare
from ctbench_cli.commands.listing import List
from ctbench_cli.commands.report import Report
from ctbench_cli.commands.run import Run
from ctbench_cli.commands.show import Show

COMMANDS = [List, Run, Show, Compare, Report]

__all__ = ["COMMANDS"]
