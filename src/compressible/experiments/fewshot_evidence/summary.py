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
from ...finetune.metrics import primary_metric
from .plan import CHAPTER, METHODS, PEFT_METHODS
from .run import EvidenceRuns

__all__ = ["Training", "Answer", "GridPoint", "MethodScores", "Comparison", "RankScores", "RankSweep", "TaskScores",
           "GlueTable", "EvidenceSummary", "summarise"]


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


class RankScores(Frozen):
    """A method's Fig. 8 runs at one rank (validation Pearson); ``rank`` ``None`` for the full-width adapter."""

    method: str
    rank: int | None
    mean: float | None
    std: float | None
    seeds: int
    training: Training
    paper: float | None
    """The authors' logged mean at this rank (LoRA; their width-r uncompressed Deep LoRA beside compressed)."""


class RankSweep(Frozen):
    """Fig. 8 at the rates tuned at its ``n``."""

    n: int
    steps: int
    ranks: list[int]
    seeds_planned: int
    points: list[RankScores]
    change: list[Comparison]
    """Per Deep LoRA variant, paired over seeds: its gain over LoRA at the largest rank minus its gain at the
    smallest (``scores.lora``: the mean gain at the smallest rank, ``scores.deep``: at the largest). Above 0:
    LoRA falls behind as the rank grows, the paper's claim."""


class TaskScores(Frozen):
    """One Table 1 task: each method's mean (points), the screen's outcome and the authors' numbers."""

    task: str
    metric: str
    chance: float | None
    """Chance level (points; ``None`` where the runs were summarised without it)."""
    kept: bool | None
    """Whether the screening seed left chance (``None``: not screened yet)."""
    means: dict[str, float | None]
    seeds: dict[str, int]
    paper: dict[str, float]
    """The authors' logged means, ``vanilla`` and ``deep`` (full width, bert-base, 10 seeds)."""


class GlueTable(Frozen):
    """Table 1 at the rates tuned at its ``rates_n``, on the tasks the screen kept."""

    n: int
    steps: int
    steps_sst2: int
    seeds_planned: int
    tasks: list[TaskScores]
    kept: list[str]
    left_out: list[str]
    """Tasks where no method's screening run left chance: left out of the average, and not run at more seeds."""
    unscreened: list[str]
    average: list[Comparison]
    """Each Deep LoRA variant against LoRA on the per-seed average over the kept tasks (points), over the seeds
    where every kept task is stored for both; ``paper_gain``: the authors' average gain over the same tasks."""


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
    """Per method, 3600 s over the mean processor time of its held runs of the plan's ``steps`` (one torch
    thread each: a core-hour)."""
    core_hours_left: dict[str, float | None] = {}
    """Per method, the core-hours its missing runs would take at ``runs_per_core_hour``, each run counted at its
    steps over the plan's (Fig. 8's 200 steps as 0.4 of a run; Table 1's at its ``steps``); ``None`` while the
    method has no run to measure."""
    planned_by_method: dict[str, int] = {}
    """Runs of the plan per method (grid and evaluation)."""
    held_by_method: dict[str, int] = {}
    """Of those, the runs held."""
    platforms: list[str] = []
    """Where the held runs were computed (``"cpu"``/``"cuda"`` and, on a CPU, its capability), sorted."""
    fig8: RankSweep | None = None
    table1: GlueTable | None = None


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


def _by_seed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby("seed").agg(value=("value", "mean"), trained=("trained", "all"))


def _compare(base: pd.DataFrame, other: pd.DataFrame, *, method: str, baseline: str, n: int, seeds_planned: int,
             paper: float | None, at_chance: bool | None = None) -> Comparison:
    """``other`` against ``base`` (each indexed by seed, with ``value`` and ``trained``), paired over the seeds
    where both are stored and trained; ``at_chance`` (``None``: from the two means, chance 0)."""
    both = sorted(set(base.index) & set(other.index))
    untrained = [s for s in both if not (base.trained[s] and other.trained[s])]
    kept = [s for s in both if s not in untrained]
    scores = None
    if kept:
        g = pd.DataFrame({"seed": kept, "base": base.value[kept].to_numpy(), "other": other.value[kept].to_numpy()})
        g["diff"] = g["other"] - g["base"]
        scores = paired_scores(g, method="other", baseline="base")
    sd = scores.gain_std if scores is not None else None
    power = seeds_for = None
    if sd and paper is not None and scores.seeds >= 2:
        power = paired_power(scores.seeds, paper, sd)
        try:
            seeds_for = paired_seeds(paper, sd)
        except ValueError:  # more than the helper's cap: report none
            seeds_for = None
    answer = Answer.UNTRAINED if both and not kept else _answer(scores)
    if at_chance is None:
        at_chance = scores is not None and not above_chance(
            distance_from_chance([x for x in (scores.lora, scores.deep) if x is not None]))
    return Comparison(method=method, baseline=baseline, n=n, seeds_planned=seeds_planned, untrained_seeds=untrained,
                      scores=scores, answer=answer, at_chance=at_chance, paper_gain=paper,
                      power=power, seeds_for_power=seeds_for)


def _comparison(f6: pd.DataFrame, method: str, n: int, seeds_planned: int, baseline: str = "lora") -> Comparison:
    base = f6[(f6.method == baseline) & (f6.n == n)].set_index("seed")
    other = f6[(f6.method == method) & (f6.n == n)].set_index("seed")
    paper = float(paper_value("figure6_stsb_fewshot", "paired_difference", str(n), "mean")) if str(n) in (
        "16", "64", "256") and baseline == "lora" else None
    return _compare(base, other, method=method, baseline=baseline, n=n, seeds_planned=seeds_planned, paper=paper)


