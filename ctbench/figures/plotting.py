"""Plots drawn from a cases frame alone: the renderer of the tasks' declarative ``LinePlot``s, the Pareto scatter of
a leaderboard, and the helpers custom plot hooks share (a line per implementation or per case, a panel per setting;
``ctbench.figures.records`` turns case records into their rows).

Every plot draws each implementation in its report-wide style (``ctbench.figures.palette``): references in a fixed
palette, submissions dark, thick and starred, the legend saying which are submissions. Figures are about 1000 px
wide at the report's 110 dpi, with plain tick labels (8, 64, 256; 0.001; 2e7), never ``6x10^1``.

A *setting* is what must never be mixed in one curve: scale, dataset and hardware.

A curve is the median over seeds with a band (or whiskers) over the 0.2-0.8 quantiles of the seeds, over all of them
where fewer than five ran; or, where a caller asks for a line per case (``units``), each case's own values. Nothing is
left out silently: a value <= 0 on a log y axis is drawn at the axis's floor, marked, and the legend says so and
counts the cases not drawn; a caller that passes ``linthresh`` gets such a panel on a symmetric log axis instead.

Text from run files (names, titles, labels) is drawn as plain text: never read as mathtext (a name such as
``$\\undefined{x}$`` would fail the whole figure), with its control characters written as escapes.
"""

from __future__ import annotations

import contextlib
import math
import re
import textwrap
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ctbench.boards.table import METRIC, PARAM
from ctbench.figures import palette
from ctbench.figures.palette import Style
from ctbench.store.text import printable

DPI = 110
WIDTH_IN = 1000 / DPI  # figures about 1000 px wide
MAX_PANELS = 9  # per figure; more boards make more figures
SCALES = {"smoke": 0, "small": 1, "full": 2}
BAND = (0.2, 0.8)  # the quantiles over seeds a band or whisker spans (benchopt's default)...
BAND_SEEDS = 5  # ...from this many seeds on (each tail then holds a whole seed); with fewer, all of them


@contextlib.contextmanager
def plain_text() -> Iterator[None]:
    """Within the block, matplotlib draws every text it creates as it is, never as mathtext (``$...$``): wrap both
    the drawing of a figure and its saving (tick labels are made when it is saved)."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):
        yield


def setting(cases: pd.DataFrame) -> pd.Series:
    """``scale | dataset | hardware`` for every row of a cases frame."""
    return cases["scale"] + " | " + cases["dataset"] + " | " + cases["hardware"]


def labels(frame: pd.DataFrame) -> pd.Series:
    """Each row's implementation label: ``label`` (``ctbench.boards.table``: impl, submission, code) else ``impl``."""
    return frame["label"] if "label" in frame else frame["impl"]


def entries(frame: pd.DataFrame) -> list[tuple[str, bool]]:
    """``(label, is_submission)`` of every implementation in ``frame``."""
    submission = frame["submission"] != "reference" if "submission" in frame else pd.Series(False, index=frame.index)
    return sorted(set(zip(labels(frame).astype(str), submission.astype(bool), strict=True)))


def groups(frame: pd.DataFrame) -> list[set[str]]:
    """The labels of each task in ``frame``: implementations drawn together, which must differ in colour."""
    if "task" not in frame:
        return [set(labels(frame).astype(str))]
    return [set(labels(sub).astype(str)) for _, sub in frame.groupby("task", sort=True)]


def report_styles(frame: pd.DataFrame) -> dict[str, Style]:
    """One style per implementation label of a whole report (``ctbench.figures.palette.assign``)."""
    return palette.assign(entries(frame), groups(frame))


def styles_for(frame: pd.DataFrame, styles: Mapping[str, Style] | None = None) -> dict[str, Style]:
    """The report's styles (``styles``, else those in use), completed for labels they lack."""
    return palette.complete(palette.current() if styles is None else styles, entries(frame))


