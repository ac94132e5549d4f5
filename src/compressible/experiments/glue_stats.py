"""Statistics the two GLUE chapters (and the scorecard) share: the chance rule and paired tables.

**Chance.** A constant predictor scores 0 in Matthews and Pearson correlation and the share of
the majority class in accuracy (:func:`chance_level`, in points x 100 as in Table 1). A method
is *above chance* on a setting when its mean score is at least :data:`CHANCE_MARGIN` points
above that level (:func:`above_chance`); a comparison where neither method is above chance
compares noise and is judged as such by the scorecard.

**Paired differences.** At a seed, LoRA and Deep LoRA train on the same examples in the same
order from the same head, so the per-seed difference Deep LoRA - LoRA is the quantity to
summarise (:func:`paired_frame`, a view of :func:`compressible.finetune.metrics.paired_differences`).

**Seeds.** How many paired seeds separate a gain from zero: :func:`paired_seeds` is the smallest
number at which a two-sided paired t-test at level ``alpha`` has the asked power against a mean
difference ``effect`` with per-seed standard deviation ``sd`` (the noncentral t distribution).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..finetune.metrics import paired_differences

__all__ = [
    "LORA",
    "DEEP",
    "FULL",
    "CHANCE_MARGIN",
    "chance_level",
    "distance_from_chance",
    "above_chance",
    "paired_frame",
    "mean_pm_std",
    "paired_power",
    "paired_seeds",
]

LORA = "LoRA"
"""Method label of vanilla LoRA in results frames, tables and plots."""
DEEP = "Deep LoRA"
"""Method label of compressed Deep LoRA."""
FULL = "Deep LoRA (full width)"
"""Method label of the full-width, uncompressed depth-3 adapter (the authors' logged runs)."""

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


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_unit(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def paired_power(seeds: int, effect: float, sd: float, alpha: float = 0.05) -> float:
    """Power of a two-sided paired t-test at level ``alpha`` with ``seeds`` pairs against a mean
    difference ``effect`` (any sign) whose per-pair standard deviation is ``sd``."""
    from scipy import stats

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ValueError(f"seeds must be an int >= 2 (a t-test needs two pairs), got {seeds!r}")
    d = abs(float(effect)) / _check_positive("sd", sd)
    alpha = _check_unit("alpha", alpha)
    df = seeds - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = d * np.sqrt(seeds)
    return float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))


def paired_seeds(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8, most: int = 10_000) -> int:
    """The fewest paired seeds at which :func:`paired_power` reaches ``power`` (at least 2).

    E.g. the authors' logs (full-width Deep LoRA against LoRA, bert-base) give +6.9 ± 7.7 points at
    n = 16: ``paired_seeds(6.9, 7.7)`` seeds. Raises ``ValueError`` when ``effect`` is 0 or ``most``
    seeds do not suffice."""
    _check_positive("|effect|", abs(float(effect)) if not isinstance(effect, bool) else effect)
    _check_positive("sd", sd)
    _check_unit("power", power)
    for seeds in range(2, most + 1):
        if paired_power(seeds, effect, sd, alpha) >= power:
            return seeds
    raise ValueError(f"more than most={most} seeds needed for effect={effect!r}, sd={sd!r} at power {power}")
