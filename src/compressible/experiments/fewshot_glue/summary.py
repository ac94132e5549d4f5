"""The chapter's summary: every statistic it shows and every conclusion it draws, as typed data.

Units: Table 1 in points (x 100), Figs. 6 and 8 in Pearson correlation. A conclusion that the chapter states
in words (a run collapsed, the compressed adapter generalises worse than the full-width one, most Deep LoRA
updates stay at rank 0, ...) is a field here, decided in
:func:`~compressible.experiments.fewshot_glue.summarise`; the chapter chooses its sentences from it.
"""

from __future__ import annotations

from typing import ClassVar

from ...summaries import Frozen, Summary
from ..fewshot_tuning import TuningSummary
from ..paired import PairedScores
from .checks import PrecisionSummary, TrainingCheck
from .diagnosis import DiagnosisSummary
from .plan import CHAPTER
from .probes import RunProbe

__all__ = ["Table1Task", "Table1Summary", "Fig6Summary", "Fig7Summary", "ProbedRun", "ProbeFindings", "Fig8Summary",
           "TrainableParams", "RunTotals", "FewshotGlueSummary", "UntrainedRuns"]


class Table1Task(PairedScores):
    """One row of Table 1 (points x 100)."""

    metric: str
    """The paper's metric: ``matthews``, ``pearson`` or ``accuracy``."""
    chance: float
    """Score of a constant predictor (points)."""
    distance_from_chance: float | None
    """Best method's mean minus ``chance`` (points)."""
    above_chance: bool
    """The chance rule (:func:`~compressible.experiments.glue_stats.above_chance`)."""


class Table1Summary(Frozen):
    """Table 1 (points x 100)."""

    n: int
    """Training examples per run."""
    tasks: list[str]
    """Tasks run, in the plan's order."""
    seeds: int
    """Seeds with every task stored for both methods (the seeds the average is over)."""
    by_task: dict[str, Table1Task]
    lora_average: float | None
    """Mean over seeds of LoRA's average over tasks."""
    deep_average: float | None
    average_gain: float | None
    """``deep_average - lora_average``."""
    average: PairedScores
    """The task average per seed: ``differences`` per seed, ``deep_wins`` seeds where Deep LoRA's average is higher;
    its ``lora``/``deep``/``gain`` are ``lora_average``/``deep_average``/``average_gain``."""
    paper_average_gain_same_tasks: float
    """The paper's Deep LoRA - LoRA averaged over the same tasks."""
    tasks_above_chance: list[str]
    """Tasks on which the better method is at least the chance margin above chance."""
    tasks_near_chance: list[str] = []
    """The other tasks: neither method is the chance margin above chance, so their differences are noise."""
    tasks_deep_ahead: int = 0
    """Tasks whose mean gain is positive."""
    best_task: str | None = None
    """The task with the largest mean gain (``None``: no task with a gain)."""
    worst_task: str | None = None
    """The task with the smallest mean gain."""


class UntrainedRuns(Frozen):
    """The runs of one method at one setting (``n`` or ``r``) that did not train."""

    method: str
    key: int
    seeds: list[int]
    """Seeds of the runs that did not train."""
    of: int
    """Seeds compared at that setting."""


def _untrained(untrained: dict[str, dict[int, list[int]]], by: dict[int, PairedScores], keys=None,
               methods=None) -> list[UntrainedRuns]:
    methods = sorted(untrained) if methods is None else methods
    return [UntrainedRuns(method=m, key=k, seeds=untrained[m][k], of=by[k].seeds) for m in methods
            for k in sorted(untrained.get(m, {})) if keys is None or k in keys]


class Fig6Summary(Frozen):
    """Fig. 6 (Pearson), keyed by the number of training examples ``n``."""

    n: list[int]
    seeds: int
    """Seeds per setting in the plan."""
    by_n: dict[int, PairedScores]
    full_by_n: dict[int, PairedScores] = {}
    """Full-width uncompressed Deep LoRA against LoRA (``deep`` = the full-width mean), where it ran."""
    best_mean: float | None
    """Highest mean Pearson of any method at any ``n``."""
    at_chance: bool
    """No method is above chance (Pearson 0) at any ``n`` by the chance margin: the comparison is noise."""
    untrained: dict[str, dict[int, list[int]]] = {}
    """Per method, the ``n`` with runs whose training loss stayed near the constant predictor's, and their seeds."""
    full_beats_compressed: dict[int, bool] = {}
    """Per ``n`` of ``full_by_n``: the lower end of the full-width adapter's interval against LoRA is above the
    compressed adapter's mean gain, i.e. the compressed method generalises worse than the full-width one."""

    def untrained_runs(self, keys=None, methods=None, full: bool = False) -> list[UntrainedRuns]:
        """The runs that did not train (at ``keys`` and of ``methods`` when given), counted against ``by_n``'s seeds
        (``full``: ``full_by_n``'s)."""
        return _untrained(self.untrained, self.full_by_n if full else self.by_n, keys, methods)