def plain(value: float, _position: Any = None) -> str:
    """A tick label: 8, 256, 0.001, 12.5, 2e7; never a power written as 10^k."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else ""
    if 1e-3 <= abs(value) < 1e6:
        return f"{value:.6g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def plain_ticks(ax: Any, xvalues: Sequence[float] | None = None, categorical: bool = False) -> None:
    """Plain labels on the numeric axes (an axis labelled with names is left as it is); on a numeric x with few
    values, a tick at each (depth 8, 64, 256), less those whose labels would touch."""
    from matplotlib.category import StrCategoryFormatter
    from matplotlib.ticker import (
        FixedFormatter,
        FixedLocator,
        FuncFormatter,
        LogLocator,
        MaxNLocator,
        NullFormatter,
        NullLocator,
    )

    numeric = [(ax.yaxis, ax.get_ylim())] if categorical else [(ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())]
    for axis, limits in numeric:
        if isinstance(axis.get_major_formatter(), (FixedFormatter, StrCategoryFormatter)):
            continue
        length = ax.bbox.width if axis is ax.xaxis else ax.bbox.height
        if axis.get_scale() == "log":  # 1, 2, 5 per decade where a decade is wide enough; decades otherwise
            low, high = sorted(abs(v) for v in limits)
            decades = math.log10(high / low) if low > 0 else 99.0
            if decades < 1:  # less than a decade: evenly spaced values, as many as the axis has room for
                room = length / (50 if axis is ax.yaxis else 80)
                axis.set_major_locator(MaxNLocator(nbins=max(2, int(room))))
                axis.set_major_formatter(FuncFormatter(plain))
                axis.set_minor_formatter(NullFormatter())
                axis.set_minor_locator(NullLocator())
                continue
            dense = length / max(decades, 1e-9) >= (150 if axis is ax.xaxis else 60)  # labels' width, height
            every = max(1, math.ceil(decades / max(length / 45, 1)))  # a label every 45 px at most
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if dense else (1.0,), numticks=12))
            if not dense and every > 1:
                top = math.floor(math.log10(high)) if high > 0 else 0
                axis.set_major_locator(FixedLocator([10.0**k for k in range(top, top - 40, -every)]))
        elif axis.get_scale() == "symlog":
            low, high = sorted(limits)
            axis.set_major_locator(FixedLocator(_symlog_ticks(low, high, axis.get_transform().linthresh, length)))
        axis.set_major_formatter(FuncFormatter(plain))
        axis.set_minor_formatter(NullFormatter())
        axis.set_minor_locator(NullLocator())
    if xvalues is not None and 0 < len(xvalues) <= 12:
        ax.set_xticks(_apart(sorted(xvalues), ax.xaxis.get_scale() == "log"))
        ax.xaxis.set_minor_locator(NullLocator())


def _symlog_ticks(low: float, high: float, linear: float, length: float) -> list[float]:
    """0 and the powers of ten of either sign within [low, high] outside the linear part (-linear, linear), every
    k-th decade so that labels are at least 25 px apart."""
    powers = [10.0**k for k in range(-30, 31) if 10.0**k > 5 * linear]
    ticks = [-p for p in powers if low <= -p] + ([0.0] if low <= 0 <= high else []) + [p for p in powers if p <= high]
    every = max(1, math.ceil(len(ticks) / max(length / 25, 1)))
    keep = sorted(t for t in ticks if t == 0 or round(math.log10(abs(t))) % every == 0)
    if len(keep) < 2:  # a range within a few times the linear part: its ends and 0
        keep = sorted({low, high, *([0.0] if low <= 0 <= high else [])})
    return keep


def _apart(values: Sequence[float], log: bool) -> list[float]:
    """``values`` (sorted) less those within 6% of the range of the previous one kept: ticks whose labels would
    touch."""
    where = [math.log10(v) if log and v > 0 else v for v in values]
    span = (max(where) - min(where)) or 1.0
    kept: list[int] = []
    for i, w in enumerate(where):
        if not kept or w - where[kept[-1]] >= 0.06 * span:
            kept.append(i)
    return [values[i] for i in kept]


def _natural(value: Any) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(value)))


def panel_order(name: str) -> tuple:
    """Panels of the smoke scale first, then small, then full; the rest in natural order."""
    return (SCALES.get(name.split(" | ")[0], 9), _natural(name))


def title(text: str, count: int) -> str:
    """A panel's title, wrapped to the panel's width (three lines at most)."""
    width = {1: 110, 2: 56}.get(count, 34)
    lines = textwrap.wrap(printable(" ".join(text.split())), width) or [""]
    return "\n".join(lines[:3]) + ("…" if len(lines) > 3 else "")


def axis_label(text: str, count: int, vertical: bool = False) -> str:
    """An axis label wrapped to its panel (``count`` panels in the figure): a y label to the panel's height, an x
    label to its width (two lines at most)."""
    width = {1: 40, 2: 32}.get(count, 26) if vertical else {1: 110, 2: 60}.get(count, 38)
    lines = textwrap.wrap(printable(" ".join(text.split())), width) or [""]
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def grid(count: int, height: float | None = None) -> tuple[Any, list[Any]]:
    """A figure ``WIDTH_IN`` wide with ``count`` panels, two or three to a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 if count == 1 else 2 if count in (2, 4) else 3
    rows = math.ceil(count / cols)
    panel_height = height or (4.2 if cols == 1 else 3.5 if cols == 2 else 3.0)
    figure, axes = plt.subplots(rows, cols, figsize=(WIDTH_IN, panel_height * rows), squeeze=False, dpi=DPI)
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return figure, flat[:count]


