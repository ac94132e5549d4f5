"""The tuning chapter's table and figure, from its summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..glue_stats import DEEP, LORA
from ..style import COLORS
from .summary import GridPoint, TuningSummary

__all__ = ["tuning_table", "plot_sensitivity"]


def _rate(point: GridPoint) -> str:
    return f"{point.lr:g}" if point.gamma is None else f"{point.lr:g}, γ = {point.gamma:g}"


def tuning_table(summary: TuningSummary) -> pd.DataFrame:
    """One row per grid point: method, rate, held-out score (mean ± std), validation mean, trained runs, chosen."""
    return pd.DataFrame([
        {"method": p.method, "learning rate": _rate(p),
         "held-out Pearson (chooses)": "n/a" if p.holdout_mean is None else
         f"{p.holdout_mean:.3f}" + ("" if p.holdout_std is None else f" ± {p.holdout_std:.3f}"),
         "validation Pearson (reported only)": "n/a" if p.validation_mean is None else f"{p.validation_mean:.3f}",
         "runs that trained": f"{p.trained}/{p.runs}", "chosen": "✓" if p.chosen else ""}
        for p in summary.points
    ])


def plot_sensitivity(summary: TuningSummary):
    """Held-out Pearson against the learning rate, one panel per method (compressed: one line per gamma)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, method in zip(axes, (LORA, DEEP)):
        points = [p for p in summary.points if p.method == method]
        for gamma in dict.fromkeys(p.gamma for p in points):
            line = sorted((p for p in points if p.gamma == gamma), key=lambda p: p.lr)
            x = [p.lr for p in line]
            y = [np.nan if p.holdout_mean is None else p.holdout_mean for p in line]
            e = [0 if p.holdout_std is None else p.holdout_std for p in line]
            label = "held-out" if gamma is None else f"held-out, γ = {gamma:g}"
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, color=COLORS[method], alpha=1 if gamma in (None, 0.1) else 0.6,
                        ls="-" if gamma in (None,) or gamma == max(p.gamma for p in points if p.gamma is not None) else "--",
                        label=label)
            ax.plot(x, [np.nan if p.validation_mean is None else p.validation_mean for p in line], "x:", color="grey",
                    label=None if gamma not in (None, points[0].gamma) else "validation (not used to choose)")
        for p in points:
            if p.chosen and p.holdout_mean is not None:
                ax.scatter([p.lr], [p.holdout_mean], s=160, facecolors="none", edgecolors="black", zorder=4, label="chosen")
        ax.set_xscale("log")
        ax.set_xlabel("inner learning rate" if method == DEEP else "learning rate")
        ax.set_title(method)
        ax.axhline(0, color="grey", lw=0.6)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("STS-B Pearson")
    fig.suptitle(f"Learning-rate sensitivity: n = {', '.join(map(str, summary.n))}, {summary.seeds} seeds, "
                 f"{summary.steps} steps, scored on {summary.holdout} held-out training pairs", fontsize=10)
    fig.tight_layout()
    return fig
