"""The generation chapter's numbers: a tidy frame of the runs and the typed :class:`GenerationSummary`."""

from __future__ import annotations

from typing import ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd

from ...finetune.metrics import NLG_METRICS, paired_differences
from ...summaries import Summary
from ..paired import PairedScores, paired_scores
from .plan import CHAPTER, DEEP_LABEL, MODEL_NAMES, VANILLA_LABEL
from .run import GenerationResults

__all__ = ["metrics_frame", "metric_columns", "GenerationSummary", "summarise"]


def metrics_frame(results: Mapping[str, Sequence[dict]]) -> pd.DataFrame:
    """One row per (method, seed) with every metric, the final training loss and the run times."""
    rows = []
    for label, runs in results.items():
        for r in runs:
            rows.append({
                "method": label,
                "seed": r["_seed"],
                **r["metrics"],
                "final_loss": r["train_loss"][-1],
                "trainable_parameters": r["trainable_parameters"],
                "train_seconds": r["seconds"]["train"],
                "eval_seconds": r["seconds"]["eval"],
            })
    return pd.DataFrame(rows)


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The NLG metrics present in ``frame`` (METEOR only when WordNet was installed)."""
    return [m for m in (*NLG_METRICS, "meteor") if m in frame.columns]


class GenerationSummary(Summary):
    """Headline numbers of the Few-shot generation chapter (App. C); the paper publishes none to compare."""

    chapter: ClassVar[str] = CHAPTER
    backbone: str
    """Key of the generator in :data:`compressible.finetune.backbones.BACKBONES`."""
    model: str
    """The model in words, e.g. ``"SmolLM2-135M-Instruct, 4-bit GGUF"``."""
    steps: int
    seeds: int
    eval_mrs: int
    """Unique MRs evaluated (each against all of its references)."""
    bleu_gain: float
    """Mean paired BLEU difference Deep LoRA - vanilla LoRA (= ``paired["bleu"].gain``)."""
    vanilla: dict[str, float]
    """Mean over seeds of every metric (BLEU, ROUGE-1/2/L, METEOR when available), vanilla LoRA."""
    deep: dict[str, float]
    """The same for Deep LoRA."""
    paired: dict[str, PairedScores]
    """Per metric, Deep LoRA (``deep``) against vanilla LoRA (``lora``) in points: means, the paired per-seed
    differences and their mean ``gain``."""
    loss_window: int
    """Steps averaged for the first and last training losses below."""
    first_loss: dict[str, float]
    """Per method, mean training loss over the first ``loss_window`` steps (all seeds)."""
    last_loss: dict[str, float]
    """Per method, mean training loss over the last ``loss_window`` steps (all seeds)."""


def summarise(results: GenerationResults) -> GenerationSummary:
    """Every number the chapter reports, from the stored runs (pure: nothing is loaded)."""
    cfg = results.plan.configs[DEEP_LABEL]
    frame = metrics_frame(results.runs)
    metrics = metric_columns(frame)
    paired = {}
    for m in metrics:
        rows = paired_differences(frame, DEEP_LABEL, VANILLA_LABEL, m, scores=True).rename(columns={m: "diff"})
        paired[m] = paired_scores(rows, method=DEEP_LABEL, baseline=VANILLA_LABEL)
    means = frame.groupby("method", sort=False)[metrics].mean()
    window = max(1, cfg.steps // 8)
    return GenerationSummary(
        scale=results.scale,
        backbone=cfg.backbone,
        model=MODEL_NAMES.get(cfg.backbone, cfg.backbone),
        steps=cfg.steps,
        seeds=len(results.plan.seeds),
        eval_mrs=len(results.eval_set),
        bleu_gain=paired["bleu"].gain,
        vanilla={m: float(means.loc[VANILLA_LABEL, m]) for m in metrics},
        deep={m: float(means.loc[DEEP_LABEL, m]) for m in metrics},
        paired=paired,
        loss_window=window,
        first_loss={label: float(np.mean([r["train_loss"][:window] for r in runs])) for label, runs in results.runs.items()},
        last_loss={label: float(np.mean([r["train_loss"][-window:] for r in runs])) for label, runs in results.runs.items()},
    )
