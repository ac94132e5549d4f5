"""The chapter's figures: the rate sensitivity at every ``n`` and Fig. 6 with its paired gains."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..style import PAPER_LABEL, color
from .plan import LABELS, METHODS
from .summary import EvidenceSummary

__all__ = ["plot_sensitivity", "plot_fig6"]


def plot_sensitivity(summary: EvidenceSummary):
    """Held-out Pearson (mean ± std over the tuning seeds) against each method's learning rate, one panel per
    ``n``; compressed Deep LoRA has one line per gamma; the chosen points are ringed."""
    fig, axes = plt.subplots(1, len(summary.n), figsize=(4.2 * len(summary.n), 3.4), sharey=True, squeeze=False)
    for ax, n in zip(axes[0], summary.n):
        labels = [LABELS[m] for m in dict.fromkeys(g.method for g in summary.grid)]
        for method in dict.fromkeys(g.method for g in summary.grid if g.n == n):
            points = [g for g in summary.grid if g.method == method and g.n == n and g.holdout_mean is not None]
            for gamma in sorted({g.gamma for g in points}, key=lambda x: -1 if x is None else x):
                line = sorted((g for g in points if g.gamma == gamma), key=lambda g: g.lr)
                label = LABELS[method] + ("" if gamma is None else f", γ = {gamma:g}")
                ax.errorbar([g.lr for g in line], [g.holdout_mean for g in line],
                            yerr=[g.holdout_std or 0.0 for g in line], marker="o", capsize=3, label=label,
                            color=color(LABELS[method], labels), alpha=1.0 if gamma in (None, 0.1) else 0.55,
                            ls="-" if method in METHODS else ":")
                for g in line:
                    if g.chosen:
                        ax.plot(g.lr, g.holdout_mean, "o", ms=13, mfc="none", mec="black")
        ax.set_xscale("log")
        ax.set_title(f"n = {n}")
        ax.set_xlabel("learning rate (compressed: inner rate)")
        ax.axhline(0, color="grey", lw=0.6)
    axes[0][0].set_ylabel("held-out Pearson")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        h, lab = ax.get_legend_handles_labels()
        handles += [x for x, y in zip(h, lab) if y not in labels]
        labels += [y for y in lab if y not in labels]
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return fig


def plot_fig6(summary: EvidenceSummary):
    """Left: every method's validation Pearson at each ``n`` (mean ± std over seeds). Right: the paired gain of
    each Deep LoRA variant over LoRA with its 95 % interval, beside the authors' logged gain."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, method in enumerate(METHODS):
        rows = [m for m in summary.methods if m.method == method and m.mean is not None]
        label = LABELS[method]
        ax1.errorbar([m.n * (1 + 0.06 * (k - 1)) for m in rows], [m.mean for m in rows],
                     yerr=[m.std or 0.0 for m in rows], marker="o", capsize=3, color=color(label), label=label)
    ax1.set_xscale("log")
    ax1.set_xticks(summary.n, [str(n) for n in summary.n])
    ax1.set_xlabel("training examples n")
    ax1.set_ylabel("validation Pearson")
    ax1.legend(fontsize=8)
    x = np.arange(len(summary.n))
    for k, method in enumerate(m for m in METHODS if m != "lora"):
        label = LABELS[method]
        for i, n in enumerate(summary.n):
            c = next(c for c in summary.comparisons if c.method == method and c.n == n and c.baseline == "lora")
            s = c.scores
            if s is None or s.gain is None:
                continue
            xs = i + 0.15 * (2 * k - 1)
            diffs = [d for d in s.differences.values() if d is not None]
            ax2.scatter(np.full(len(diffs), xs), diffs, color=color(label), s=10, alpha=0.5)
            low, high = (s.low, s.high) if s.low is not None else (s.gain, s.gain)
            ax2.errorbar(xs, s.gain, yerr=[[s.gain - low], [high - s.gain]], fmt="D", color=color(label), capsize=4,
                         label=label if i == 0 else None)
    paper = [next(c.paper_gain for c in summary.comparisons if c.n == n and c.baseline == "lora") for n in summary.n]
    ax2.plot(x, paper, "s", color="black", label=f"{PAPER_LABEL} (full width)")
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xticks(x, [f"n = {n}" for n in summary.n])
    ax2.set_ylabel("Deep LoRA − LoRA (Pearson)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
