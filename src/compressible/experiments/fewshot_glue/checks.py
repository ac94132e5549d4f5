"""Checks behind the comparisons: bf16 against float32, and whether every run trained.

- **Precision** (:class:`PrecisionPlan`): a few Fig. 6 runs repeated in float32 and compared with their
  bf16-autocast twins, against the seed-to-seed spread (:class:`PrecisionSummary`).
- **Training check** (:class:`TrainingCheck`): whether every run's final training loss fell below half the
  loss of the best constant predictor on its sample (:func:`compressible.finetune.metrics.has_trained`), so
  that no method is compared before it trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...finetune.metrics import TRAINED_FRACTION
from ...summaries import Frozen
from ...summaries import finite

__all__ = ["PrecisionPlan", "PrecisionSummary", "summarise_precision", "CheckedRun", "TrainingCheck", "training_check"]


@dataclass(frozen=True)
class PrecisionPlan:
    """Runs repeated in float32 to compare with their bf16-autocast twins: ``method`` at ``n``, ``seeds``."""

    n: int
    seeds: tuple[int, ...]
    method: str = "lora"

    def __post_init__(self) -> None:
        if len(self.seeds) < 2:
            raise ValueError(f"PrecisionPlan needs >= 2 seeds to compare with the seed-to-seed spread, got {self.seeds!r}")


class PrecisionSummary(Frozen):
    """Float32 against bf16 autocast on the same runs (same seeds, sample, order and head)."""

    method: str
    n: int
    seeds: list[int]
    autocast: str
    """The dtype the bf16 twins actually ran in (``"bfloat16"``, or ``"off"`` where bf16 was not available)."""
    float32: dict[int, float]
    """Final metric per seed in float32."""
    bf16: dict[int, float]
    mean_difference: float
    """Mean over seeds of bf16 - float32."""
    max_abs_difference: float
    seed_std: float
    """Sample std over seeds of the float32 scores (the seed-to-seed noise)."""
    within_noise: bool
    """``max_abs_difference`` is at most ``seed_std``."""
    step_ratio: float | None
    """Median training seconds per step, float32 / bf16, over these runs."""


def summarise_precision(fp32: dict[int, dict], bf16: dict[int, dict], method: str, n: int) -> PrecisionSummary:
    """:class:`PrecisionSummary` of stored runs ``{seed: result}`` in float32 and under bf16 autocast."""
    seeds = sorted(fp32)
    if sorted(bf16) != seeds or len(seeds) < 2:
        raise ValueError(f"need the same >= 2 seeds in both precisions, got {sorted(fp32)} and {sorted(bf16)}")
    metric = fp32[seeds[0]]["metric"]
    a = {s: float(fp32[s]["final"][metric]) for s in seeds}
    b = {s: float(bf16[s]["final"][metric]) for s in seeds}
    diff = np.array([b[s] - a[s] for s in seeds])
    std = float(np.std(list(a.values()), ddof=1))
    per_step = {k: float(np.median([r["timings"]["train"] / len(r["train_loss"]) for r in runs.values()]))
                for k, runs in (("fp32", fp32), ("bf16", bf16))}
    return PrecisionSummary(
        method=method, n=n, seeds=seeds, autocast=str(bf16[seeds[0]].get("autocast", "off")), float32=a, bf16=b,
        mean_difference=float(diff.mean()), max_abs_difference=float(np.abs(diff).max()), seed_std=std,
        within_noise=bool(np.abs(diff).max() <= std), step_ratio=finite(per_step["fp32"] / per_step["bf16"]),
    )


class CheckedRun(Frozen):
    """One run of the training check: where it belongs, its final training loss and its constant predictor's."""

    part: str
    task: str
    method: str
    n: int
    rank: int
    seed: int
    final_train_loss: float
    """Mean of the last 10 steps."""
    loss_baseline: float
    trained: bool


class TrainingCheck(Frozen):
    """Did every run train? Every run, and the ones that did not."""

    runs: list[CheckedRun]
    untrained: list[str]
    """``"part task method n=.. r=.. seed .."`` of every run whose loss did not fall below ``fraction`` of its baseline."""
    fraction: float = TRAINED_FRACTION


def training_check(frame: pd.DataFrame) -> TrainingCheck:
    """:class:`TrainingCheck` of a results frame with ``final_train_loss``, ``loss_baseline`` and ``trained`` columns."""
    rows = frame.drop_duplicates(["key", "seed"])
    runs = [
        CheckedRun(part=r.part, task=r.task, method=r.method, n=int(r.n_train), rank=int(r["rank"]), seed=int(r.seed),
                   final_train_loss=float(r.final_train_loss), loss_baseline=float(r.loss_baseline), trained=bool(r.trained))
        for _, r in rows.iterrows()
    ]
    untrained = [f"{r.part} {r.task} {r.method} n={r.n} r={r.rank} seed {r.seed}" for r in runs if not r.trained]
    return TrainingCheck(runs=runs, untrained=untrained)
