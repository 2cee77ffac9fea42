"""The PNG plot: per-step cost against N, chain and fan-out, log-log (needs matplotlib)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ._report import Results

__all__ = ("plot",)

STYLE = {
    "floor": {"color": "tab:green", "marker": "s"},
    "seed": {"color": "tab:red", "marker": "o"},
    "engine": {"color": "tab:blue", "marker": "D"},
}
OTHER = {"color": "tab:gray", "marker": ".", "linestyle": "--"}


def plot(results: Results, path: Path) -> str | None:
    """Write the plot to ``path``; return why not if it cannot."""
    try:
        importlib.import_module("matplotlib").use("Agg")
        pyplot: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install '.[bench]')"
    figure, axes = pyplot.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, shape in zip(axes, ("chain", "fan-out"), strict=True):
        _panel(ax, results, shape)
    axes[0].set_ylabel("cost per step, ms (median)")
    figure.suptitle("Per-step cost against N (log-log; lower is better)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return None


def _panel(ax: Any, results: Results, shape: str) -> None:
    labels = {s.contender.key: s.contender.label for s in results.samples}
    for key, label in labels.items():
        points = [
            (n, sample.per_step * 1e3)
            for n in results.plan.sizes
            if (sample := results.find(f"{shape} N={n}", key)) is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=label, **STYLE.get(key, OTHER))
    ax.set_xscale("log")
    ax.set_yscale("log")
    sizes = list(results.plan.sizes)
    ax.set_xticks(sizes, labels=[str(n) for n in sizes])
    ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
    ax.set_xlabel(f"N ({shape})")
    ax.set_title(shape if shape == "chain" else "fan-out of N plus a join")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
