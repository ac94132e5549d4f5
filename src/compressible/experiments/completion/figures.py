"""The completion chapter's figures: Fig. 1 and Fig. 5 from the runs (they show every run), App. D.1 and
the speed-up against ``d`` from the summary."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...scales import scale_label
from .run import CompletionRuns
from .summary import CompletionSummary

__all__ = ["plot_width_sweep", "plot_race", "plot_random_vs_compressed", "plot_scaling"]


def plot_width_sweep(runs: CompletionRuns) -> plt.Figure:
    """Fig. 1: recovery error and iterations to the tolerance against the width, per depth (every trial)."""
    c3 = runs.plan.fig1[-1]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for L, h in runs.sweep.groupby("depth"):
        g = h.groupby("width")
        ax1.semilogy(g.test_loss.mean().index, g.test_loss.mean(), "o-", label=f"L = {L}")
        ax1.scatter(h.width, h.test_loss, s=8, alpha=0.4)
        ax2.plot(g.steps.mean().index, g.steps.mean(), "o-", label=f"L = {L}")
    ax1.axvline(c3.true_rank, color="gray", ls=":", label="$r^*$")
    ax1.set_xlabel("width w")
    ax1.set_ylabel("recovery error")
    ax1.legend()
    ax2.set_xlabel("width w")
    ax2.set_ylabel(f"iterations to train loss < {c3.tol:g}")
    ax2.legend()
    fig.suptitle(f"Fig. 1: depth and width, {scale_label(runs.scale)}")
    fig.tight_layout()
    return fig


def plot_race(runs: CompletionRuns) -> plt.Figure:
    """Fig. 5: recovery error of every model against iterations and against wall time."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for method, h in runs.race.groupby("method", sort=False):
        ax1.semilogy(h.step, h.test_loss, label=method)
        ax2.loglog(h.wall_time, h.test_loss, label=method)
    ax1.set_xlabel("iteration")
    ax2.set_xlabel("wall time (s)")
    for ax in (ax1, ax2):
        ax.set_ylabel("recovery error")
        ax.legend()
    fig.suptitle(f"Fig. 5: recovery error, original vs compressed, {scale_label(runs.scale)}")
    fig.tight_layout()
    return fig


def plot_random_vs_compressed(summary: CompletionSummary) -> plt.Figure:
    """App. D.1: iterations and wall time of both models against the rank estimate."""
    d1 = summary.d1
    ranks = [r.rank for r in d1.ranks]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for method in ("compressed", "random"):
        ax1.plot(ranks, [getattr(r, f"steps_{method}") for r in d1.ranks], "o-", label=method)
        ax2.plot(ranks, [getattr(r, f"time_{method}") for r in d1.ranks], "o-", label=method)
    ax1.set_ylabel(f"iterations to train loss < {d1.tol:g}")
    ax2.set_ylabel(f"wall time for {d1.trials} batched trials (s)")
    for ax in (ax1, ax2):
        ax.set_xlabel(r"rank estimate $\hat r$ (width $2\hat r$)")
        ax.legend()
    fig.suptitle(f"App. D.1: compressed vs random narrow, d = {d1.d}, {scale_label(summary.scale)}")
    fig.tight_layout()
    return fig


def _loglog_fit(ax, d, y, slope, style, label):
    """Plot ``y`` against ``d`` and the line of slope ``slope`` through their geometric mean."""
    d, y = np.asarray(d, dtype=float), np.asarray(y, dtype=float)
    ax.loglog(d, y, style, label=label if slope is None else f"{label} (slope {slope:.2f})")
    if slope is not None:
        c = np.mean(np.log(y) - slope * np.log(d))
        ax.loglog(d, np.exp(c) * d**slope, ":", color=ax.lines[-1].get_color())


def plot_scaling(summary: CompletionSummary) -> plt.Figure:
    """Speed-up against ``d``: time to the same recovery error, seconds per step, their ratios (log-log,
    fitted slopes in the legends) and the original's FLOP/s against this machine's matmul rate."""
    s = summary.scaling
    if s is None:
        raise ValueError("this summary has no speed-up-against-d part (summary.scaling is None)")
    d = [p.d for p in s.points]
    fig, ((ax1, ax2), (ax3, ax4)) = plt.subplots(2, 2, figsize=(11, 8))
    ax1.loglog(d, [p.time_original for p in s.points], "o-", label="original")
    ax1.loglog(d, [p.time_compressed for p in s.points], "s-", label="compressed (set-up included)")
    ax1.set_ylabel("wall time to the same recovery error (s)")
    _loglog_fit(ax2, d, [p.step_time_original for p in s.points], s.slope_step_original, "o-", "original")
    _loglog_fit(ax2, d, [p.step_time_compressed for p in s.points], s.slope_step_compressed, "s-", "compressed")
    ax2.set_ylabel("seconds per step")
    fitted = [p for p in s.points if p.speedup is not None]
    _loglog_fit(ax3, [p.d for p in fitted], [p.speedup for p in fitted], s.slope_speedup, "o-", "end to end")
    ax3.loglog(d, [p.step_speedup for p in s.points], "s--", label="per step")
    ax3.set_ylabel("speed-up (original / compressed)")
    ax4.semilogx(d, [p.matmul_flops / 1e9 for p in s.points], "k^--", label="(d, d) matmul, this machine")
    ax4.semilogx(d, [p.achieved_flops / 1e9 for p in s.points], "o-", label="original, achieved")
    ax4.set_ylim(bottom=0)
    ax4.set_ylabel("GFLOP/s")
    for ax in (ax1, ax2, ax3, ax4):
        ax.set_xlabel("d")
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticks(d, [str(x) for x in d])
        ax.legend()
    fig.suptitle(f"Speed-up against d, {s.dtype}, {s.threads} thread(s), {scale_label(summary.scale)}")
    fig.tight_layout()
    return fig
