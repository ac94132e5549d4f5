"""The tuning grid's summary: every point's held-out score and the rate chosen for each method.

The grid point with the best mean held-out score is the method's rate (:func:`choose`); ties go to the
earlier grid point, and the validation split the Few-shot GLUE chapter reports is never read to choose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from ...summaries import Frozen, Summary
from ...summaries import finite
from ..glue_stats import DEEP, LORA
from .plan import CHAPTER, Rate, Rates, TuningPlan

if TYPE_CHECKING:
    from .run import TuningResults

__all__ = ["GridPoint", "HeldOutRange", "TuningSummary", "FewshotTuningSummary", "choose", "rates_of",
           "summarise_tuning", "summarise"]


class GridPoint(Frozen):
    """One grid point's scores: mean (and std) over its runs on the held-out examples, and on validation."""

    method: str
    lr: float
    gamma: float | None
    holdout_mean: float | None
    holdout_std: float | None
    validation_mean: float | None
    """Reported only: never used to choose."""
    runs: int
    trained: int
    """Runs whose training loss fell below half the constant predictor's."""
    chosen: bool


class HeldOutRange(Frozen):
    """How far one method's mean held-out scores spread over its grid points."""

    low: float
    high: float
    points: int
    """Grid points with a defined score."""
    chosen: float | None
    """The chosen point's mean held-out score."""


class TuningSummary(Frozen):
    """The grid, every point's held-out score, and the rate chosen for each method."""

    n: list[int]
    seeds: int
    steps: int
    holdout: int
    """Held-out training examples the points are scored on."""
    points: list[GridPoint]
    lora_lr: float
    deep_lr: float
    deep_gamma: float
    rates: Rates | None = None
    """The chosen rates, as the Few-shot GLUE chapter's runs use them."""
    ranges: dict[str, HeldOutRange] = {}
    """Per method label, the spread of its points' held-out scores (methods with no defined score left out)."""


class FewshotTuningSummary(Summary):
    """The tuning chapter: the grid and the chosen rates (``None`` where the scale uses the paper's rates)."""

    chapter: ClassVar[str] = CHAPTER
    backbone: str
    tuning: TuningSummary | None


def _points(frame: pd.DataFrame) -> dict[tuple[str, float, float | None], pd.DataFrame]:
    """The runs of every grid point ``(method, lr, gamma)``, in the frame's order (``gamma`` None for LoRA)."""
    points: dict[tuple[str, float, float | None], list[int]] = {}
    for i, r in frame.iterrows():
        gamma = None if r["gamma"] is None or pd.isna(r["gamma"]) else float(r["gamma"])
        points.setdefault((r["method"], float(r["lr"]), gamma), []).append(i)
    return {k: frame.loc[rows] for k, rows in points.items()}


def choose(frame: pd.DataFrame) -> dict[str, tuple[float, float | None]]:
    """``{method: (lr, gamma)}`` of the grid point with the highest mean held-out score (the first in
    grid order on ties; a point whose score is undefined ranks last). The validation column is not read."""
    best: dict[str, tuple[float, tuple[float, float | None]]] = {}
    for (method, lr, gamma), g in _points(frame).items():
        score = float(np.nanmean(g["holdout"])) if np.isfinite(g["holdout"].to_numpy(dtype=float)).any() else -np.inf
        if method not in best or score > best[method][0]:
            best[method] = (score, (lr, gamma))
    return {method: point for method, (_, point) in best.items()}


def rates_of(chosen: dict[str, tuple[float, float | None]]) -> Rates:
    """The :class:`~compressible.experiments.fewshot_tuning.plan.Rates` of a :func:`choose` result (one rate per method at every ``n``)."""
    return Rates(default={"lora": Rate(lr=chosen[LORA][0]), "compressed": Rate(lr=chosen[DEEP][0], gamma=chosen[DEEP][1])})


def summarise_tuning(frame: pd.DataFrame, tp: TuningPlan, holdout: int) -> TuningSummary:
    """The :class:`TuningSummary` of the tuning runs ``frame`` (:func:`~compressible.experiments.fewshot_tuning.run.tuning_frame`)."""
    chosen = choose(frame)
    points = []
    for (method, lr, gamma), g in _points(frame).items():
        h = g["holdout"].to_numpy(dtype=float)
        h = h[np.isfinite(h)]
        points.append(GridPoint(
            method=method, lr=lr, gamma=gamma, holdout_mean=finite(h.mean()) if len(h) else None,
            holdout_std=finite(h.std(ddof=1)) if len(h) > 1 else None,
            validation_mean=finite(g["validation"].mean()), runs=len(g), trained=int(g["trained"].sum()),
            chosen=chosen[method] == (lr, gamma),
        ))
    ranges = {}
    for method in (LORA, DEEP):
        scores = [p.holdout_mean for p in points if p.method == method and p.holdout_mean is not None]
        pick = next((p.holdout_mean for p in points if p.method == method and p.chosen), None)
        if scores:
            ranges[method] = HeldOutRange(low=min(scores), high=max(scores), points=len(scores), chosen=pick)
    return TuningSummary(
        n=list(tp.n), seeds=len(tp.seeds), steps=tp.steps, holdout=holdout, points=points,
        lora_lr=chosen[LORA][0], deep_lr=chosen[DEEP][0], deep_gamma=chosen[DEEP][1], rates=rates_of(chosen),
        ranges=ranges,
    )


def summarise(results: TuningResults) -> FewshotTuningSummary:
    """The chapter's summary from its grid runs (pure)."""
    p = results.plan
    tuning = None if p.grid is None else summarise_tuning(results.grid, p.grid, p.methods.holdout)
    return FewshotTuningSummary(scale=results.scale, backbone=p.backbone, tuning=tuning)