class Fig7Summary(Frozen):
    """Fig. 7: numerical ranks of the updates of the Fig. 7 runs (STS-B, seed 0)."""

    n_updates: int
    """Adapted weight matrices per method."""
    rank_cap: int
    """Adapter rank ``r`` (the largest possible numerical rank)."""
    lora_rank_counts: list[int]
    """Histogram: entry ``k`` = number of LoRA updates of numerical rank ``k`` (``k = 0..rank_cap``)."""
    deep_rank_counts: list[int]
    deep_fraction_rank0: float
    deep_fraction_rank_le4: float
    deep_median_rank: float
    lora_fraction_full_rank: float
    """Share of LoRA updates whose rank is ``rank_cap``."""
    lora_median_rank: float
    deep_max_norm: float
    """Largest spectral norm of a Deep LoRA update."""
    lora_max_norm: float
    deep_mostly_rank0: bool = False
    """Over half of the Deep LoRA updates stay at rank 0, as in the paper."""


class ProbedRun(Frozen):
    """One Fig. 8 run named by its method, rank and seed."""

    method: str
    rank: int
    seed: int


class ProbeFindings(Frozen):
    """What the probes of the head's input show about the Fig. 8 runs."""

    trained: int
    """Runs that trained."""
    trained_collapsed: int
    """Of those, runs whose head input ended collapsed."""
    untrained: list[ProbedRun]
    collapsed: list[ProbedRun]
    """Runs that did not train and ended collapsed."""
    saturated: list[ProbedRun]
    """Runs that did not train and ended with over half of the pooler's units saturated."""
    collapse_marks_stall: bool
    """Every run that did not train ended collapsed and no run that trained did (and some did not train): these
    runs stalled in training, and their validation Pearson says nothing about the method."""


class Fig8Summary(Frozen):
    """Fig. 8 (Pearson), keyed by the adapter rank ``r``."""

    ranks: list[int]
    seeds: int
    """Seeds per setting in the plan."""
    by_rank: dict[int, PairedScores]
    lora_drop_smallest_to_largest_r: float | None
    """LoRA's mean at the smallest ``r`` minus at the largest (positive = worse at large ``r``)."""
    deep_drop_smallest_to_largest_r: float | None
    best_mean: float | None
    at_chance: bool
    untrained: dict[str, dict[int, list[int]]] = {}
    """Per method, the ranks with runs whose training loss stayed near the constant predictor's, and their seeds."""
    scaled_by_rank: dict[int, PairedScores] = {}
    """Compressed Deep LoRA with its inner rate scaled by ``rate_rank / r`` against LoRA (``deep`` = its mean; at
    ``rate_rank`` these are the compressed runs themselves), where it ran
    (:attr:`~compressible.experiments.fewshot_glue.plan.Fig8Plan.scaled_seeds`)."""
    scaled_drop_smallest_to_largest_r: float | None = None
    """The scaled variant's mean at the smallest ``r`` minus at the largest (``None``: not run)."""
    rate_rank: int | None = None
    """The rank the scaled variant's rate is scaled from (``None``: not run)."""
    scaled_rescued: list[int] = []
    """Ranks (other than ``rate_rank``) where compressed runs did not train at one rate and the scaled ones all did:
    there the rate chosen at ``rate_rank`` was too large for the rank."""
    scaled_untrained: list[int] = []
    """Ranks where runs at the scaled rate did not train either: the rate does not explain those."""
    probes: dict[str, dict[int, list[RunProbe]]] = {}
    """Per method and rank, the start and end of each run's probes (empty for runs stored without them)."""
    probe_findings: ProbeFindings | None = None
    """What the probes show (``None``: the runs stored no probes)."""

    def untrained_runs(self, keys=None, methods=None, scaled: bool = False) -> list[UntrainedRuns]:
        """The runs that did not train (at ``keys`` and of ``methods`` when given), counted against ``by_rank``'s
        seeds (``scaled``: ``scaled_by_rank``'s)."""
        return _untrained(self.untrained, self.scaled_by_rank if scaled else self.by_rank, keys, methods)


class TrainableParams(Frozen):
    """Trainable parameters of one run of ``method`` at adapter rank ``rank``."""

    method: str
    rank: int
    params: int


class RunTotals(Frozen):
    """How many runs the chapter shows and what they cost when they were computed."""

    rows: int
    """(experiment, seed) rows."""
    configs: int
    """Distinct configurations."""
    minutes: float
    """Training and evaluation time summed over the distinct runs."""
    trainable: list[TrainableParams]


class FewshotGlueSummary(Summary):
    """Headline numbers of the Few-shot GLUE chapter (Table 1 and Figs. 6-8) and the checks behind them."""

    chapter: ClassVar[str] = CHAPTER
    backbone: str
    table1: Table1Summary | None
    """``None`` when Table 1 was not run at this scale."""
    fig6: Fig6Summary
    fig7: Fig7Summary
    fig8: Fig8Summary | None
    """``None`` when Fig. 8 was not run at this scale."""
    tuning: TuningSummary | None = None
    precision: PrecisionSummary | None = None
    training: TrainingCheck
    diagnosis: DiagnosisSummary | None = None
    """Why compressed runs stall where one batch no longer holds the sample (``None``: not run)."""
    mirror: bool = False
    """GLUE was read from the offline mirror (QQP's validation split there is not the official one)."""
    totals: RunTotals | None = None
