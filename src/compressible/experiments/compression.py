"""The compression chapter (paper Sec. 2.3, Proposition 2.2, Fig. 4): plan, run, summary, figures.

The Fig. 4 experiment trains a full-width depth-3 factorisation and its Sec. 2.3 compression from
the same initialisation, with every entry observed and the outer factors fixed (``gamma = 0``),
and timing each model's steps separately. :func:`run` trains (or loads from the result store) the
run of a scale's :data:`PLANS` entry; :func:`summarise` turns it into a :class:`CompressionSummary`
(pure: it reads nothing but the run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..matrix.chains import compressed_factorization, full_width_factorization
from ..matrix.completion import TrainConfig, rescale_lr
from ..matrix.track import track_compression
from ..matrix.compression import parameter_counts, prop22_bound
from ..matrix.problems import ProblemConfig, make_problem, torch_dtype
from ..reference import PROVENANCE, paper_value
from ..scales import check_scale, scale_label
from ..store import ResultStore
from ..summaries import Summary, finite
from .contract import Execution, resolve

__all__ = [
    "CHAPTER",
    "FactorizationTrackConfig",
    "run_factorization_track",
    "CompressionPlan",
    "PLANS",
    "plan",
    "run",
    "CompressionResults",
    "CompressionSummary",
    "summarise",
    "wall_time_speedup",
    "comparison_table",
    "plot_trajectories",
    "plot_loss_vs_time",
    "plot_prop22",
]

CHAPTER = "compression"
"""The chapter's file name in ``book/``."""


def _stored_frame(config, seed: int, compute: Callable[[], pd.DataFrame], store) -> pd.DataFrame:
    """``compute()`` once per ``(config, seed)``; with a :class:`~compressible.store.ResultStore` the
    rows are stored and a rerun only loads them."""
    if store is None:
        return compute()
    record = store.run(config, [seed], lambda c, s: {"rows": compute().to_dict("records")}, progress=False)[0]
    return pd.DataFrame(record["rows"])


@dataclass(frozen=True)
class FactorizationTrackConfig:
    """Fig. 4: full observation, ``gamma = 0``; the original and its compression side by side."""

    d: int = 1000
    true_rank: int = 10
    depth: int = 3
    epsilon: float = 1e-3
    lr: float = 1e3
    steps: int = 10_000
    log_every: int = 50
    dtype: str = "float32"
    threads: int | None = None

    def __post_init__(self):
        ProblemConfig(self.d, self.true_rank)
        if 2 * self.true_rank >= self.d:
            raise ValueError(f"compression needs 2 r* < d, got r*={self.true_rank}, d={self.d}")
        torch_dtype(self.dtype)
        TrainConfig(lr=self.lr, max_steps=self.steps, log_every=self.log_every, threads=self.threads)


def run_factorization_track(config: FactorizationTrackConfig, seed: int = 0, store=None) -> pd.DataFrame:
    """:func:`~compressible.matrix.track.track_compression` at the Fig. 4 setting (``gamma = 0``,
    every entry observed)."""

    def compute() -> pd.DataFrame:
        dtype = torch_dtype(config.dtype)
        problem = make_problem(ProblemConfig(config.d, config.true_rank, 1.0), seed, dtype=dtype)
        original = full_width_factorization(config.d, config.depth, config.epsilon, seed + 500, dtype=dtype)
        compressed = compressed_factorization(original, problem, config.true_rank)
        tc = TrainConfig(lr=config.lr, gamma=0.0, max_steps=config.steps, log_every=config.log_every, threads=config.threads)
        return track_compression(original, compressed, problem, tc)

    return _stored_frame(config, seed, compute, store)


PAPER_SETTING = dict(d=1000, true_rank=10, depth=3, epsilon=1e-3, lr=1e3)
"""Fig. 4 of the paper (``paper_numbers.json``, ``matrix_completion/figure4``)."""


@dataclass(frozen=True)
class CompressionPlan:
    """What the chapter runs at one scale.

    Attributes:
        config: the Fig. 4 run. float64 throughout: Prop. 2.2 is a statement about distances of
            order ``eps^L``, far below float32 rounding of the end-to-end matrix once it has learned.
        notes: how this scale departs from the paper's setting (shown in the chapter).
    """

    config: FactorizationTrackConfig
    notes: str


