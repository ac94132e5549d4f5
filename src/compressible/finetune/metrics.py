"""The metrics of the fine-tuning experiments and the statistics that compare methods over seeds.

- GLUE (paper Sec. 4, Table 1): :func:`glue_metrics`, :func:`primary_metric`.
- NLG (E2E, paper App. C): :func:`generation_metrics` (BLEU, ROUGE, METEOR when WordNet is there).
- Paired statistics over seeds: :func:`paired_differences` (per-seed differences of two methods
  in a tidy results table) and :func:`paired_summary` (their mean, spread, sign count, t-test).

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
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .glue import check_task

__all__ = [
    "TASK_METRICS",
    "NLG_METRICS",
    "primary_metric",
    "glue_metrics",
    "meteor_available",
    "generation_metrics",
    "mean_std",
    "paired_differences",
    "paired_summary",
    "wilcoxon_pvalue",
    "t_interval",
    "TRAINED_FRACTION",
    "loss_baseline",
    "has_trained",
]

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

NLG_METRICS = ("bleu", "rouge1", "rouge2", "rougeL")
"""Metric columns of :func:`generation_metrics` (``meteor`` too when WordNet is installed)."""


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


def meteor_available() -> bool:
    """Whether nltk's METEOR can run: it needs the WordNet corpus installed (it is not downloaded here)."""
    try:
        import nltk

        nltk.data.find("corpora/wordnet")
    except (ImportError, LookupError):
        return False
    return True


