"""What the evidence plan's runs show, as typed data: the grid, the chosen rates, Fig. 6, and the answers.

:func:`summarise` is pure (it reads only its argument). Every conclusion the chapter states is a field:
whether compressed Deep LoRA trains at each ``n`` (:class:`Training`), and for each method against LoRA
at each ``n`` whether the 95 % interval of the paired gain lies above, below or across zero
(:class:`Answer`), with the power those seeds had to detect the authors' logged gain.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

import numpy as np
import pandas as pd

from ...reference import paper_value
from ...summaries import Frozen, Summary, finite
from ..glue_stats import above_chance, distance_from_chance, paired_power, paired_seeds
from ..paired import PairedScores, paired_scores
from .plan import CHAPTER, PEFT_METHODS
from .run import EvidenceRuns

__all__ = ["Training", "Answer", "GridPoint", "MethodScores", "Comparison", "EvidenceSummary", "summarise"]


class Training(StrEnum):
    """Whether a method's Fig. 6 runs at one ``n`` left the constant predictor's training loss."""

    TRAINED = "trained"
    """Every stored run trained."""
    PARTLY = "partly"
    """Some runs trained, some did not."""
    UNTRAINED = "did not train"
    """No stored run trained."""
    NOT_RUN = "not run"
    """No run stored yet."""


class Answer(StrEnum):
    """A method against LoRA at one ``n``, over the seeds where both trained."""

    BETTER = "better"
    """The 95 % Student-t interval of the paired gain lies above 0."""
    WORSE = "worse"
    """The interval lies below 0."""
    UNDECIDED = "undecided"
    """The interval contains 0."""
    TOO_FEW = "too few seeds"
    """Fewer than 2 seeds where both trained: no interval."""
    UNTRAINED = "did not train"
    """Both methods are stored at some seeds, but at none of them did both train."""
    NOT_RUN = "not run"
    """No seed with both methods stored."""


class GridPoint(Frozen):
    """One point of a method's grid at one ``n``: its held-out score over the tuning seeds."""

    method: str
    n: int
    lr: float
    gamma: float | None
    holdout_mean: float | None
    holdout_std: float | None
    runs: int
    trained: int
    chosen: bool


class MethodScores(Frozen):
    """A method's Fig. 6 runs at one ``n`` (validation Pearson)."""

    method: str
    n: int
    mean: float | None
    std: float | None
    seeds: int
    """Seeds stored."""
    training: Training


class Comparison(Frozen):
    """A method against a baseline at one ``n``: Fig. 6's methods against the authors' LoRA, and the Deep LoRA
    variants against each of PEFT's LoRA family where it ran."""

    method: str
    baseline: str = "lora"
    n: int
    seeds_planned: int
    untrained_seeds: list[int]
    """Seeds where either method did not train (left out of ``scores``)."""
    scores: PairedScores | None
    """Over the seeds where both were stored and trained (``None``: no such seed)."""
    answer: Answer
    at_chance: bool
    """Neither method's mean over ``scores``' seeds is :data:`~compressible.experiments.glue_stats.CHANCE_MARGIN`
    points above chance (Pearson 0): their difference would compare noise."""
    paper_gain: float | None
    """The authors' logged mean paired gain at this ``n`` (full-width Deep LoRA against their LoRA, bert-base,
    20 seeds); ``None`` against another baseline."""
    power: float | None
    """Power of the two-sided paired t-test (5 %) with ``scores.seeds`` seeds and the measured paired spread
    to detect ``paper_gain`` (``None`` without a spread or a paper gain)."""
    seeds_for_power: int | None
    """Seeds that would give 80 % power against ``paper_gain`` at the measured spread (``None`` without one)."""


class EvidenceSummary(Summary):
    """Every number and conclusion of the Settling-the-few-shot-claim chapter."""

    chapter: ClassVar[str] = CHAPTER
    backbone: str
    steps: int
    n: list[int]
    holdout: int
    """Held-out training examples the rates were chosen on."""
    tuning_seeds: int
    seeds_planned: int
    grid: list[GridPoint]
    rates: dict[str, dict[int, tuple[float, float | None]]]
    """The chosen ``(lr, gamma)`` of each method at each ``n`` whose grid is complete."""
    methods: list[MethodScores]
    comparisons: list[Comparison]
    compressed_training: dict[int, Training]
    """Whether compressed Deep LoRA trains at each ``n`` at its tuned rates."""
    runs_planned: int
    runs_held: int
    missing: dict[str, int]
    """Missing runs per ``"<part> <method> n=<n>"``."""
    runs_per_core_hour: dict[str, float]
    """Per method, 3600 s over the mean processor time of its held runs (one torch thread each: a core-hour)."""
    planned_by_method: dict[str, int] = {}
    """Runs of the plan per method (grid and evaluation)."""
    held_by_method: dict[str, int] = {}
    """Of those, the runs held."""
    platforms: list[str] = []
    """Where the held runs were computed (``"cpu"``/``"cuda"`` and, on a CPU, its capability), sorted."""