#: The frozen plan of the compression chapter at each scale (``smoke``, ``ci``, ``paper``).
PLANS: dict[str, CompressionPlan] = {
    "paper": CompressionPlan(
        FactorizationTrackConfig(**PAPER_SETTING, steps=30_000, log_every=100, dtype="float64"),
        "the paper's setting.",
    ),
    "ci": CompressionPlan(
        FactorizationTrackConfig(
            d=200, true_rank=10, depth=3, epsilon=1e-3, lr=2 * rescale_lr(1e3, 200, 1000), steps=12_000,
            log_every=100, dtype="float64", threads=1,
        ),
        "$d$ reduced from 1000 to 200 so that the full-width model fits the book's CPU budget; the step is "
        "rescaled to the same margin to the stability limit and then doubled, which halves the plateau "
        "before learning starts and stays below that limit.",
    ),
    "smoke": CompressionPlan(
        FactorizationTrackConfig(
            d=30, true_rank=2, depth=3, epsilon=0.05, lr=10.0, steps=400, log_every=10, dtype="float64", threads=1
        ),
        "a tiny problem with a larger initialisation, so that the plateau before learning is short (smoke test).",
    ),
}
"""The plan of each scale."""


def plan(scale: str) -> CompressionPlan:
    """The plan of ``scale`` (``smoke``, ``ci`` or ``paper``)."""
    return PLANS[check_scale(scale)]


@dataclass(frozen=True, eq=False)
class CompressionResults:
    """The chapter's run at one scale."""

    scale: str
    plan: CompressionPlan
    track: pd.DataFrame
    """:func:`run_factorization_track` of ``plan.config`` at seed 0."""


def run(plan: CompressionPlan | str, store: ResultStore | None = None, device: str = "cpu", *,
        execution: Execution | None = None, scale: str | None = None) -> CompressionResults:
    """The Fig. 4 track of the plan (or scale name), seed 0, computed once on the CPU and then loaded from
    ``store`` (default: the :class:`~compressible.store.ResultStore` under the results folder). The plan's
    config fixes its threads, so ``device`` and ``execution`` change nothing here."""
    scale, p = resolve(PLANS, plan, scale)
    track = run_factorization_track(p.config, seed=0, store=store if store is not None else ResultStore())
    return CompressionResults(scale, p, track)


class CompressionSummary(Summary):
    """The Fig. 4 and Proposition 2.2 measurements of the compression chapter."""

    chapter = CHAPTER

    d: int
    """Size of the ``(d, d)`` target that ran."""
    true_rank: int
    """Rank ``r* = r`` of the target (the compressed width is ``2r``)."""
    depth: int
    """Depth ``L`` of the factorisation."""
    steps: int
    """Gradient-descent steps each model took."""
    params_original: int
    """Trainable parameters of the original at this ``d``: ``L d^2``."""
    params_compressed: int
    """Trainable parameters of the compression at this ``d`` (``gamma = 0``): ``L (2r)^2``."""
    params_original_paper: int
    """The same count at the paper's Fig. 4 setting (d = 1000, r = 10, L = 3)."""
    params_compressed_paper: int
    """The compressed count at the paper's Fig. 4 setting."""
    prop22_bound: float
    """Proposition 2.2's bound ``m sum_l eps_l^2`` with ``m = d - 2r``."""
    prop22_max_distance: float
    """Largest measured ``||f(t) - f~(t)||_F`` over the logged steps."""
    prop22_max_ratio: float
    """``prop22_max_distance / prop22_bound`` (Prop. 2.2 holds when it is <= 1)."""
    speedup_fig4: float | None
    """Wall time of the original / of the compression to come within 1 % of the original's final
    train loss (``None`` when either never got there)."""
    final_loss_original: float
    """Train loss of the original at the last step."""
    final_loss_compressed: float
    """Train loss of the compression at the last step."""
    prop22_holds: bool | None = None
    """Proposition 2.2 held along the whole run: ``prop22_max_ratio <= 1``."""
    last_step: int | None = None
    """The last logged step."""


def wall_time_speedup(track: pd.DataFrame) -> float:
    """Original's / compression's wall time to the first logged step within 1 % of the original's
    final train loss, from a :func:`run_factorization_track` frame (``nan`` if one never gets there)."""
    level = 1.01 * float(track.iloc[-1].train_loss_original)
    hit_orig = track.time_original[track.train_loss_original <= level]
    hit_comp = track.time_compressed[track.train_loss_compressed <= level]
    if hit_orig.empty or hit_comp.empty:
        return float("nan")
    return float(hit_orig.iloc[0]) / float(hit_comp.iloc[0])


