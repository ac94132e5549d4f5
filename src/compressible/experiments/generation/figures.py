"""The generation chapter's figures: paired differences per seed, and every run's training loss."""

from __future__ import annotations

import numpy as np

from ...scales import scale_label
from .run import GenerationResults
from .summary import GenerationSummary
from .tables import METRIC_NAMES

__all__ = ["plot_paired", "plot_losses"]


def plot_paired(summary: GenerationSummary):
    """Every seed's paired difference Deep LoRA - vanilla LoRA and its mean, per metric."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, (metric, p) in enumerate(summary.paired.items()):
        d = list(p.differences.values())
        ax.scatter(k + np.linspace(-0.25, 0.25, len(d)), d, color="C0", zorder=3, label="one seed" if k == 0 else None)
        ax.hlines(p.gain, k - 0.35, k + 0.35, color="C3", label="mean" if k == 0 else None)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(summary.paired)), [METRIC_NAMES[m] for m in summary.paired])
    ax.set_ylabel("Deep LoRA − vanilla LoRA (points)")
    ax.set_title(f"Paired differences per seed ({scale_label(summary.scale)}, {summary.seeds} seeds)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def plot_losses(results: GenerationResults):
    """The training loss of every run, one colour per method."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, (label, runs) in enumerate(results.runs.items()):
        for j, r in enumerate(runs):
            ax.plot(np.arange(1, len(r["train_loss"]) + 1), r["train_loss"], color=f"C{k}", alpha=0.7,
                    label=label if j == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(f"Training loss, every seed ({scale_label(results.scale)})")
    ax.legend()
    fig.tight_layout()
    return fig