def legend(figure: Any, styles: Mapping[str, Style], shown: Sequence[str], note: str = "") -> None:
    """One legend under the panels: submissions first (marked), then references, in their style; ``note`` (its
    lines) above them."""
    from matplotlib.lines import Line2D

    order = sorted(shown, key=lambda label: (not styles[label].submission, label))
    handles = [
        Line2D(
            [],
            [],
            color=styles[lb].colour,
            marker=styles[lb].marker,
            linestyle=styles[lb].linestyle,
            linewidth=styles[lb].linewidth,
            markersize=styles[lb].markersize * 0.8,
        )  # fmt: skip
        for lb in order
    ]
    figure.tight_layout()
    drawn = figure.legend(
        handles,
        [palette.legend_text(lb, styles[lb]) for lb in order],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(4, max(1, len(order))),
        frameon=False,
        title="\n".join(printable(line) for line in note.split("\n")) if note else None,
        title_fontsize=9,
    )
    for text in [*drawn.get_texts(), drawn.get_title()]:
        text.set_parse_math(False)


def _x_positions(values: pd.Series, categories: bool = False) -> tuple[pd.Series, list[Any] | None]:
    """Numeric x as it is; categories (names, booleans, or any x of a bar plot) at 0, 1, 2... in natural order,
    with their names."""
    numeric = pd.to_numeric(values, errors="coerce")
    if not categories and numeric.notna().all() and not values.map(lambda v: isinstance(v, bool)).any():
        return numeric.astype(float), None
    if numeric.notna().all():
        order = [str(v) for v in sorted(values.unique(), key=float)]
    else:
        order = sorted(values.astype(str).unique(), key=_natural)
    return values.astype(str).map({v: i for i, v in enumerate(order)}).astype(float), order


