"""The invariant-subspaces chapter (paper Sec. 2.1-2.2, Theorem 2.1, Fig. 3): plan, run, summary, figures.

The Fig. 3 factorisation is trained once per weight decay of the scale's :data:`PLANS` entry with
:func:`~compressible.matrix.invariant.run_invariant_subspaces` (:func:`run`); :func:`summarise` reduces the
per-step Theorem 2.1 reports to an :class:`InvariantSubspacesSummary` and decides whether what is left is
float64 rounding (:func:`rounding_tolerance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..matrix.invariant import InvariantSubspaceConfig, InvariantSubspaceResult, run_invariant_subspaces
from ..scales import check_scale, scale_label
from ..summaries import Frozen, Summary
from .contract import Execution, resolve

__all__ = [
    "CHAPTER",
    "InvariantSubspacesPlan",
    "PLANS",
    "plan",
    "run",
    "InvariantSubspacesResults",
    "TheoremCheck",
    "theorem_check",
    "rounding_tolerance",
    "InvariantSubspacesSummary",
    "summarise",
    "theorem_table",
    "plot_singular_values",
    "plot_singular_vectors",
    "plot_theorem_check",
]

CHAPTER = "invariant_subspaces"
"""The chapter's file name in ``book/``."""


@dataclass(frozen=True)
class InvariantSubspacesPlan:
    """What the chapter runs at one scale: one Fig. 3 run (seed 0) per weight decay.

    Attributes:
        d, rank, depth, epsilon, lr, steps: the setting of :class:`~compressible.matrix.invariant.InvariantSubspaceConfig`.
        weight_decays: the values of ``lambda``, one run each.
        notes: how this scale departs from the paper's setting (shown in the chapter).
    """

    d: int
    rank: int
    depth: int
    epsilon: float
    lr: float
    steps: int
    weight_decays: tuple[float, ...]
    notes: str

    def configs(self) -> dict[float, InvariantSubspaceConfig]:
        """One config per weight decay, in the order of ``weight_decays``."""
        return {
            wd: InvariantSubspaceConfig(
                d=self.d, rank=self.rank, depth=self.depth, epsilon=self.epsilon, lr=self.lr, steps=self.steps,
                weight_decay=wd, seed=0,
            )
            for wd in self.weight_decays
        }


_FIG3 = dict(d=30, rank=3, depth=3, epsilon=1.0, lr=1.0, steps=50, weight_decays=(0.0, 1e-2))

#: The frozen plan of the invariant-subspaces chapter at each scale (``smoke``, ``ci``, ``paper``).
PLANS: dict[str, InvariantSubspacesPlan] = {
    "paper": InvariantSubspacesPlan(**_FIG3, notes="the paper's Fig. 3 setting."),
    "ci": InvariantSubspacesPlan(**_FIG3, notes="the paper's Fig. 3 setting (it is cheap, so ci runs it unchanged)."),
    "smoke": InvariantSubspacesPlan(
        d=12, rank=2, depth=3, epsilon=1.0, lr=1.0, steps=15, weight_decays=(0.0, 1e-2),
        notes="a smaller factorisation for a smoke test.",
    ),
}
"""The plan of each scale."""


def plan(scale: str) -> InvariantSubspacesPlan:
    """The plan of ``scale`` (``smoke``, ``ci`` or ``paper``)."""
    return PLANS[check_scale(scale)]


@dataclass(frozen=True, eq=False)
class InvariantSubspacesResults:
    """The chapter's runs at one scale: one Fig. 3 factorisation per weight decay."""

    scale: str
    plan: InvariantSubspacesPlan
    runs: dict[float, InvariantSubspaceResult]
    """Keyed by weight decay, in the plan's order."""


def run(plan: InvariantSubspacesPlan | str, store=None, device: str = "cpu", *, execution: Execution | None = None,
        scale: str | None = None) -> InvariantSubspacesResults:
    """Train the Fig. 3 factorisation of the plan (or scale name) for every weight decay: float64 on the CPU, a
    few seconds, computed in every build (nothing is stored; ``store``, ``device`` and ``execution`` are the
    chapter contract's and change nothing here)."""
    scale, p = resolve(PLANS, plan, scale)
    return InvariantSubspacesResults(scale, p, {wd: run_invariant_subspaces(c) for wd, c in p.configs().items()})


