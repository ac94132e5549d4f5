"""The one paired comparison of the book: a method against its baseline over the seeds both ran.

At a seed both methods see the same data (the same few-shot sample in the same order, the same random
head), so the per-seed difference is the quantity to summarise. :class:`PairedScores` holds it for
every such comparison of the book (Table 1, Figs. 6 and 8, the PEFT family, few-shot generation), and
:func:`paired_scores` computes it from paired rows (:func:`compressible.experiments.glue_stats.paired_frame`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..finetune.metrics import t_interval, wilcoxon_pvalue
from ..summaries import Frozen
from ..summaries import finite
from .glue_stats import DEEP, LORA

__all__ = ["PairedScores", "paired_scores"]


class PairedScores(Frozen):
    """A method against its baseline at one setting: means over seeds and the paired per-seed differences.

    ``lora`` and ``deep`` name the baseline and the method (LoRA and Deep LoRA in the GLUE chapters).
    Units are the caller's (Table 1 and generation in points x 100, Figs. 6 and 8 in Pearson correlation).
    ``None`` where the metric was undefined (NaN) for every seed.
    """

    lora: float | None
    """Mean over seeds of the baseline's final score."""
    deep: float | None
    """Mean over seeds of the method's final score."""
    gain: float | None
    """Mean over seeds of the paired difference method - baseline."""
    deep_wins: int
    """Seeds on which the method scored higher than the baseline."""
    seeds: int
    """Seeds with both methods stored."""
    lora_std: float | None = None
    """Sample standard deviation over seeds (``None`` for fewer than 2 finite values)."""
    deep_std: float | None = None
    gain_std: float | None = None
    differences: dict[int, float | None] = {}
    """The paired difference method - baseline of every seed."""
    low: float | None = None
    """Lower end of the 95 % Student-t interval of ``gain`` (``None`` with fewer than 2 seeds)."""
    high: float | None = None
    wilcoxon_p: float | None = None
    """Two-sided Wilcoxon signed-rank p-value of the differences (``None`` when undefined)."""


def _std(values) -> float | None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1)) if len(v) > 1 else None


def paired_scores(g: pd.DataFrame, scale_by: float = 1.0, *, method: str = DEEP, baseline: str = LORA,
                  cls: type[PairedScores] = PairedScores, **fields) -> PairedScores:
    """The comparison of the paired rows ``g`` (columns ``seed``, ``diff``, ``baseline`` and ``method``, as
    :func:`~compressible.experiments.glue_stats.paired_frame` returns them), every score times ``scale_by``;
    ``cls`` and ``fields``: a subclass and its own fields (e.g. a Table 1 row)."""
    d = (g["diff"] * scale_by).to_numpy(dtype=float)
    d = d[np.isfinite(d)]
    low = high = p_value = None
    if len(d) > 1:
        _, low, high = t_interval(d)
        p_value = finite(wilcoxon_pvalue(d))
    return cls(
        low=finite(low) if low is not None else None, high=finite(high) if high is not None else None,
        wilcoxon_p=p_value,
        lora=finite(g[baseline].mean() * scale_by),  # x 1.0 is exact: Figs. 6 and 8 keep their digits
        deep=finite(g[method].mean() * scale_by),
        gain=finite(g["diff"].mean() * scale_by),
        deep_wins=int((g["diff"] > 0).sum()),
        seeds=len(g),
        lora_std=_std(g[baseline] * scale_by),
        deep_std=_std(g[method] * scale_by),
        gain_std=_std(g["diff"] * scale_by),
        differences={int(s): finite(x * scale_by) for s, x in zip(g["seed"], g["diff"])},
        **fields,
    )
