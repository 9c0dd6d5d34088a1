"""One colour and marker per implementation across every plot of a report.

References take a fixed palette in the order of their names (across every task of the report), so a method keeps
its colour from plot to plot; submissions are drawn dark, with thick lines and a star, and their legend entries
say so. The report builds the styles once (``assign``) and draws inside ``using(styles)``, so that a task's custom
plot hook that asks ``current()`` (or draws through ``ctbench.figures.plotting``) gets the same colours. What a
figure draws beside the implementations and is none of them (the data, an exact value) is drawn as ``GUIDE``, in a
grey that no implementation is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ctbench.store.text import printable

if TYPE_CHECKING:  # matplotlib is imported only where a figure is drawn
    from matplotlib.typing import LineStyleType

# matplotlib's tab10 without its grey (kept for submissions), then three more distinct colours
REFERENCE_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#637939",
    "#7b4173",
    "#e6ab02",
)
REFERENCE_MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 and 12 are coprime: 84 distinct pairs
SUBMISSION_COLOURS = ("#000000", "#555555", "#2f2f6f", "#5c2a00")
SUBMISSION_LINES: tuple[LineStyleType, ...] = ("-", "--", "-.", ":")
REFERENCE_PAIRS = len(REFERENCE_COLOURS) * len(REFERENCE_MARKERS)  # distinct (colour, marker) of ``_reference``
SUBMISSION_PAIRS = len(SUBMISSION_COLOURS) * len(SUBMISSION_LINES)  # distinct (colour, line) of ``_submission``


@dataclass(frozen=True)
class Style:
    """How one implementation is drawn in every plot."""

    colour: str
    marker: str
    submission: bool = False
    linestyle: LineStyleType = "-"

    @property
    def linewidth(self) -> float:
        return 2.8 if self.submission else 1.6

    @property
    def markersize(self) -> float:
        return 13.0 if self.submission else 7.0

    @property
    def zorder(self) -> float:
        return 4.0 if self.submission else 2.0


GUIDE = Style("#7f7f7f", "", linestyle="--")  # what is drawn beside the implementations: data, an exact value


def _reference(i: int) -> Style:
    return Style(REFERENCE_COLOURS[i % len(REFERENCE_COLOURS)], REFERENCE_MARKERS[i % len(REFERENCE_MARKERS)])


def _submission(i: int) -> Style:
    colours = len(SUBMISSION_COLOURS)
    return Style(SUBMISSION_COLOURS[i % colours], "*", True, SUBMISSION_LINES[i // colours % len(SUBMISSION_LINES)])


def _references(names: Sequence[str], groups: Sequence[set[str]]) -> dict[str, Style]:
    """Palette order over the sorted names, skipping a colour already held by a name that shares a group (a task)
    with this one: implementations plotted together differ in colour while a group has at most 12 of them; a colour
    held by several names gets a different marker for each."""
    styles: dict[str, Style] = {}
    taken: dict[str, int] = {}  # colour -> names holding it
    for name in names:
        beside = {s.colour for other, s in styles.items() if any(name in g and other in g for g in groups)}
        free = [c for c in REFERENCE_COLOURS if c not in beside] or list(REFERENCE_COLOURS)
        colour = min(free, key=lambda c: (taken.get(c, 0), REFERENCE_COLOURS.index(c)))
        styles[name] = Style(colour, REFERENCE_MARKERS[(REFERENCE_COLOURS.index(colour) + taken.get(colour, 0)) % 7])
        taken[colour] = taken.get(colour, 0) + 1
    return styles


def assign(entries: Iterable[tuple[str, bool]], groups: Sequence[Iterable[str]] = ()) -> dict[str, Style]:
    """Styles for ``(label, is_submission)`` pairs: references in the order of their labels, then submissions.

    ``groups`` are the sets of labels drawn together (one per task); without them every label is in one group.
    """
    entries = list(entries)
    references = sorted({label for label, sub in entries if not sub})
    submissions = sorted({label for label, sub in entries if sub} - set(references))
    sets = [set(g) for g in groups] or [set(references)]
    styles = _references(references, sets)
    styles.update({label: _submission(i) for i, label in enumerate(submissions)})
    return styles


def legend_text(label: str, style: Style) -> str:
    """A legend entry: the label as plain, printable text (``ctbench.store.text.printable``), submissions marked."""
    label = printable(label)
    return f"{label} (submission)" if style.submission else label


_current: dict[str, Style] = {}


def current() -> Mapping[str, Style]:
    """The styles of the report being drawn (empty outside ``using``)."""
    return _current


@contextmanager
def using(styles: Mapping[str, Style]) -> Iterator[None]:
    """Draw with ``styles`` until the block ends."""
    saved = dict(_current)
    _current.clear()
    _current.update(styles)
    try:
        yield
    finally:
        _current.clear()
        _current.update(saved)


def complete(styles: Mapping[str, Style], entries: Iterable[tuple[str, bool]]) -> dict[str, Style]:
    """``styles`` plus styles for the labels it lacks (a plot drawn outside a report, or a label it did not see):
    references in the order of their labels, then submissions, each the first palette style whose colour no label
    holds yet, else (every colour held) the first whose colour, marker and line no label holds."""
    out = dict(styles)
    missing = sorted({(sub, label) for label, sub in entries if label not in out})
    for sub, label in missing:
        if label in out:  # a label both a reference and a submission: drawn as the reference, as ``assign`` does
            continue
        make, count = (_submission, SUBMISSION_PAIRS) if sub else (_reference, REFERENCE_PAIRS)
        out[label] = _unused(out.values(), [make(i) for i in range(count)])
    return out


def _unused(held: Iterable[Style], candidates: Sequence[Style]) -> Style:
    """The first of ``candidates`` in a colour none of ``held`` has, else in a look (colour, marker, line) none has;
    the first candidate when every look is held."""
    held = list(held)
    colours = {s.colour for s in held}
    looks = {(s.colour, s.marker, s.linestyle) for s in held}
    fresh = [c for c in candidates if c.colour not in colours]
    return (fresh or [c for c in candidates if (c.colour, c.marker, c.linestyle) not in looks] or [*candidates])[0]
