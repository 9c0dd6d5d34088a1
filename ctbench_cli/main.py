"""``ctbench``: list tasks, run them, show and compare results, build the HTML report.

Exit codes: 0 every case ok; 1 some case failed, timed out, ran out of memory or was invalid (or nothing could be
read); 2 usage or harness error, before anything runs (an unknown task, implementation, scale or parameter; a flag
out of range; a submission that does not load or takes a reserved name; a run already running in the same folder).
"""

from __future__ import annotations

import argparse
import os
import sys

from ctbench import __version__
from ctbench.api.implementation import ImplementationError
from ctbench.catalog.registry import UsageError
from ctbench_cli.commands import COMMANDS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctbench", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"ctbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.__doc__ or command.help)
        command.setup_arguments(child)
        child.set_defaults(fn=command.run)
    return p


def _lenient_output() -> None:
    """Text that UTF-8 cannot encode (a lone surrogate from a file name or a run file) is printed as an escape,
    never raised as an error after the cases have run."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # not a text stream we may reconfigure
            pass


def main(argv: list[str] | None = None) -> int:
    _lenient_output()
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except BrokenPipeError:  # `ctbench show ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ImplementationError, OSError) as exc:  # bad input, or a folder that cannot be written
        print(f"ctbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
