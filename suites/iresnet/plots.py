"""The task page's custom figure: 2-D samples x = F^-1(z), z ~ N(0, I), drawn by inverting each trained flow
with its method's inverse, over the test data, a panel per (setting, method) with its test NLL beside the true
density's. Metrics against a parameter are the task's declarative ``line_plots``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _samples_figure(records: Sequence[Mapping[str, Any]]) -> Any:
    import matplotlib.pyplot as plt

    chosen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in records:
        if r["status"] == "ok" and "samples" in r.get("series", {}):
            key = (f"{r['scale']} | {r['dataset']} | {r['hardware']}", r["impl"])
            if key not in chosen or r["params"]["terms"] < chosen[key]["params"]["terms"]:
                chosen[key] = r
    if not chosen:
        return None
    rows = sorted({k[0] for k in chosen})
    cols = sorted({k[1] for k in chosen})
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.6 * len(cols), 2.6 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (row, col) not in chosen:
                ax.axis("off")
                continue
            series = chosen[(row, col)]["series"]
            for name, colour in (("data", "0.7"), ("samples", "C0")):
                pts = series.get(name, [])
                if pts:
                    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=2, c=colour, label=name)
            ax.set(xlim=(-5, 5), ylim=(-5, 5))
            metrics = chosen[(row, col)].get("metrics", {})
            if "test_nll" in metrics and "true_nll" in metrics:
                nll = f"NLL {metrics['test_nll']:.2f} (true {metrics['true_nll']:.2f})"
                ax.text(0.02, 0.98, nll, transform=ax.transAxes, fontsize=6, va="top")
            if i == 0:
                ax.set_title(col, fontsize=9)
            if j == 0:
                ax.set_ylabel(row.replace(" | ", "\n"), fontsize=7)
    axes[0][0].legend(loc="lower left", fontsize=7, markerscale=3)
    fig.suptitle("samples F^-1(z), z ~ N(0, I) (blue) and test data (grey)")
    fig.tight_layout()
    return fig


def task_plots(cases: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The custom figures (``cases`` is unused: the samples live in the records' series)."""
    import matplotlib

    matplotlib.use("Agg")
    samples = _samples_figure(records)
    return {"samples_2d": samples} if samples is not None else {}