class TheoremCheck(Frozen):
    """Theorem 2.1 measured on one run (one weight decay), worst case over every step and layer."""

    weight_decay: float
    """``lambda`` of this run."""
    min_multiplicity: int
    """Fewest singular values within a relative 1e-8 of ``rho_l(t)`` (the theorem: >= d - 2r)."""
    max_rel_gap: float
    """Largest relative gap between ``rho_l(t)`` and the ``d - 2r`` singular values closest to it."""
    max_subspace_drift: float
    """Largest drift of the passive singular subspace (zero in exact arithmetic)."""
    final_rho_layer1: float
    """``rho_1`` at the last step (the recursion's value)."""
    final_loss: float
    """Train loss at the last step."""


def theorem_check(weight_decay: float, report: pd.DataFrame, rho: np.ndarray, losses) -> TheoremCheck:
    """Reduce an :func:`~compressible.matrix.invariant.invariant_subspace_report` (columns
    ``multiplicity``, ``rel_error``, ``subspace_drift``), the recursion ``rho`` ``(steps + 1, L)`` and
    the recorded losses to their worst case."""
    return TheoremCheck(
        weight_decay=weight_decay,
        min_multiplicity=int(report.multiplicity.min()),
        max_rel_gap=float(report.rel_error.max()),
        max_subspace_drift=float(report.subspace_drift.max()),
        final_rho_layer1=float(rho[-1, 0]),
        final_loss=float(losses[-1]),
    )


def rounding_tolerance(steps: int, depth: int, d: int, conditioning: float, subspace_conditioning: float = 0.0) -> float:
    """How far from exact a Theorem 2.1 check computed in float64 can be by rounding alone.

    Both checked quantities (the relative gap ``|sigma - rho_l(t)| / rho_l(t)`` and the passive-subspace drift)
    are zero in exact arithmetic. In float64, every gradient step forms about ``2 L`` products of ``d x d``
    matrices (the end-to-end product and, per layer, the products on either side of it); each entry of such a
    product is off by at most ``d * eps`` relative to the product of the factors' norms (the classic bound
    ``gamma_d`` of an inner product of length ``d``, with ``eps = 2**-52`` the spacing of float64 at 1). To first
    order the errors of successive steps add up, so after ``steps`` steps a factor is off by at most
    ``steps * 2 L * d * eps`` of its norm; the checks divide by ``rho_l(t)``, not by the norm, which multiplies
    that by ``conditioning`` = the largest ``sigma_max(W_l(t)) / rho_l(t)``. The drift is measured on the passive
    subspace that an SVD of ``W_l`` at the first recorded step finds; the SVD is backward stable (an error of
    ``d * eps`` relative to ``sigma_max``), and the subspace it returns moves by that over the gap between
    ``rho_l`` and the nearest other singular value (Davis-Kahan): ``subspace_conditioning`` = the largest
    ``sigma_max / gap`` adds ``d * eps`` times itself. A gap or drift below this bound is rounding; a real
    departure from the theorem would be many orders of magnitude above it.
    """
    return float((steps * 2 * depth * conditioning + subspace_conditioning) * d * np.finfo(np.float64).eps)


class InvariantSubspacesSummary(Summary):
    """Theorem 2.1 checked on the Fig. 3 factorisation, worst case over every run, step and layer."""

    chapter = CHAPTER

    d: int
    """Size of the ``(d, d)`` factors."""
    rank: int
    """Rank ``r`` of the target."""
    depth: int
    """Depth ``L``."""
    steps: int
    """Gradient-descent steps of each run."""
    max_rel_gap: float
    """Largest relative gap ``|sigma - rho_l(t)| / rho_l(t)`` over all runs (0 by the theorem)."""
    max_subspace_drift: float
    """Largest drift of the passive subspace over all runs (0 by the theorem)."""
    min_multiplicity: int
    """Fewest singular values equal to ``rho_l(t)`` over all runs, steps and layers."""
    required_multiplicity: int
    """What the theorem asks for: ``d - 2r``."""
    checks: list[TheoremCheck]
    """One entry per weight decay, in the plan's order."""
    conditioning: float | None = None
    """Largest ``sigma_max(W_l(t)) / rho_l(t)`` over all runs, steps ``t >= 1`` and layers: how much the checks,
    which are relative to ``rho_l(t)``, magnify rounding errors relative to the factors' norms."""
    subspace_conditioning: float | None = None
    """The largest ``sigma_max / gap`` of the passive subspace the drift is measured on (:func:`rounding_tolerance`)."""
    rounding_tolerance: float | None = None
    """:func:`rounding_tolerance` of this setting: the largest gap or drift that float64 rounding explains."""
    holds_to_rounding: bool | None = None
    """The theorem holds up to float64 rounding: multiplicity at least ``d - 2r``, and the largest gap and drift
    at most ``rounding_tolerance``."""


