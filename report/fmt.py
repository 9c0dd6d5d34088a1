"""HTML-side formatting for the pages: safe file names, safe links, names isolated from the page's text direction.
Numbers with their units and CSV cells come from ``ctbench.boards`` (the terminal shows the same)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from markupsafe import Markup, escape

from ctbench.store.text import shown


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (task and plot names come from result files: never trust them)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:80] or "x"


def safe_url(url: Any) -> str:
    """``url`` if it is an http(s) link, else empty: a ``javascript:`` URL from a manifest is never a link."""
    return url if isinstance(url, str) and re.match(r"https?://", url, re.IGNORECASE) else ""


# bidirectional classes that can reorder text: right-to-left letters, Arabic digits, embeddings, overrides, isolates
_REORDERING = frozenset({"R", "AL", "AN", "LRE", "LRO", "RLE", "RLO", "PDF", "LRI", "RLI", "FSI", "PDI"})


def bdi(value: Any) -> Markup:
    """``value`` as escaped HTML text, inside ``<bdi>`` when it holds a character that can change the direction of
    text (a U+202E override, a right-to-left letter): isolated, it cannot reorder the page around it.

    A string of left-to-right letters, digits and neutrals is left bare: it cannot reorder anything, and every
    string that can is isolated, so it has no right-to-left neighbour to be drawn into.
    """
    text = shown(value)  # a lone surrogate (a file name's non-UTF-8 byte) as an escape: the page stays UTF-8
    if text.isascii() or not any(unicodedata.bidirectional(ch) in _REORDERING for ch in text):
        return escape(text)
    return Markup("<bdi>{}</bdi>").format(text)