def summarise(results: CompressionResults) -> CompressionSummary:
    """The chapter's numbers from :func:`run`'s track (pure)."""
    track, config, scale = results.track, results.plan.config, results.scale
    paper = PAPER_SETTING
    counts_paper = parameter_counts(paper["d"], paper["true_rank"], paper["depth"])
    counts_here = parameter_counts(config.d, config.true_rank, config.depth)
    bound = prop22_bound(config.d, config.true_rank, [config.epsilon] * config.depth)
    last = track.iloc[-1]
    return CompressionSummary(
        scale=scale, d=config.d, true_rank=config.true_rank, depth=config.depth, steps=config.steps,
        params_original=counts_here["original"], params_compressed=counts_here["compressed"],
        params_original_paper=counts_paper["original"], params_compressed_paper=counts_paper["compressed"],
        prop22_bound=bound, prop22_max_distance=float(track.distance.max()),
        prop22_max_ratio=float(track.distance.max() / bound),
        speedup_fig4=finite(wall_time_speedup(track)),
        final_loss_original=float(last.train_loss_original), final_loss_compressed=float(last.train_loss_compressed),
        prop22_holds=bool(track.distance.max() / bound <= 1), last_step=int(last.step),
    )


def comparison_table(summary: CompressionSummary) -> pd.DataFrame:
    """Paper vs this build: parameter counts, the Prop. 2.2 ratio and the wall-time speed-up."""
    ours = f"ours ({scale_label(summary.scale)}, d={summary.d})"
    speedup = "not reached" if summary.speedup_fig4 is None else f"{summary.speedup_fig4:.1f}×"
    rows = [
        ("trainable parameters, original", f"{paper_value('matrix_completion', 'figure4', 'params_original'):,}",
         f"{summary.params_original:,}"),
        ("trainable parameters, compressed (γ = 0)",
         f"{paper_value('matrix_completion', 'figure4', 'params_compressed_trainable'):,}", f"{summary.params_compressed:,}"),
        ("max ‖f − f̃‖ / (m Σ ε²)", "≤ 1 (Prop. 2.2)", f"{summary.prop22_max_ratio:.2e}"),
        ("wall-time speed-up to the original's final loss", "faster (Fig. 4, GPU)", speedup),
    ]
    return pd.DataFrame(rows, columns=["quantity", PROVENANCE, ours])


def plot_trajectories(results: CompressionResults) -> plt.Figure:
    """Fig. 4 (left): both trajectories on the target's two leading singular pairs, and the train loss."""
    track, scale = results.track, results.scale
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(track.coord0_original, track.coord1_original, "-", lw=4, alpha=0.4, label="original")
    ax1.plot(track.coord0_compressed, track.coord1_compressed, "k--", lw=1.2, label="compressed")
    ax1.set_xlabel(r"$u_1^\top f\, v_1$")
    ax1.set_ylabel(r"$u_2^\top f\, v_2$")
    ax1.set_title("trajectory on the principal directions")
    ax1.legend()
    ax2.semilogy(track.step, track.train_loss_original, lw=4, alpha=0.4, label="original")
    ax2.semilogy(track.step, track.train_loss_compressed, "k--", lw=1.2, label="compressed")
    ax2.set_xlabel("iteration")
    ax2.set_ylabel("train loss")
    ax2.legend()
    fig.suptitle(f"Fig. 4 (left): original vs compressed, {scale_label(scale)}")
    fig.tight_layout()
    return fig


def plot_loss_vs_time(results: CompressionResults) -> plt.Figure:
    """Fig. 4 (right): train loss against the seconds each model spent stepping."""
    track, scale = results.track, results.scale
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(track.time_original, track.train_loss_original, label="original")
    ax.semilogy(track.time_compressed, track.train_loss_compressed, label="compressed")
    ax.set_xscale("log")
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("train loss")
    ax.legend()
    ax.set_title(f"Fig. 4 (right): loss vs wall time, {scale_label(scale)}")
    fig.tight_layout()
    return fig


def plot_prop22(results: CompressionResults, summary: CompressionSummary) -> plt.Figure:
    """``||f - f~||_F`` along the run against Prop. 2.2's bound and ``sqrt(m) eps^L``."""
    track, epsilon = results.track, results.plan.config.epsilon
    m = summary.d - 2 * summary.true_rank
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(track.step, np.maximum(track.distance, 1e-300), label=r"measured $\|f - \tilde f\|_F$")
    ax.axhline(summary.prop22_bound, color="tab:red", ls="--", label=r"bound $m\sum_l \varepsilon_l^2$")
    ax.axhline(math.sqrt(m) * epsilon**summary.depth, color="gray", ls=":", label=r"$\sqrt{m}\,\varepsilon^L$")
    ax.set_xlabel("iteration")
    ax.set_ylabel("distance")
    ax.legend()
    ax.set_title(f"Proposition 2.2, {scale_label(summary.scale)}")
    fig.tight_layout()
    return fig