def _fig8(runs: EvidenceRuns) -> RankSweep | None:
    f = runs.plan.fig8
    if f is None:
        return None
    frame = runs.runs[runs.runs.part == "fig8"]
    points = []
    for method in METHODS:
        for rank in ((None,) if method == "full" else f.ranks):
            at = frame[(frame.method == method) & (frame["rank"].isna() if rank is None else frame["rank"] == rank)]
            v = at.value.to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            paper = {"lora": "vanilla", "compressed": "deep"}.get(method)
            points.append(RankScores(
                method=method, rank=rank, mean=finite(v.mean()) if len(v) else None,
                std=finite(v.std(ddof=1)) if len(v) > 1 else None, seeds=len(at), training=_training(at),
                paper=None if paper is None or rank is None else finite(paper_value("figure8_rank_sweep_stsb16", paper, str(rank)))))
    small, large = min(f.ranks), max(f.ranks)

    def at(method: str, rank: int) -> pd.DataFrame:
        rows = frame[frame.method == method]
        return (rows if method == "full" else rows[rows["rank"] == rank]).set_index("seed")[["value", "trained"]]

    def gain(method: str, rank: int) -> pd.DataFrame:
        m, lora = at(method, rank), at("lora", rank)
        seeds = sorted(set(m.index) & set(lora.index))
        return pd.DataFrame({"value": m.value[seeds] - lora.value[seeds],
                             "trained": m.trained[seeds] & lora.trained[seeds]}, index=pd.Index(seeds, name="seed"))

    def paper_gain(r: int) -> float:
        return paper_value("figure8_rank_sweep_stsb16", "deep", str(r)) - paper_value("figure8_rank_sweep_stsb16", "vanilla", str(r))

    best = [p.mean for p in points if p.mean is not None]
    at_chance = not above_chance(distance_from_chance(best)) if best else False
    change = [_compare(gain(m, small), gain(m, large), method=m, baseline="lora", n=f.n, seeds_planned=len(f.seeds),
                       paper=finite(paper_gain(large) - paper_gain(small)), at_chance=at_chance)
              for m in ("compressed", "full")]
    return RankSweep(n=f.n, steps=f.steps, ranks=list(f.ranks), seeds_planned=len(f.seeds), points=points, change=change)


def _table1(runs: EvidenceRuns) -> GlueTable | None:
    t = runs.plan.table1
    if t is None:
        return None
    frame = runs.runs[runs.runs.part == "table1"]
    tasks = []
    for task in t.tasks:
        at = frame[frame.task == task]
        means = {m: finite(at[at.method == m].value.astype(float).mean() * 100) if (at.method == m).any() else None
                 for m in METHODS}
        tasks.append(TaskScores(task=task, metric=primary_metric(task), chance=runs.chance.get(task), kept=runs.kept.get(task),
                                means=means, seeds={m: int((at.method == m).sum()) for m in METHODS},
                                paper={k: float(paper_value("table1_glue_1024", k, task)) for k in ("vanilla", "deep")}))
    kept = [x.task for x in tasks if x.kept]
    rows = frame[frame.task.isin(kept)]
    complete = rows.groupby(["method", "seed"]).task.nunique() == len(kept)

    def average(method: str) -> pd.DataFrame:  # per seed, the mean over the kept tasks, where every kept task is stored
        m = rows[rows.method == method]
        seeds = [s for s in sorted(set(m.seed)) if complete.get((method, s), False)]
        return _by_seed(m[m.seed.isin(seeds)].assign(value=lambda d: d.value.astype(float) * 100))

    paper = (float(np.mean([paper_value("table1_glue_1024", "deep", k) for k in kept]))
             - float(np.mean([paper_value("table1_glue_1024", "vanilla", k) for k in kept]))) if kept else None
    comparisons = [_compare(average("lora"), average(m), method=m, baseline="lora", n=t.n, seeds_planned=len(t.seeds),
                            paper=paper, at_chance=not kept) for m in ("compressed", "full")]
    return GlueTable(n=t.n, steps=t.steps, steps_sst2=t.steps_sst2, seeds_planned=len(t.seeds), tasks=tasks, kept=kept,
                     left_out=[x.task for x in tasks if x.kept is False],
                     unscreened=[x.task for x in tasks if x.kept is None], average=comparisons)


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
    full_length = frame[frame.steps == p.steps]  # every kind of run costs about its steps at this rate
    per_hour = {m: 3600.0 / float(g.cpu_time.mean()) for m, g in full_length.groupby("method") if len(g)}
    steps = {"fig8": p.fig8.steps if p.fig8 else p.steps, "table1": p.table1.steps if p.table1 else p.steps}
    left: dict[str, float] = {}
    for part, method, _, _ in runs.missing:
        left[method] = left.get(method, 0.0) + steps.get(part, p.steps) / p.steps
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
        core_hours_left={m: finite(left.get(m, 0.0) / per_hour[m]) if m in per_hour else None for m in planned_by},
        held_by_method={m: held_by.get(m, 0) for m in planned_by},
        platforms=sorted(set(frame.platform.dropna())) if "platform" in frame else [],
        fig8=_fig8(runs), table1=_table1(runs),
    )