def _draw_units(ax: Any, rows: pd.DataFrame, y: str, style: Style, units: str, label: str, floor: float) -> bool:
    """A line per value of ``units`` among one implementation's ``rows``, its marker at the line's last point; a
    value at or below ``floor`` (a log axis's, ``_log_floor``) drawn there as a hollow marker, the line broken
    around it (a point the break leaves alone keeps its marker). Whether any was."""
    floored = False
    for _, one in rows.groupby(units, sort=True):
        one = one.sort_values("_x")
        at, values = one["_x"].to_numpy(dtype=float), one[y].to_numpy(dtype=float)
        low = values <= floor
        shown = ~low & ~np.isnan(values)
        alone = shown & ~np.r_[False, shown[:-1]] & ~np.r_[shown[1:], False]
        marked = sorted({len(one) - 1, *np.flatnonzero(alone).tolist()})
        ax.plot(at, np.where(low, np.nan, values), color=style.colour, linestyle=style.linestyle,
                linewidth=style.linewidth, marker=style.marker, markevery=marked, markersize=style.markersize,
                zorder=style.zorder, gid=label)  # fmt: skip
        if low.any():
            floored = True
            ax.plot(at[low], np.full(int(low.sum()), floor), linestyle="none", color=style.colour,
                    marker=style.marker, markersize=style.markersize, markerfacecolor="none", markeredgewidth=1.5,
                    zorder=style.zorder + 1, gid=label)  # fmt: skip
    return floored


def _seeds_of_one_point(rows: pd.DataFrame, units: str) -> bool:
    """Whether ``rows`` (one implementation's curves, a curve per value of ``units``) hold several curves of one
    point (the same parameters; ``series_rows``' ``point``), which differ by their seeds only."""
    return "point" in rows and rows["point"].nunique() == 1 and rows[units].nunique() > 1


def _aligned(rows: pd.DataFrame, units: str) -> pd.DataFrame:
    """Curves of one point over its seeds, aligned as benchopt aligns its runs' curves: the k-th points of the
    curves (in the order of x) are one point of the median curve, drawn at the median of their x. The curves lose
    ``units``, so they are drawn as medians with a band over seeds."""
    rows = rows.sort_values([units, "_x"], kind="stable")
    index = rows.groupby(units, sort=False).cumcount()
    at = rows.groupby(index)["_x"].transform("median")
    return rows.assign(_x=at).drop(columns=units)


def _over_seeds(values: Any) -> pd.DataFrame:
    """Per x of a grouped series: the median over seeds, the band's ends (``BAND``) and the number of seeds."""
    quantiled = values.size() >= BAND_SEEDS
    return pd.DataFrame({
        "median": values.median(),
        "low": values.quantile(BAND[0]).where(quantiled, values.min()),
        "high": values.quantile(BAND[1]).where(quantiled, values.max()),
        "seeds": values.size(),
    }).sort_index()  # fmt: skip


def _log_floor(values: pd.Series) -> float:
    """Where a log axis draws values <= 0: the power of ten a decade below the lowest positive value (1 when none is
    positive)."""
    positive = values[values > 0]
    return 10.0 ** (math.floor(math.log10(positive.min())) - 1) if len(positive) else 1.0


def _dodge(ax: Any, at: Any, offset: float, xs: pd.Series) -> Any:
    """``at`` moved sideways by ``offset`` steps (a step: 3% of a decade on a log x axis, 1.5% of the x range on a
    linear one), so that the floor markers of several implementations at one x do not hide one another."""
    if not offset:
        return at
    if ax.get_xscale() == "log":
        return at * 10 ** (0.03 * offset)
    span = float(xs.max() - xs.min()) or 1.0
    return at + 0.015 * span * offset


