"""The task page's custom figure: 2-D samples x = F^-1(z), z ~ N(0, I), drawn by inverting each trained flow
with its method's inverse, over the test data, a panel per (setting, method) with its test NLL beside the true
density's. A method is named and coloured as the report's boards and other figures name and colour it. Metrics
against a parameter are the task's declarative ``line_plots``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctbench.figures import palette
from ctbench.figures.plotting import title
from ctbench.figures.records import labelled, left_out

DATA_GREY = "0.7"  # the test data, under the samples


def _chosen(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """{(setting, label): the ok record with samples and the fewest series terms} of ``labelled`` records."""
    chosen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in records:
        if r["status"] == "ok" and "samples" in r.get("series", {}):
            key = (f"{r['scale']} | {r['dataset']} | {r['hardware']}", r["label"])
            if key not in chosen or r["params"]["terms"] < chosen[key]["params"]["terms"]:
                chosen[key] = r
    return chosen


def _panel(ax: Any, record: Mapping[str, Any], style: palette.Style) -> None:
    series = record["series"]
    for name, colour, gid in (("data", DATA_GREY, None), ("samples", style.colour, record["label"])):
        pts = series.get(name, [])
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=2, color=colour, gid=gid,
                       marker=style.marker if gid else "o")  # fmt: skip
    ax.set(xlim=(-5, 5), ylim=(-5, 5))
    metrics = record.get("metrics", {})
    if "test_nll" in metrics and "true_nll" in metrics:
        nll = f"NLL {metrics['test_nll']:.2f} (true {metrics['true_nll']:.2f})"
        ax.text(0.02, 0.98, nll, transform=ax.transAxes, fontsize=6, va="top")


def _samples_figure(records: Sequence[Mapping[str, Any]]) -> Any:
    import matplotlib.pyplot as plt

    chosen = _chosen(records)
    if not chosen:
        return None
    styles = palette.complete(palette.current(), {(r["label"], r["submission"] != "reference") for r in records})
    rows = sorted({k[0] for k in chosen})
    cols = sorted({k[1] for k in chosen}, key=lambda label: (styles[label].submission, label))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.6 * len(cols), 2.6 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (row, col) not in chosen:
                ax.axis("off")
                continue
            _panel(ax, chosen[(row, col)], styles[col])
            if i == 0:
                ax.set_title(title(col, 3), fontsize=9, parse_math=False)
            if j == 0:
                ax.set_ylabel(row.replace(" | ", "\n"), fontsize=7, parse_math=False)
    note = left_out(r for r in records if r["params"].get("experiment") == "density_2d")
    what = "samples F^-1(z), z ~ N(0, I) (in the method's colour) and test data (grey)"
    fig.suptitle(what + (f"\n{note}" if note else ""))
    fig.tight_layout()
    return fig


def task_plots(cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The custom figures; ``cases`` (the report's cases frame) names the methods as the boards do. Cases that are
    not ok are left out, and the figure says how many."""
    import matplotlib

    matplotlib.use("Agg")
    samples = _samples_figure(labelled(records, cases))
    return {"samples_2d": samples} if samples is not None else {}
