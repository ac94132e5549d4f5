"""GLUE metrics and the statistics used to compare methods over seeds.

The paper reports CoLA as Matthews correlation, STS-B as Pearson correlation and every other
task as accuracy (the ``evaluate`` GLUE metric the authors call also gives F1 for MRPC and QQP
and Spearman for STS-B; we compute those too). Values are fractions in ``[-1, 1]`` / ``[0, 1]``;
multiply by 100 for the paper's Table 1.

Comparisons over seeds are paired: both methods see the same training subset, batch order and
random head at a seed, so the per-seed difference is the quantity to summarise
(:func:`paired_differences`).
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .glue import check_task

__all__ = ["TASK_METRICS", "primary_metric", "glue_metrics", "mean_std", "paired_differences"]

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "cola": ("matthews",),
    "sst2": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "qqp": ("accuracy", "f1"),
    "stsb": ("pearson", "spearman"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
}
"""Metrics computed for each task; the first is the one the paper reports."""


def primary_metric(task: str) -> str:
    """The paper's metric for ``task``: ``matthews`` (CoLA), ``pearson`` (STS-B) or ``accuracy``."""
    return TASK_METRICS[check_task(task)][0]


def _correlation(fn, x: np.ndarray, y: np.ndarray) -> float:
    # Undefined (NaN) when either side is constant, as in scipy; never a warning in the log.
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(x, y)[0])


def glue_metrics(task: str, predictions: Sequence | np.ndarray, labels: Sequence | np.ndarray) -> dict[str, float]:
    """The metrics of :data:`TASK_METRICS` for ``task``.

    Args:
        predictions: ``(N,)`` predicted class indices, or predicted scores for STS-B.
        labels: ``(N,)`` gold labels (class indices, or STS-B scores in ``[0, 5]``).

    Returns:
        ``{name: value}``; Pearson/Spearman are NaN when the predictions are constant.
    """
    metrics = TASK_METRICS[check_task(task)]
    pred = np.asarray(predictions)
    gold = np.asarray(labels)
    if pred.shape != gold.shape or pred.ndim != 1:
        raise ValueError(f"predictions and labels must be 1-D of equal length, got {pred.shape} and {gold.shape}")
    if pred.size == 0:
        raise ValueError("cannot compute metrics of zero examples")
    out: dict[str, float] = {}
    for name in metrics:
        if name == "pearson":
            out[name] = _correlation(stats.pearsonr, pred.astype(np.float64), gold.astype(np.float64))
        elif name == "spearman":
            out[name] = _correlation(stats.spearmanr, pred.astype(np.float64), gold.astype(np.float64))
        elif name == "matthews":
            out[name] = float(matthews_corrcoef(gold, pred))
        elif name == "accuracy":
            out[name] = float(accuracy_score(gold, pred))
        elif name == "f1":
            out[name] = float(f1_score(gold, pred, pos_label=1, average="binary", zero_division=0.0))
    return out


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value) of finite ``values``.

    Raises:
        ValueError: when ``values`` is empty or holds NaN/inf (a failed run should be looked at,
            not averaged away).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_std of no values")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"mean_std needs finite values, got {x.tolist()}")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def paired_differences(a: Mapping[int, float], b: Mapping[int, float]) -> dict:
    """Per-seed differences ``a[seed] - b[seed]`` over the seeds both have, and their summary.

    Returns a dict with ``seeds``, ``differences`` (in seed order), ``mean``, ``std`` (sample),
    ``sem`` (standard error of the mean), ``wins`` (seeds where ``a > b``), ``n`` and
    ``t_pvalue`` (two-sided paired t-test; NaN for fewer than 2 seeds or zero spread).

    Raises:
        ValueError: when the two share no seed.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no common seeds: {sorted(a)} vs {sorted(b)}")
    diff = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    mean, std = mean_std(diff)
    n = len(seeds)
    pvalue = math.nan
    if n > 1 and std > 0:
        pvalue = float(stats.ttest_1samp(diff, 0.0).pvalue)
    return {
        "seeds": seeds,
        "differences": diff.tolist(),
        "mean": mean,
        "std": std,
        "sem": std / math.sqrt(n),
        "wins": int((diff > 0).sum()),
        "n": n,
        "t_pvalue": pvalue,
    }