def _subspace_conditioning(singular_values: np.ndarray, rho: np.ndarray, passive: int) -> float:
    """The largest ``sigma_max / gap`` over the layers at the first recorded step, where ``gap`` separates
    ``rho_l`` from the nearest singular value outside the ``passive`` ones closest to it (``singular_values``:
    ``(L, d)``, ``rho``: ``(L,)``); 0 when every singular value is passive."""
    worst = 0.0
    for s, r in zip(singular_values, rho):
        distance = np.sort(np.abs(s - r))
        if len(s) > passive and distance[passive] > 0:
            worst = max(worst, float(s.max() / distance[passive]))
    return worst


def summarise(results: InvariantSubspacesResults) -> InvariantSubspacesSummary:
    """The chapter's numbers from :func:`run`'s results, and whether they are exact up to rounding (pure)."""
    runs = results.runs
    checks = [theorem_check(wd, r.report, r.rho, r.trajectory.losses) for wd, r in runs.items()]
    cfg = next(iter(runs.values())).config
    conditioning = max(float((r.singular_values[1:].max(axis=2) / np.abs(r.rho[1:])).max()) for r in runs.values())
    subspace = max(_subspace_conditioning(r.singular_values[1], r.rho[1], cfg.d - 2 * cfg.rank) for r in runs.values())
    tolerance = rounding_tolerance(cfg.steps, cfg.depth, cfg.d, conditioning, subspace)
    max_rel_gap = max(c.max_rel_gap for c in checks)
    max_drift = max(c.max_subspace_drift for c in checks)
    min_multiplicity, required = min(c.min_multiplicity for c in checks), cfg.d - 2 * cfg.rank
    return InvariantSubspacesSummary(
        scale=results.scale, d=cfg.d, rank=cfg.rank, depth=cfg.depth, steps=cfg.steps,
        max_rel_gap=max_rel_gap,
        max_subspace_drift=max_drift,
        min_multiplicity=min_multiplicity,
        required_multiplicity=required,
        checks=checks,
        conditioning=conditioning,
        subspace_conditioning=subspace,
        rounding_tolerance=tolerance,
        holds_to_rounding=bool(min_multiplicity >= required and max_rel_gap <= tolerance and max_drift <= tolerance),
    )


def theorem_table(summary: InvariantSubspacesSummary) -> pd.DataFrame:
    """One row per weight decay: the theorem's statement (paper) next to what this build measured."""
    return pd.DataFrame([
        {
            "weight decay λ": f"{c.weight_decay:g}",
            "paper (Thm. 2.1): multiplicity of ρ_l(t)": f"≥ d − 2r = {summary.required_multiplicity}",
            "ours: min multiplicity": c.min_multiplicity,
            "paper (Thm. 2.1): |σ − ρ| / ρ": "0 (exact)",
            "ours: max |σ − ρ| / ρ": f"{c.max_rel_gap:.1e}",
            "ours: max subspace drift": f"{c.max_subspace_drift:.1e}",
            "ours: final ρ (layer 1)": f"{c.final_rho_layer1:.4f}",
            "ours: final loss": f"{c.final_loss:.3e}",
        }
        for c in summary.checks
    ])


