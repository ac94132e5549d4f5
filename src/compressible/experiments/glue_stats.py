"""Statistics the two GLUE chapters (and the scorecard) share: the chance rule and paired tables.

**Chance.** A constant predictor scores 0 in Matthews and Pearson correlation and the share of
the majority class in accuracy (:func:`chance_level`, in points x 100 as in Table 1). A method
is *above chance* on a setting when its mean score is at least :data:`CHANCE_MARGIN` points
above that level (:func:`above_chance`); a comparison where neither method is above chance
compares noise and is judged as such by the scorecard.

**Paired differences.** At a seed, LoRA and Deep LoRA train on the same examples in the same
order from the same head, so the per-seed difference Deep LoRA - LoRA is the quantity to
summarise (:func:`paired_frame`, a view of :func:`compressible.finetune.metrics.paired_differences`).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..finetune.metrics import paired_differences

__all__ = [
    "LORA",
    "DEEP",
    "CHANCE_MARGIN",
    "chance_level",
    "distance_from_chance",
    "above_chance",
    "paired_frame",
    "mean_pm_std",
    "finite",
]

LORA = "LoRA"
"""Method label of vanilla LoRA in results frames, tables and plots."""
DEEP = "Deep LoRA"
"""Method label of compressed Deep LoRA."""

CHANCE_MARGIN = 5.0
"""Points (metric x 100) a method's mean must be above the chance level to count as having learned."""

CORRELATIONS = ("matthews", "pearson")


def chance_level(metric: str, labels: Sequence[int] | np.ndarray | None = None) -> float:
    """Score (x 100) of a constant predictor under ``metric``.

    0 for ``"matthews"`` and ``"pearson"``; for ``"accuracy"`` the share of the most frequent
    label in ``labels`` (the evaluation split's gold labels), which must then be given.
    """
    if metric in CORRELATIONS:
        return 0.0
    if metric != "accuracy":
        raise ValueError(f"metric must be one of {(*CORRELATIONS, 'accuracy')}, got {metric!r}")
    if labels is None or len(labels) == 0:
        raise ValueError("the chance level of accuracy needs the evaluation labels (got none)")
    labels = np.asarray(labels)
    return 100 * np.bincount(labels).max() / len(labels)


def distance_from_chance(means: Iterable[float], chance: float = 0.0) -> float:
    """How far (points) the best of the methods' mean scores ``means`` (fractions) is above ``chance`` (points).

    NaN means (a metric undefined for every seed) are ignored; NaN when all are.
    """
    values = [m * 100 - chance for m in means]
    finite_values = [v for v in values if np.isfinite(v)]
    return max(finite_values) if finite_values else float("nan")


def above_chance(distance: float) -> bool:
    """The chance rule: the best method is at least :data:`CHANCE_MARGIN` points above chance."""
    return bool(distance >= CHANCE_MARGIN)


def paired_frame(frame: pd.DataFrame, by: Sequence[str], value: str = "value",
                 method: str = DEEP, baseline: str = LORA) -> pd.DataFrame:
    """Per-seed scores of both methods side by side and their difference ``diff = method - baseline``.

    :func:`compressible.finetune.metrics.paired_differences` with the scores kept: one row per
    ``(*by, seed)``, columns ``*by, seed, diff``, ``baseline`` and ``method`` (named by the methods).
    """
    wide = paired_differences(frame, method, baseline, value, by=by, scores=True)
    return wide.rename(columns={value: "diff"})


def mean_pm_std(mean: float | None, std: float | None, digits: int = 2) -> str:
    """``"mean ± std"`` rounded to ``digits``; the mean alone without a std (one seed); ``"n/a"`` without a mean."""
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def finite(x) -> float | None:
    """``float(x)``, or ``None`` when it is NaN or infinite (summaries hold no NaN)."""
    x = float(x)
    return x if np.isfinite(x) else None
