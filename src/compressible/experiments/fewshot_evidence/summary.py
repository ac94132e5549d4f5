"""What the evidence plan's runs show, as typed data: the grid, the chosen rates, Fig. 6, Fig. 8, Table 1 and
the answers (computed by :func:`compressible.experiments.fewshot_evidence.summarise.summarise`, which is pure).
Every conclusion the chapter states is a field:
whether compressed Deep LoRA trains at each ``n`` (:class:`Training`), and for each method against LoRA
at each ``n`` whether the 95 % interval of the paired gain lies above, below or across zero
(:class:`Answer`), with the power those seeds had to detect the authors' logged gain.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from ...summaries import Frozen, Summary
from ..paired import PairedScores
from .plan import CHAPTER

__all__ = ["Training", "Answer", "GridPoint", "MethodScores", "Comparison", "RankScores", "RankSweep", "TaskScores",
           "GlueTable", "EvidenceSummary"]


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
    20 seeds); ``None`` against another baseline, and for a method other than Deep LoRA's (PEFT's family against
    the authors' LoRA)."""
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
    """Per method, 3600 s over the mean processor time of its held STS-B runs of the plan's ``steps`` (the tuning
    grid, Fig. 6, PEFT's family) computed on a CPU (one torch thread each: a core-hour)."""
    runs_per_gpu_hour: dict[str, float] = {}
    """Per method, 3600 s over the mean wall time of its held runs of the plan's ``steps`` computed on a CUDA GPU
    (one run at a time; empty while the ledger holds none)."""
    core_hours_left: dict[str, float | None] = {}
    """Per method, the core-hours its missing runs would take: each at the mean cost of the method's held CPU runs of
    the same part (``core_seconds_by_part``), or, while that part has none, at ``runs_per_core_hour`` scaled by its
    steps over the plan's (Fig. 8's 200 steps as 0.4 of a run; Table 1's at its ``steps``); ``None`` while the
    method has no run to measure."""
    core_seconds_by_part: dict[str, dict[str, float]] = {}
    """Per part (``tuning``, ``fig6``, ``peft``, ``fig8``, ``table1``) and method, the mean processor seconds of a
    held run computed on a CPU (one torch thread: core-seconds)."""
    planned_by_method: dict[str, int] = {}
    """Runs of the plan per method (grid and evaluation)."""
    held_by_method: dict[str, int] = {}
    """Of those, the runs held."""
    platforms: list[str] = []
    """Where the held runs were computed (``"cpu"``/``"cuda"`` and, on a CPU, its capability), sorted."""
    at_edge: dict[str, list[int]] = {}
    """Per method, the ``n`` whose chosen point lies on its grid's edge in some rate (the lowest or highest learning
    rate, or gamma): a better rate may lie outside the grid there."""
    across_n: dict[str, Answer] = {}
    """Per method of Fig. 6 and PEFT's family, against the authors' LoRA at every ``n`` it runs at:
    :attr:`Answer.BETTER` (or ``WORSE``) where the answer is that at every ``n``; ``UNDECIDED`` where every ``n``
    has an interval and they do not all agree; otherwise the first ``n``'s missing answer (``NOT_RUN``,
    ``TOO_FEW``, ``UNTRAINED``): the claim is about every ``n``."""
    fig8: RankSweep | None = None
    table1: GlueTable | None = None


