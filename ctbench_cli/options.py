"""Argument types of the command line: every flag is checked before anything runs (exit 2, with the valid range)."""

from __future__ import annotations

import argparse
import math
import re

import psutil

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number of seconds > 0")
    return value


def threads(text: str) -> int:
    """``auto`` (0: 1 on a CPU, torch's own on a GPU) or an integer >= 1."""
    if text == "auto":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1 or auto") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1 or auto")
    return value


def count(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return value


def seed(text: str) -> int:
    """An integer in [0, 2^32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers in [0, 2^32)") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers in [0, 2^32)")
    return value


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (a GPU by its index): the devices the cases run on."""
    if re.fullmatch(r"cpu|cuda(:[0-9]{1,4})?", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda or cuda:N")


def memory(text: str) -> int:
    """Bytes, as ``8G``, ``512M``, ``1073741824`` or ``50%`` of this machine's RAM; at least 64 MiB."""
    total = psutil.virtual_memory().total
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%|[kKmMgGtT]?)i?[bB]?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size like 8G, 512M or 50%")
    number, unit = float(match.group(1)), match.group(2)
    value = int(total * number / 100) if unit == "%" else int(number * _UNITS[unit.lower()])
    if not 64 * 2**20 <= value <= total:
        raise argparse.ArgumentTypeError(f"{text!r}: the limit must lie between 64M and this machine's RAM")
    return value
