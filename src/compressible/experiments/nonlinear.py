"""The "beyond linear" chapter (paper Sec. 5, Fig. 9): plan, run, summary, figure.

The singular values of ``grad_{W_2}`` at initialisation of the ReLU network
``W_3 relu(W_2 relu(W_1))`` and of its linear counterpart, one spectrum per activation and seed
(:func:`~compressible.matrix.nonlinear.gradient_spectra`, :func:`run`); :func:`summarise` measures how far
the top singular values stand above the bulk, and after which index the ReLU spectrum separates best.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..matrix.nonlinear import NonlinearConfig, gradient_spectra, spectral_gap
from ..reference import PROVENANCE
from ..scales import check_scale, scale_label
from ..summaries import Frozen, Summary, finite
from .contract import Execution, resolve

__all__ = [
    "CHAPTER",
    "NonlinearPlan",
    "PLANS",
    "plan",
    "run",
    "NonlinearResults",
    "spectrum_gaps",
    "SpectrumGaps",
    "NonlinearSummary",
    "summarise",
    "comparison_table",
    "gaps_table",
    "plot_spectra",
]

CHAPTER = "nonlinear"
"""The chapter's file name in ``book/``."""

ACTIVATIONS = ("relu", "linear")


@dataclass(frozen=True)
class NonlinearPlan:
    """What the chapter runs at one scale.

    Attributes:
        d: width of the ``(d, d)`` target and factors; true_rank: ``r*`` of the target.
        seeds: one spectrum per seed and activation.
        epsilon: init scale of every factor.
        notes: how this scale departs from the paper's setting (shown in the chapter).
    """

    d: int
    true_rank: int
    seeds: tuple[int, ...]
    epsilon: float = 1e-3
    notes: str = ""

    def config(self, activation: str) -> NonlinearConfig:
        return NonlinearConfig(d=self.d, true_rank=self.true_rank, epsilon=self.epsilon, activation=activation)


PLANS: dict[str, NonlinearPlan] = {
    "paper": NonlinearPlan(1000, 10, (0, 1, 2), notes="the Sec. 2 size, $d = 1000$, $r^* = 10$, three seeds."),
    "ci": NonlinearPlan(
        300, 10, (0, 1), notes="$d = 300$ and two seeds, to keep the chapter well under a minute on a shared 2-core machine."
    ),
    "smoke": NonlinearPlan(40, 4, (0,), notes="$d = 40$, one seed (smoke test)."),
}


def plan(scale: str) -> NonlinearPlan:
    """The plan of ``scale`` (``smoke``, ``ci`` or ``paper``)."""
    return PLANS[check_scale(scale)]


@dataclass(frozen=True, eq=False)
class NonlinearResults:
    """The chapter's spectra at one scale."""

    scale: str
    plan: NonlinearPlan
    spectra: pd.DataFrame
    """The rows of :func:`~compressible.matrix.nonlinear.gradient_spectra` with a ``seed`` column, every
    activation and seed of the plan."""


def run(plan: NonlinearPlan | str, store=None, device: str = "cpu", *, execution: Execution | None = None,
        scale: str | None = None) -> NonlinearResults:
    """Gradient spectra at initialisation for every activation and seed of the plan (or scale name): float64 on
    the CPU, computed in every build (nothing is stored; ``store``, ``device`` and ``execution`` are the chapter
    contract's and change nothing here)."""
    scale, p = resolve(PLANS, plan, scale)
    spectra = pd.concat(
        [gradient_spectra(p.config(act), seed=s).assign(seed=s) for act in ACTIVATIONS for s in p.seeds],
        ignore_index=True,
    )
    return NonlinearResults(scale, p, spectra)


def spectrum_gaps(spectra: pd.DataFrame, true_rank: int) -> pd.DataFrame:
    """One row per ``(activation, seed)``: ``gap_at_rank`` = ``sigma_r*/sigma_r*+1``, ``gap_at_rank_plus_1``
    = ``sigma_r*+1/sigma_r*+2``, ``tail_ratio`` = ``sigma_r*+1/sigma_1`` and ``energy_top_rank_plus_1``,
    the share of ``sum sigma_i^2`` in the top ``r* + 1`` singular values."""
    rows = []
    for (act, s), h in spectra.groupby(["activation", "seed"]):
        sv = h.sort_values("index").singular_value.to_numpy()
        rows.append({
            "activation": act, "seed": s,
            "gap_at_rank": spectral_gap(sv, true_rank),
            "gap_at_rank_plus_1": spectral_gap(sv, true_rank + 1),
            "tail_ratio": sv[true_rank] / sv[0],
            "energy_top_rank_plus_1": float((sv[: true_rank + 1] ** 2).sum() / (sv**2).sum()),
        })
    return pd.DataFrame(rows)


class SpectrumGaps(Frozen):
    """The separation of one spectrum of ``grad_{W_2}``."""

    activation: str
    """``relu`` or ``linear``."""
    seed: int
    """Seed of the target and the initialisation."""
    gap_at_rank: float | None
    """``sigma_r* / sigma_{r*+1}`` (``None`` when ``sigma_{r*+1} = 0``)."""
    gap_at_rank_plus_1: float | None
    """``sigma_{r*+1} / sigma_{r*+2}`` (``None`` when ``sigma_{r*+2} = 0``)."""
    tail_ratio: float
    """``sigma_{r*+1} / sigma_1`` (0 for the linear network in exact arithmetic)."""
    energy_top_rank_plus_1: float
    """Share of ``||grad||_F^2`` in the top ``r* + 1`` singular values."""