def _grid(runs: EvidenceRuns) -> list[GridPoint]:
    t = runs.runs[runs.runs.part == "tuning"]
    points = []
    for n in runs.plan.n:
        for method in runs.plan.methods_at(n):
            for lr, gamma in runs.plan.points(method):
                at = t[(t.method == method) & (t.n == n) & (t.lr == lr)
                       & (t.gamma.isna() if gamma is None else t.gamma == gamma)]
                h = at.holdout.to_numpy(dtype=float)
                h = h[np.isfinite(h)]
                points.append(GridPoint(
                    method=method, n=n, lr=lr, gamma=gamma, runs=len(at), trained=int(at.trained.sum()),
                    holdout_mean=finite(h.mean()) if len(h) else None,
                    holdout_std=finite(h.std(ddof=1)) if len(h) > 1 else None,
                    chosen=runs.rates.get(method, {}).get(n) == (lr, gamma)))
    return points


def _training(frame: pd.DataFrame) -> Training:
    if frame.empty:
        return Training.NOT_RUN
    if frame.trained.all():
        return Training.TRAINED
    return Training.PARTLY if frame.trained.any() else Training.UNTRAINED


def _answer(scores: PairedScores | None) -> Answer:
    if scores is None or scores.seeds == 0:
        return Answer.NOT_RUN
    if scores.low is None or scores.high is None:
        return Answer.TOO_FEW
    if scores.low > 0:
        return Answer.BETTER
    return Answer.WORSE if scores.high < 0 else Answer.UNDECIDED


def _comparison(f6: pd.DataFrame, method: str, n: int, seeds_planned: int, baseline: str = "lora") -> Comparison:
    base = f6[(f6.method == baseline) & (f6.n == n)].set_index("seed")
    other = f6[(f6.method == method) & (f6.n == n)].set_index("seed")
    both = sorted(set(base.index) & set(other.index))
    untrained = [s for s in both if not (base.trained[s] and other.trained[s])]
    kept = [s for s in both if s not in untrained]
    scores = None
    if kept:
        g = pd.DataFrame({"seed": kept, "base": base.value[kept].to_numpy(), "other": other.value[kept].to_numpy()})
        g["diff"] = g["other"] - g["base"]
        scores = paired_scores(g, method="other", baseline="base")
    paper = float(paper_value("figure6_stsb_fewshot", "paired_difference", str(n), "mean")) if str(n) in (
        "16", "64", "256") and baseline == "lora" else float("nan")
    sd = scores.gain_std if scores is not None else None
    power = seeds_for = None
    if sd and np.isfinite(paper) and scores.seeds >= 2:
        power = paired_power(scores.seeds, paper, sd)
        try:
            seeds_for = paired_seeds(paper, sd)
        except ValueError:  # more than the helper's cap: report none
            seeds_for = None
    answer = Answer.UNTRAINED if both and not kept else _answer(scores)
    at_chance = scores is not None and not above_chance(
        distance_from_chance([x for x in (scores.lora, scores.deep) if x is not None]))
    return Comparison(method=method, baseline=baseline, n=n, seeds_planned=seeds_planned, untrained_seeds=untrained,
                      scores=scores, answer=answer, at_chance=at_chance, paper_gain=finite(paper),
                      power=power, seeds_for_power=seeds_for)


def summarise(runs: EvidenceRuns) -> EvidenceSummary:
    """Every number and conclusion of the chapter from its runs (pure)."""
    p, frame = runs.plan, runs.runs
    f6 = frame[frame.part.isin(("fig6", "peft"))]
    methods, training = [], {}
    for n in p.n:
        for method in p.methods_at(n):
            at = f6[(f6.method == method) & (f6.n == n)]
            v = at.value.to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            methods.append(MethodScores(method=method, n=n, mean=finite(v.mean()) if len(v) else None,
                                        std=finite(v.std(ddof=1)) if len(v) > 1 else None, seeds=len(at),
                                        training=_training(at)))
            if method == "compressed":
                training[n] = _training(at)
    comparisons = [_comparison(f6, m, n, len(p.seeds_of(m))) for n in p.n for m in p.methods_at(n) if m != "lora"]
    comparisons += [_comparison(f6, m, n, len(p.peft_seeds), baseline) for n in p.peft_n for baseline in PEFT_METHODS
                    for m in ("compressed", "full")]
    missing: dict[str, int] = {}
    for part, method, n, _ in runs.missing:
        key = f"{part} {method} n={n}"
        missing[key] = missing.get(key, 0) + 1
    planned = len(runs.runs) + len(runs.missing)
    per_hour = {m: 3600.0 / float(g.cpu_time.mean()) for m, g in frame.groupby("method") if len(g)}
    held_by = {m: int(len(g)) for m, g in frame.groupby("method")}
    planned_by = dict(held_by)
    for _, method, _, _ in runs.missing:
        planned_by[method] = planned_by.get(method, 0) + 1
    return EvidenceSummary(
        scale=runs.scale, backbone=p.backbone, steps=p.steps, n=list(p.n), holdout=p.methods.holdout,
        tuning_seeds=len(p.tuning_seeds), seeds_planned=len(p.seeds), grid=_grid(runs),
        rates={m: dict(r) for m, r in runs.rates.items()}, methods=methods, comparisons=comparisons,
        compressed_training=training, runs_planned=planned, runs_held=len(runs.runs), missing=missing,
        runs_per_core_hour=per_hour, planned_by_method=planned_by,
        held_by_method={m: held_by.get(m, 0) for m in planned_by},
        platforms=sorted(set(frame.platform.dropna())) if "platform" in frame else [],
    )
