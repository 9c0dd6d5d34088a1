"""One ``ctbench`` subcommand per module (asv's ``Command`` pattern): each declares its name, its help, its own
arguments and what it does, and holds no domain logic (that is the engine's)."""

from __future__ import annotations

import argparse
from typing import ClassVar


class Command:
    """A subcommand: ``setup_arguments`` declares its flags, ``run`` does it and returns the exit status."""

    name: ClassVar[str]
    help: ClassVar[str]

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this command's arguments to its subparser."""

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        raise NotImplementedError