class NonlinearSummary(Summary):
    """Fig. 9: how far the top singular values of ``grad_{W_2}`` stand above the bulk."""

    chapter = CHAPTER

    d: int
    """Width of the network."""
    true_rank: int
    """``r*`` of the target."""
    seeds: list[int]
    """Seeds that ran (one spectrum per seed and activation)."""
    relu_gap_at_rank: float
    """ReLU: mean over seeds of ``sigma_r* / sigma_{r*+1}``."""
    relu_gap_at_rank_plus_1: float
    """ReLU: mean over seeds of ``sigma_{r*+1} / sigma_{r*+2}``."""
    relu_energy_top_rank_plus_1: float
    """ReLU: mean share of ``||grad||_F^2`` in the top ``r* + 1`` singular values."""
    linear_max_tail_ratio: float
    """Linear: worst seed's ``sigma_{r*+1} / sigma_1`` (0 in exact arithmetic)."""
    per_seed: list[SpectrumGaps]
    """Every spectrum's separation, ordered by activation then seed."""
    relu_widest_gap_after: int | None = None
    """ReLU: the index, ``r*`` or ``r* + 1``, after which the mean gap is wider (``relu_gap_at_rank`` vs
    ``relu_gap_at_rank_plus_1``; ``r*`` on a tie): where the spectrum separates best."""


def summarise(results: NonlinearResults) -> NonlinearSummary:
    """The chapter's numbers from :func:`run`'s spectra (pure)."""
    nonlinear_plan, scale = results.plan, results.scale
    gaps = spectrum_gaps(results.spectra, nonlinear_plan.true_rank)
    relu = gaps[gaps.activation == "relu"]
    at_rank, at_rank_plus_1 = float(relu["gap_at_rank"].mean()), float(relu["gap_at_rank_plus_1"].mean())
    return NonlinearSummary(
        scale=scale, d=nonlinear_plan.d, true_rank=nonlinear_plan.true_rank, seeds=list(nonlinear_plan.seeds),
        relu_gap_at_rank=float(relu["gap_at_rank"].mean()),
        relu_gap_at_rank_plus_1=float(relu["gap_at_rank_plus_1"].mean()),
        relu_energy_top_rank_plus_1=float(relu["energy_top_rank_plus_1"].mean()),
        linear_max_tail_ratio=float(gaps[gaps.activation == "linear"]["tail_ratio"].max()),
        per_seed=[
            SpectrumGaps(
                activation=r.activation, seed=int(r.seed), gap_at_rank=finite(r.gap_at_rank),
                gap_at_rank_plus_1=finite(r.gap_at_rank_plus_1), tail_ratio=float(r.tail_ratio),
                energy_top_rank_plus_1=float(r.energy_top_rank_plus_1),
            )
            for r in gaps.itertuples()
        ],
        relu_widest_gap_after=nonlinear_plan.true_rank + (1 if at_rank_plus_1 > at_rank else 0),
    )


def comparison_table(summary: NonlinearSummary) -> pd.DataFrame:
    """Paper vs this build: separation of the ReLU spectrum, exact low rank of the linear one."""
    ours = f"ours ({scale_label(summary.scale)}, d={summary.d})"
    return pd.DataFrame([
        {"claim": "ReLU: top singular values of ∇W₂ separate from the bulk", PROVENANCE: "yes (Fig. 9, no sizes given)",
         ours: f"σ_r*/σ_r*+1 = {summary.relu_gap_at_rank:.2f}, σ_r*+1/σ_r*+2 = {summary.relu_gap_at_rank_plus_1:.2f}, "
               f"top r*+1 hold {summary.relu_energy_top_rank_plus_1:.0%} of ‖∇‖²"},
        {"claim": "linear: rank ∇W₂ ≤ r*", PROVENANCE: "exact",
         ours: f"σ_r*+1/σ_1 = {summary.linear_max_tail_ratio:.1e} (worst seed)"},
    ])


def gaps_table(summary: NonlinearSummary) -> pd.DataFrame:
    """Per activation and seed, rounded to four significant digits."""
    frame = pd.DataFrame([g.model_dump() for g in summary.per_seed])
    frame.columns = ["activation", "seed", "σ_r* / σ_r*+1", "σ_r*+1 / σ_r*+2", "σ_r*+1 / σ_1", "energy in top r*+1"]
    for col in frame.columns[2:]:
        frame[col] = frame[col].map(lambda v: "–" if v is None else f"{v:.4g}")
    return frame


def plot_spectra(results: NonlinearResults) -> plt.Figure:
    """Fig. 9: the leading ``4 r*`` singular values of ``grad_{W_2}``, normalised by the largest."""
    spectra, nonlinear_plan, scale = results.spectra, results.plan, results.scale
    true_rank, d = nonlinear_plan.true_rank, nonlinear_plan.d
    k = min(4 * true_rank, d)
    fig, ax = plt.subplots(figsize=(7, 4))
    for (act, s), h in spectra.groupby(["activation", "seed"]):
        h = h[h["index"] <= k]
        ax.semilogy(h["index"], np.maximum(h.normalised, 1e-18), "o-" if act == "relu" else "s--", ms=3,
                    color="tab:blue" if act == "relu" else "tab:gray", alpha=0.8,
                    label=f"{act}" if s == nonlinear_plan.seeds[0] else None)
    ax.axvline(true_rank + 0.5, color="tab:red", ls=":", label="$r^*$")
    ax.set_xlabel("index i")
    ax.set_ylabel(r"$\sigma_i(\nabla_{W_2}) / \sigma_1$")
    ax.set_title(f"Fig. 9: gradient spectrum, ReLU vs linear, {scale_label(scale)}")
    ax.legend()
    fig.tight_layout()
    return fig
