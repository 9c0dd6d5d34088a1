"""What a drawn figure shows, read back from its artists: which colour and marker each implementation got, text
that collides after layout, and bars on log axes. Tests hold every figure of a report to these (one style per
implementation everywhere, nothing unreadable, no bar whose length means nothing)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ctbench.figures.palette import GUIDE, Style


@dataclass(frozen=True)
class Drawn:
    """One implementation as a figure draws it: its colour (``#rrggbb``) and marker ("" for none)."""

    colour: str
    marker: str


def _hex(colour: Any) -> str:
    from matplotlib.colors import to_hex

    return to_hex(colour, keep_alpha=False)


def _handle_style(handle: Any) -> Drawn | None:
    """The colour and marker a legend handle shows (a line, a marker collection or a patch)."""
    from matplotlib.collections import Collection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if isinstance(handle, Line2D):
        marker = handle.get_marker()
        shown = marker if marker not in (None, "None", "", " ") else ""
        colour = handle.get_color() if handle.get_linestyle() not in ("None", "") else handle.get_markerfacecolor()
        return Drawn(_hex(colour), str(shown))
    if isinstance(handle, Collection):
        colours = handle.get_facecolor()
        return Drawn(_hex(colours[0]), "") if len(colours) else None
    if isinstance(handle, Patch):
        return Drawn(_hex(handle.get_facecolor()), "")
    return None


def _legends(figure: Any) -> Iterator[Any]:
    yield from figure.legends
    for ax in figure.axes:
        if ax.get_legend() is not None:
            yield ax.get_legend()


def _legend_entries(figure: Any) -> Iterator[tuple[str, Drawn]]:
    for legend in _legends(figure):
        handles = getattr(legend, "legend_handles", None) or getattr(legend, "legendHandles", [])
        for text, handle in zip(legend.get_texts(), handles, strict=False):
            style = _handle_style(handle)
            if style is not None:
                yield text.get_text(), style


def legend_styles(figure: Any) -> dict[str, Drawn]:
    """Each legend entry's text and the style of its handle, over every legend of ``figure``."""
    return dict(_legend_entries(figure))


def tagged_styles(figure: Any) -> dict[str, set[str]]:
    """The colours of every artist tagged with an implementation's label (``gid``), by label."""
    out: dict[str, set[str]] = {}
    for artist in figure.findobj(lambda a: bool(a.get_gid())):
        colour = _artist_colour(artist)
        if colour is not None:
            out.setdefault(str(artist.get_gid()), set()).add(colour)
    return out


def tagged_markers(figure: Any, marker: Mapping[str, str]) -> dict[str, set[str]]:
    """The markers of the artists tagged with the labels of ``marker`` (label -> the marker it should have), by
    label: a line's marker, or a scatter's, named by ``marker`` where its path is that marker's, else ``"other"``.
    Lines without markers, error-bar caps and filled areas draw none."""
    import numpy as np
    from matplotlib.collections import PathCollection
    from matplotlib.lines import Line2D

    out: dict[str, set[str]] = {}
    for artist in figure.findobj(lambda a: str(a.get_gid()) in marker and a.get_visible()):
        label = str(artist.get_gid())
        if isinstance(artist, Line2D):
            shown = artist.get_marker()
            if shown not in (None, "None", "", " ", "_", "|"):
                out.setdefault(label, set()).add(str(shown))
        elif isinstance(artist, PathCollection) and len(artist.get_paths()):
            drawn = np.asarray(artist.get_paths()[0].vertices)
            expected = _marker_path(marker[label])
            same = expected is not None and expected.shape == drawn.shape and bool(np.allclose(expected, drawn))
            out.setdefault(label, set()).add(marker[label] if same else "other")
    return out


def _marker_path(marker: str) -> Any:
    """The vertices a scatter draws for ``marker`` (as ``Axes.scatter`` builds its path)."""
    from matplotlib.markers import MarkerStyle

    if not marker:
        return None
    import numpy as np

    style = MarkerStyle(marker)
    return np.asarray(style.get_path().transformed(style.get_transform()).vertices)


def drawn_labels(figure: Any) -> dict[str, set[str]]:
    """Each label ``figure`` draws (a legend entry, ``label (submission)`` read as ``label``, or a tagged artist)
    and the colours it is drawn in."""
    out = {label: set(colours) for label, colours in tagged_styles(figure).items()}
    for text, drawn in _legend_entries(figure):
        out.setdefault(text.removesuffix(" (submission)"), set()).add(drawn.colour)
    return out


def _artist_colour(artist: Any) -> str | None:
    from matplotlib.collections import Collection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if isinstance(artist, Line2D):
        line = artist.get_linestyle() not in ("None", "")
        marker = artist.get_marker() not in (None, "None", "", " ")
        if not artist.get_visible() or not (line or marker):
            return None
        if line:
            return _hex(artist.get_color())
        face = artist.get_markerfacecolor()
        return _hex(
            artist.get_markeredgecolor() if str(face).lower() == "none" or artist.get_marker() in ("_", "|") else face
        )
    if isinstance(artist, Collection):
        colours = artist.get_facecolor() if len(artist.get_facecolor()) else artist.get_edgecolor()
        return _hex(colours[0]) if len(colours) else None
    if isinstance(artist, Patch):
        return _hex(artist.get_facecolor())
    return None


def style_mismatches(figure: Any, styles: Mapping[str, Style]) -> list[str]:
    """Where ``figure`` draws an implementation other than ``styles`` say: a legend entry (its text the label,
    or ``label (submission)``) or a tagged artist in another colour, or a legend entry in another marker; and a
    legend entry or a tagged artist of a label ``styles`` lack, unless drawn in ``palette.GUIDE``'s grey (what is
    drawn beside the implementations); and a tagged line or scatter with another marker than its label's."""
    guide = _hex(GUIDE.colour)
    problems = []
    for text, drawn in _legend_entries(figure):
        label = text.removesuffix(" (submission)")
        style = styles.get(label)
        if style is None:
            if drawn.colour != guide:
                problems.append(f"legend {label!r}: no implementation of the report, drawn in {drawn.colour}")
            continue
        if drawn.colour != _hex(style.colour):
            problems.append(f"legend {label!r}: colour {drawn.colour}, not {_hex(style.colour)}")
        if drawn.marker and drawn.marker != style.marker:
            problems.append(f"legend {label!r}: marker {drawn.marker!r}, not {style.marker!r}")
    for label, colours in tagged_styles(figure).items():
        style = styles.get(label)
        if style is None and colours != {guide}:
            problems.append(f"{label!r}: no implementation of the report, drawn in {sorted(colours)}")
        elif style is not None and colours != {_hex(style.colour)}:
            problems.append(f"{label!r} drawn in {sorted(colours)}, not {_hex(style.colour)}")
    for label, markers in tagged_markers(figure, {k: v.marker for k, v in styles.items()}).items():
        if markers != {styles[label].marker}:
            problems.append(f"{label!r} drawn with markers {sorted(markers)}, not {styles[label].marker!r}")
    return problems


def _tick_labels(figure: Any) -> tuple[list[Any], set[int]]:
    """The tick labels drawn (one per current tick location inside the axis's view) and the ids of every tick
    label, current or left over from an earlier layout."""
    shown, every = [], set()
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            scale = axis.get_transform()  # compared where they are drawn: a log axis's ticks in decades
            low, high = sorted(float(v) for v in scale.transform(list(axis.get_view_interval())))
            margin = 1e-9 * abs(high - low)
            for locs, ticks in (
                (axis.get_majorticklocs(), axis.get_major_ticks),
                (axis.get_minorticklocs(), axis.get_minor_ticks),
            ):
                current = ticks(len(locs))
                every |= {id(label) for tick in ticks() for label in (tick.label1, tick.label2)}
                for loc, tick in zip(scale.transform(list(locs)) if len(locs) else [], current, strict=True):
                    if ax.get_visible() and low - margin <= loc <= high + margin:
                        shown += [lb for lb in (tick.label1, tick.label2) if lb.get_visible() and lb.get_text().strip()]
    return shown, every


def _texts(figure: Any) -> list[Any]:
    """The visible, non-empty texts of ``figure``: titles, axis labels, drawn tick labels, legends, notes."""
    from matplotlib.text import Text

    ticks, every_tick = _tick_labels(figure)
    found = figure.findobj(lambda a: isinstance(a, Text) and a.get_visible() and a.get_text().strip())
    others = [t for t in found if id(t) not in every_tick and (t.axes is None or t.axes.get_visible())]
    return others + ticks


def overlapping_texts(figure: Any, slack: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of texts whose extents intersect after the figure's layout, by more than ``slack`` pixels each way."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    boxes = []
    for text in _texts(figure):
        box = text.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            boxes.append((text.get_text(), box))
    clashes = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            dx = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            dy = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            if dx > slack and dy > slack:
                clashes.append((a, b))
    return clashes


def bars_on_log_axes(figure: Any) -> list[str]:
    """The axes that draw bars (rectangles from a baseline) on a log value axis: a bar's length there means
    nothing."""
    from matplotlib.patches import Rectangle

    found = []
    for ax in figure.axes:
        bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0 and p.get_height() > 0]
        if bars and (ax.get_yscale() != "linear" or ax.get_xscale() != "linear"):
            found.append(ax.get_title() or "untitled panel")
    return found