def generation_metrics(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Multi-reference scores of ``predictions[i]`` against all of ``references[i]``, in percent.

    - ``bleu``: corpus BLEU of sacrebleu (13a tokenisation, variable number of references).
    - ``rouge1``, ``rouge2``, ``rougeL``: F1 of rouge-score (Porter stemming), per MR the *best*
      over its references (``RougeScorer.score_multi``), averaged over MRs.
    - ``meteor``: nltk's multi-reference METEOR, averaged over MRs -- only when WordNet is
      installed (:func:`meteor_available`); otherwise the key is absent.
    - ``length``: mean number of words of the predictions.
    """
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if not predictions or any(len(refs) == 0 for refs in references):
        raise ValueError("every prediction needs at least one reference, and there must be one prediction")
    width = max(len(refs) for refs in references)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    bleu = sacrebleu.corpus_bleu(list(predictions), streams).score
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    rouge = {key: [] for key in ("rouge1", "rouge2", "rougeL")}
    for pred, refs in zip(predictions, references):
        scores = scorer.score_multi(list(refs), pred)
        for key in rouge:
            rouge[key].append(scores[key].fmeasure)
    result = {"bleu": float(bleu), **{k: 100 * float(np.mean(v)) for k, v in rouge.items()}}
    if meteor_available():
        from nltk.translate.meteor_score import meteor_score

        result["meteor"] = 100 * float(
            np.mean([meteor_score([r.split() for r in refs], p.split()) for p, refs in zip(predictions, references)])
        )
    result["length"] = float(np.mean([len(p.split()) for p in predictions]))
    return result


def paired_differences(
    frame: pd.DataFrame,
    method: str,
    baseline: str,
    values: str | Sequence[str] = "value",
    *,
    by: Sequence[str] = (),
    scores: bool = False,
) -> pd.DataFrame:
    """Per-seed differences ``method - baseline`` in a tidy results table.

    At a seed both methods see the same data (same few-shot sample, batch order and random head),
    so the per-seed difference is the quantity to summarise (:func:`paired_summary`).

    Args:
        frame: one row per run, with columns ``method``, ``seed``, every column of ``by`` and of
            ``values``.
        method, baseline: the two values of ``frame["method"]`` to compare.
        values: the score column(s) to difference.
        by: columns that tell experiments apart (e.g. ``["task"]`` or ``["n_train"]``).
        scores: also return the two methods' own scores, in columns named ``baseline`` and
            ``method`` (one value column only).

    Returns:
        One row per ``(*by, seed)`` that either method ran, sorted, with columns ``*by, seed``,
        then each value column holding ``method - baseline`` (NaN where one side is missing or
        NaN), then (with ``scores``) ``baseline`` and ``method``. Rows where both sides are NaN
        are dropped (``pandas.pivot_table`` semantics).

    Raises:
        KeyError: a column is missing. ValueError: a method has no runs, or no row has both.
    """
    columns = [values] if isinstance(values, str) else list(values)
    keys = [*by, "seed"]
    missing = [c for c in (*keys, "method", *columns) if c not in frame.columns]
    if missing:
        raise KeyError(f"frame has no columns {missing}; it has {list(frame.columns)}")
    if scores and len(columns) != 1:
        raise ValueError(f"scores=True needs exactly one value column, got {columns}")
    present = sorted(set(frame["method"]))
    for name in (method, baseline):
        if name not in present:
            raise ValueError(f"no runs of method {name!r}; methods present: {present}")
    wide = frame[frame["method"].isin([method, baseline])].pivot_table(index=keys, columns="method", values=columns)
    out = pd.DataFrame(index=wide.index)
    for c in columns:
        out[c] = wide[(c, method)] - wide[(c, baseline)]
    if scores:
        out[baseline] = wide[(columns[0], baseline)]
        out[method] = wide[(columns[0], method)]
    both = wide.xs(method, axis=1, level="method").notna().any(axis=1) & wide.xs(baseline, axis=1, level="method").notna().any(axis=1)
    if not both.any():
        raise ValueError(f"no {tuple(keys)} has results for both {method!r} and {baseline!r}")
    return out.reset_index()


def paired_summary(differences: Sequence[float] | np.ndarray) -> dict:
    """Summary of per-seed differences (a column of :func:`paired_differences`).

    Returns a dict with ``mean``, ``std`` (sample), ``sem`` (standard error of the mean), ``wins``
    (differences > 0), ``n`` and ``t_pvalue`` (two-sided paired t-test; NaN for fewer than 2 seeds
    or zero spread).

    Raises:
        ValueError: when there is no difference or one is NaN/inf (see :func:`mean_std`).
    """
    diff = np.asarray(differences, dtype=np.float64)
    mean, std = mean_std(diff)
    n = int(diff.size)
    pvalue = math.nan
    if n > 1 and std > 0:
        pvalue = float(stats.ttest_1samp(diff, 0.0).pvalue)
    return {
        "mean": mean,
        "std": std,
        "sem": std / math.sqrt(n),
        "wins": int((diff > 0).sum()),
        "n": n,
        "t_pvalue": pvalue,
        "wilcoxon_pvalue": wilcoxon_pvalue(diff),
    }


def wilcoxon_pvalue(differences: Sequence[float] | np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired ``differences`` against 0 (scipy's exact
    distribution for small samples); NaN when every difference is 0 or there are none.

    With 5 seeds the smallest possible p-value is 2 / 2^5 = 0.0625: a sign-rank test over few
    seeds cannot reach 0.05 however large the effect.
    """
    diff = np.asarray(differences, dtype=np.float64)
    if diff.size == 0 or not np.any(diff != 0):
        return math.nan
    return float(stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided").pvalue)


TRAINED_FRACTION = 0.5
"""A run *has trained* when its final training loss is below this fraction of :func:`loss_baseline`."""


def loss_baseline(task: str, labels: Sequence | np.ndarray) -> float:
    """The training loss of the best constant predictor on a training sample with ``labels``.

    STS-B (MSE): predicting the sample's mean label, i.e. the labels' variance. Classification
    (cross-entropy): predicting the sample's label frequencies, i.e. their entropy (nats). A run
    whose loss stays near this value has learned nothing beyond the label marginal.
    """
    y = np.asarray(labels)
    if y.size == 0:
        raise ValueError(f"loss_baseline of {task} needs at least one label, got none")
    if check_task(task) == "stsb":
        return float(np.mean((y.astype(np.float64) - y.mean()) ** 2))
    freq = np.bincount(y.astype(np.int64)) / y.size
    freq = freq[freq > 0]
    return float(-(freq * np.log(freq)).sum())


def has_trained(losses: Sequence[float], baseline: float, fraction: float = TRAINED_FRACTION, window: int = 10) -> bool:
    """Whether the mean of the last ``window`` training losses is below ``fraction * baseline``.

    Raises:
        ValueError: for no losses, a non-positive ``window`` or a ``fraction`` outside (0, 1].
    """
    if len(losses) == 0:
        raise ValueError("has_trained needs the run's training losses, got none")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a whole number >= 1, got {window!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    final = float(np.mean(np.asarray(losses[-window:], dtype=np.float64)))
    return bool(final < fraction * baseline)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean of ``values`` and its Student-t confidence interval at ``level``.

    ``(mean, None, None)`` for a single value (no spread to estimate). The interval is
    ``mean ± t_{(1+level)/2, k-1} · s / √k`` with the sample standard deviation ``s`` of the
    ``k`` values; it collapses to the mean when all values are equal.

    Raises:
        ValueError: for no values, a value that is not finite, or ``level`` outside (0, 1).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"t_interval needs one or more finite values, got {list(values)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mean = float(x.mean())
    if x.size == 1:
        return mean, None, None
    half = float(stats.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half
