"""Text from run files, file names and error messages, made safe to show.

``printable`` is the one gate between such text and a terminal: it writes out every character that could move the
cursor, start an escape sequence, break a line or reorder the text around it (C0 and C1 controls, DEL, line and
paragraph separators, bidirectional controls) and every lone surrogate, as a visible escape (``\\x1b``, ``\\n``,
``\\u202e``). Its output holds none of them, so it can be applied twice without change.

``shown`` keeps the text as it is but writes out lone surrogates (which no UTF-8 stream can encode): a byte of a file
name that was not UTF-8 (Python reads it as ``\\udcXX``) becomes ``\\xXX``, any other surrogate ``\\udXXX``.
``without_surrogates`` replaces lone surrogates (from JSON's ``\\ud800`` escapes) with U+FFFD.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as ``surrogateescape`` read it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: Any) -> str:
    """``str(text)`` with every control, bidirectional control and lone surrogate written as a visible escape: safe
    to print to a terminal, on one line."""
    text = str(text)
    return text if text.isprintable() else _UNSAFE.sub(_escape, text)


def shown(text: Any) -> str:
    """``str(text)`` with its lone surrogates written as escapes (``\\xff`` for a non-UTF-8 byte of a file name):
    encodable as UTF-8, otherwise unchanged."""
    text = str(text)
    return _SURROGATE.sub(_escape, text) if _SURROGATE.search(text) else text


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (the replacement character)."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text