def _floor_axis(ax: Any, floor: float) -> None:
    """A dotted line along ``floor`` with its tick labelled ≤ 0, and no tick between it and the decade above."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    ax.axhline(floor, color="0.4", linestyle=":", linewidth=1.0, zorder=1)
    high = max(ax.get_ylim())
    above = [t for t in ax.get_yticks() if 10 * floor * (1 - 1e-9) <= t <= high]
    ax.yaxis.set_major_locator(FixedLocator([floor, *above]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "≤ 0" if math.isclose(v, floor) else plain(v)))


_Seen = dict[str, set[str]]  # what a caption must say -> the labels it holds for (``_draw_lines``)


def _draw_lines(
    ax: Any, panel: pd.DataFrame, x: str, y: str, styles: Mapping[str, Style], kind: str, units: str | None = None
) -> _Seen:
    """A line per implementation through its medians over seeds with a band over seeds where several ran (``BAND``),
    or a line per value of ``units`` (a case's curve, ``_draw_units``) where an implementation's curves are of
    several points (the curves of one point over its seeds are aligned into a median curve with its band,
    ``_aligned``); ``kind == "bar"`` (categorical x) draws dots at the medians with whiskers over the same band
    instead of bars, whose length would mean nothing on a log axis.
    On a log y axis a value <= 0 is drawn at ``_log_floor``, on a dotted line whose tick reads ≤ 0: a median (or a
    case's value) there as a hollow marker, a band down to it; on a symmetric log axis (``line_figures``'
    ``linthresh``) every value is drawn where it is. Returns the labels with medians or a case's values at the floor
    (``floored``), values at it (``floor``), quantile bands and bands over all seeds (``quantile``, ``range``), for
    ``_caption``."""
    xs, names = _x_positions(panel[x], categories=kind == "bar")
    panel = panel.assign(_x=xs, _label=labels(panel).astype(str))
    floor = _log_floor(panel[y]) if ax.get_yscale() == "log" else -math.inf
    shown = sorted(panel["_label"].unique(), key=lambda lb: (styles[lb].submission, lb))
    rows = {lb: panel[panel["_label"] == lb] for lb in shown}
    if units is not None and kind != "bar":
        rows = {lb: _aligned(r, units) if _seeds_of_one_point(r, units) else r for lb, r in rows.items()}
    curves = {lb for lb, r in rows.items() if units is not None and kind != "bar" and units in r}
    at_floor = [lb for lb in shown if lb not in curves and (rows[lb].groupby("_x")[y].median() <= floor).any()]
    seen: _Seen = defaultdict(set)
    for i, label in enumerate(shown):
        s = styles[label]
        if label in curves:
            if _draw_units(ax, rows[label], y, s, units or "", label, floor):
                seen["floored"].add(label)
                seen["floor"].add(label)
            continue
        stats = _over_seeds(rows[label].groupby("_x")[y])
        middle, low, high = (stats[c].clip(lower=floor) for c in ("median", "low", "high"))
        solid, banded = ~(stats["median"] <= floor).to_numpy(), (stats["seeds"] > 1).to_numpy()  # NaN: no point
        quantiled = (stats["seeds"] >= BAND_SEEDS).to_numpy()
        below = not solid.all() or bool((stats["low"][banded] <= floor).any())
        for key, holds in (("floored", not solid.all()), ("floor", below), ("quantile", quantiled.any()),
                           ("range", (banded & ~quantiled).any())):  # fmt: skip
            if holds:
                seen[key].add(label)
        at = stats.index.to_numpy(dtype=float)
        line = dict(color=s.colour, marker=s.marker, markersize=s.markersize, gid=label)
        if kind == "bar":
            at = at + (i - (len(shown) - 1) / 2) * min(0.8 / len(shown), 0.25)
            ax.errorbar(at, middle, yerr=[middle - low, high - middle], fmt="none", ecolor=s.colour,
                        elinewidth=s.linewidth, capsize=3, zorder=s.zorder, gid=label)  # fmt: skip
            ax.plot(at[solid], middle[solid], linestyle="none", zorder=s.zorder + 1,
                    markeredgecolor="black" if s.submission else s.colour, **line)  # fmt: skip
        else:
            if banded.any():
                ax.fill_between(at, low, high, color=s.colour, alpha=0.15, linewidth=0, zorder=s.zorder - 1,
                                gid=label)  # fmt: skip
            ax.plot(at, middle.where(solid), linestyle=s.linestyle, linewidth=s.linewidth, zorder=s.zorder, **line)
        if not solid.all():
            offset = at_floor.index(label) - (len(at_floor) - 1) / 2 if kind != "bar" else 0  # bars are dodged
            dodged = _dodge(ax, at[~solid], offset, xs)
            ax.plot(dodged, middle[~solid], linestyle="none", markerfacecolor="none", markeredgewidth=1.5,
                    zorder=s.zorder + 1, **line)  # fmt: skip
    if names is not None:
        names = [printable(n) for n in names]
        ax.set_xticks(range(len(names)), names, rotation=30 if max(map(len, names)) > 6 else 0, parse_math=False)
        ax.set_xlim(-0.5, len(names) - 0.5)
    plain_ticks(ax, None if names is not None else sorted(set(xs)), categorical=names is not None)
    if seen["floor"]:
        _floor_axis(ax, floor)
    return seen


def _caption(seen: _Seen, kind: str, units: bool = False) -> list[str]:
    """The lines a figure's legend adds on what its bands and its log axis's floor show (a case's values rather than
    medians where ``units`` drew a line per case)."""
    lines = []
    shade, quantiles = "whiskers" if kind == "bar" else "bands", f"{BAND[0]:g}-{BAND[1]:g} quantiles over seeds"
    if seen["quantile"]:
        fewer = f", lowest to highest seed where fewer than {BAND_SEEDS}" if seen["range"] else ""
        lines.append(f"medians over seeds; {shade}: {quantiles}{fewer}")
    elif seen["range"]:
        lines.append(f"medians over seeds; {shade}: lowest to highest seed (fewer than {BAND_SEEDS} seeds)")
    if seen["floor"]:
        floored = sorted(seen["floored"])
        named = ", ".join(floored[:4]) + (f" and {len(floored) - 4} more" if len(floored) > 4 else "")
        hollow = f"; hollow markers on it: {'values' if units else 'medians'} ≤ 0 of {named}" if floored else ""
        lines.append(f"dotted line (≤ 0): values a log axis cannot show{hollow}")
    return lines


def line_panels(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    xlabel: str,
    ylabel: str,
    xscale: str = "linear",
    yscale: str = "linear",
    col: str = "setting",
    kind: str = "line",
    styles: Mapping[str, Style] | None = None,
) -> Any:
    """``y`` against ``x``: a line (or bars) per implementation (median over seeds), a panel per ``col``.

    ``frame`` needs ``impl`` (or ``label``) and the ``col`` column (``setting`` by default, see ``setting``); each
    implementation keeps its own colour and marker. Returns the first figure when the panels need more than one
    (``line_figures`` returns them all).
    """
    return line_figures(frame, x, y, xlabel=xlabel, ylabel=ylabel, xscale=xscale, yscale=yscale, col=col,
                        kind=kind, styles=styles)[0]  # fmt: skip


def line_figures(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    xlabel: str,
    ylabel: str,
    xscale: str = "linear",
    yscale: str = "linear",
    col: str = "setting",
    kind: str = "line",
    styles: Mapping[str, Style] | None = None,
    note: str = "",
    units: str | None = None,
    linthresh: float | None = None,
) -> list[Any]:
    """``line_panels``' figures, ``MAX_PANELS`` panels each; ``note``, then what the bands and a log axis's floor
    show (``_draw_lines``), above the legend. With ``units``, a line per value of that column (a case's curve)
    instead of the median over seeds. A panel of a log y axis that holds values <= 0 draws them at the axis's floor;
    with ``linthresh``, on a symmetric log axis instead, linear within ``linthresh`` of 0."""
    chosen = styles_for(frame, styles)
    names = sorted(frame[col].astype(str).unique(), key=panel_order)
    figures = []
    with plain_text():
        for start in range(0, len(names), MAX_PANELS):
            chunk = names[start : start + MAX_PANELS]
            figure, axes = grid(len(chunk))
            seen: _Seen = defaultdict(set)
            for ax, name in zip(axes, chunk, strict=True):
                panel = frame[frame[col].astype(str) == name]
                if kind != "bar":
                    ax.set_xscale(xscale)
                symlog = yscale == "log" and linthresh is not None and bool((panel[y] <= 0).any())
                if symlog:
                    ax.set_yscale("symlog", linthresh=linthresh)
                else:
                    ax.set_yscale(yscale)
                for key, held in _draw_lines(ax, panel, x, y, chosen, kind, units).items():
                    seen[key] |= held
                ax.set_title(title(name, len(chunk)), fontsize=9, pad=10, parse_math=False)
                ax.set_xlabel(axis_label(xlabel, len(chunk)), parse_math=False)
                shown_y = f"{ylabel} (symmetric log: linear near 0)" if symlog else ylabel
                ax.set_ylabel(axis_label(shown_y, len(chunk), vertical=True), parse_math=False)
                ax.grid(True, alpha=0.3)
            caption = "\n".join([*([note] if note else []), *_caption(seen, kind, units is not None and kind != "bar")])
            legend(figure, chosen, sorted(set(labels(frame).astype(str))), caption)
            figures.append(figure)
    return figures


def _column(name: str) -> str:
    return name if name.startswith(PARAM) else METRIC + name


def draw(plot: Mapping[str, Any], cases: pd.DataFrame, styles: Mapping[str, Style] | None = None) -> Any | None:
    """The figure a ``LinePlot`` description (a dict, as stored in run files) asks for, or None when no ok case
    carries both of its axes."""
    figures = draw_all(plot, cases, styles)
    return figures[0] if figures else None


def draw_all(plot: Mapping[str, Any], cases: pd.DataFrame, styles: Mapping[str, Style] | None = None) -> list[Any]:
    """``draw``'s figures, ``MAX_PANELS`` panels each (none when no ok case carries both axes). Only ok cases are
    drawn; the legend says how many others there were, and how many ok ones a log x axis could not place (x not
    positive). A y value <= 0 on a log axis is drawn at the axis's floor, and said so (``_draw_lines``)."""
    x, y = _column(plot["x"]), _column(plot["y"])
    frame = cases
    for name, value in (plot.get("where") or {}).items():
        column = PARAM + name
        frame = frame[frame[column] == value] if column in frame else frame.iloc[0:0]
    if x not in frame or y not in frame:
        return []
    left_out = frame["status"] != "ok"
    frame = frame[~left_out]
    frame = frame.dropna(subset=[x, y]).assign(value=lambda d: d[y] * float(plot.get("scale_y", 1.0)))
    unplaced = ~(pd.to_numeric(frame[x], errors="coerce") > 0) & bool(plot.get("xlog"))  # a log x axis has no place
    frame = frame[~unplaced]
    if frame.empty:
        return []
    frame = frame.assign(setting=setting(frame))
    facet = plot.get("facet")
    if facet and PARAM + facet in frame:
        frame["setting"] = frame["setting"] + " | " + facet + "=" + frame[PARAM + facet].astype(str)
    return line_figures(
        frame,
        x,
        "value",
        xlabel=plot.get("xlabel") or plot["x"],
        ylabel=plot.get("ylabel") or plot["y"],
        xscale="log" if plot.get("xlog") else "linear",
        yscale="log" if plot.get("ylog") else "linear",
        kind=plot.get("kind", "line"),
        styles=styles,
        note="\n".join(n for n in (left_out_note(int(left_out.sum())), _unplaced(int(unplaced.sum()), plot["x"])) if n),
    )


def _unplaced(count: int, x: str) -> str:
    """What a figure says of the ok cases whose ``x`` a log axis cannot place."""
    return counted(count, "case", f"with {x} not positive not drawn (log x axis)")


def counted(count: int, what: str, rest: str) -> str:
    """A note on ``count`` things (``what``, singular): "3 cases not drawn"; empty when there are none."""
    return f"{count} {what}{'s' if count > 1 else ''} {rest}" if count else ""


def left_out_note(count: int) -> str:
    """What a figure says of the cases it does not draw (failed, invalid, timed out: no result to show)."""
    return counted(count, "case", "not ok (failed, invalid or timed out) not drawn")