def plot_singular_values(results: InvariantSubspacesResults) -> plt.Figure:
    """All ``d`` singular values of every layer over the iterations, with ``rho_l(t)`` from the recursion."""
    scale, results = results.scale, results.runs
    depth = next(iter(results.values())).config.depth
    fig, axes = plt.subplots(len(results), depth, figsize=(4 * depth, 3.2 * len(results)), sharex=True, squeeze=False)
    for row, (wd, res) in enumerate(results.items()):
        steps = np.arange(res.singular_values.shape[0])
        for l in range(depth):
            ax = axes[row, l]
            ax.plot(steps, res.singular_values[:, l, :], color="tab:blue", lw=0.8, alpha=0.7)
            ax.plot(steps, res.rho[:, l], "--", color="tab:red", lw=2, label=r"$\rho_l(t)$ (recursion)")
            ax.set_yscale("log")
            ax.set_title(f"layer {l + 1}, $\\lambda$ = {wd}")
            if row == len(results) - 1:
                ax.set_xlabel("iteration t")
            if l == 0:
                ax.set_ylabel(r"$\sigma_i(W_l(t))$")
    axes[0, 0].legend(loc="lower left")
    fig.suptitle(f"Singular values of every factor (Fig. 3, {scale_label(scale)})")
    fig.tight_layout()
    return fig


def plot_singular_vectors(results: InvariantSubspacesResults, weight_decay: float = 0.0) -> plt.Figure:
    """Angles of the active right singular vectors of layer 1 to ``t = 1``, and of the active subspace of every layer
    (the run at ``weight_decay``)."""
    scale, result = results.scale, results.runs[weight_decay]
    t_axis = np.arange(1, result.vector_angles.shape[0] + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    for i in range(result.vector_angles.shape[2]):
        ax1.plot(t_axis, np.degrees(result.vector_angles[:, 0, i]), label=f"$v_{{{i + 1}}}$")
    ax1.set_xlabel("iteration t")
    ax1.set_ylabel("angle to t = 1 (degrees)")
    ax1.set_title("active right singular vectors, layer 1")
    ax1.legend(ncol=2, fontsize=8)
    for l in range(result.config.depth):
        ax2.semilogy(t_axis, np.maximum(result.subspace_angles[:, l], 1e-18), label=f"layer {l + 1}")
    ax2.set_xlabel("iteration t")
    ax2.set_ylabel("largest principal angle (radians)")
    ax2.set_title("active 2r-dim subspace vs t = 1")
    ax2.legend()
    fig.suptitle(f"Singular vectors (Fig. 3, $\\lambda$ = {result.config.weight_decay}, {scale_label(scale)})")
    fig.tight_layout()
    return fig


def plot_theorem_check(results: InvariantSubspacesResults, summary: InvariantSubspacesSummary) -> plt.Figure:
    """Per step, the largest relative gap to ``rho_l(t)`` and the passive-subspace drift, for every weight decay,
    with float64's eps and the summary's rounding tolerance."""
    scale, results = results.scale, results.runs
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for (wd, res), style in zip(results.items(), ["-", "--", ":", "-."]):
        rep = res.report.groupby("step")[["rel_error", "subspace_drift"]].max()
        axes[0].semilogy(rep.index, np.maximum(rep.rel_error, 1e-18), style, label=f"$\\lambda$ = {wd}")
        axes[1].semilogy(rep.index, np.maximum(rep.subspace_drift, 1e-18), style, label=f"$\\lambda$ = {wd}")
    axes[0].axhline(np.finfo(np.float64).eps, color="gray", lw=0.8, ls=":", label="float64 eps")
    axes[1].axhline(np.finfo(np.float64).eps, color="gray", lw=0.8, ls=":")
    if summary.rounding_tolerance is not None:
        for ax in axes:
            ax.axhline(summary.rounding_tolerance, color="tab:red", lw=0.8, ls="--",
                       label="rounding tolerance" if ax is axes[0] else None)
    axes[0].set_title(r"max relative gap $|\sigma - \rho_l(t)| / \rho_l(t)$")
    axes[1].set_title("passive subspace drift")
    for ax in axes:
        ax.set_xlabel("iteration t")
        ax.legend()
    fig.suptitle(f"Theorem 2.1 checked numerically ({scale_label(scale)})")
    fig.tight_layout()
    return fig
