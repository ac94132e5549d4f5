"""Why compressed Deep LoRA stalls where one batch no longer holds the sample: a diagnosis.

Where one batch no longer holds the whole sample, the compressed runs of Fig. 6 at the chosen rates run again,
each changing one thing (:class:`DiagnosisPlan`): the outer factors built from the gradient of the *whole*
sample instead of the first batch (``RunConfig.compress_from``), the outer factors moving at another multiple
``gamma`` of the inner rate, a smaller inner rate, or more steps. Which change makes a stalled run train says
which cause it was (:class:`Cause`), and one that does not rules its cause out; the probes of the head's input
say whether a stalled run *collapsed* and which change kept it from it (:class:`CollapseFinding`), the update
spectra what a stalled run learned (:class:`RankOneFinding`). :func:`summarise_diagnosis` decides all of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Sequence

import numpy as np

from ...finetune.classify import RunConfig
from ...summaries import Frozen
from ..glue_methods import GlueMethods
from ..glue_runs import Experiment
from ...summaries import finite
from ..glue_stats import DEEP, LORA
from .probes import SATURATED_SHARE, is_collapsed, rank_one_modules, spread_course

__all__ = ["DiagnosisPlan", "WHOLE_SAMPLE", "free_outer_label", "inner_rate_label", "longer_label", "diagnosis_experiments",
           "Cause", "DiagnosisOutcome", "DiagnosisRun", "CollapseFinding", "RankOneFinding", "DiagnosisSummary",
           "summarise_diagnosis"]

WHOLE_SAMPLE = "Deep LoRA, outer factors from the whole sample"
"""Label of the diagnosis runs whose outer factors come from the whole sample's gradient."""


def free_outer_label(gamma: float) -> str:
    """Label of the diagnosis runs whose outer factors move at ``gamma`` times the inner rate."""
    return f"Deep LoRA, γ = {gamma:g}"


def inner_rate_label(lr: float) -> str:
    """Label of the diagnosis runs whose inner factors train at ``lr``."""
    return f"Deep LoRA, inner rate {lr:g}"


def longer_label(steps: int) -> str:
    """Label of the diagnosis runs trained for ``steps`` steps instead of Fig. 6's."""
    return f"Deep LoRA, {steps} steps"


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class DiagnosisPlan:
    """Compressed Deep LoRA at ``n`` (a Fig. 6 size larger than one batch), ``seeds`` (Fig. 6 seeds
    there), each run changing one thing against the Fig. 6 run: the outer factors from the whole
    sample's gradient (if ``whole_sample``), the outer factors at ``gamma`` times the inner rate (if
    ``gamma``), if ``lr_factor`` the inner rate times ``lr_factor`` (outer factors at ``gamma`` of that,
    as in Fig. 6), and, if ``longer_steps``, the same run trained for that many steps."""

    n: int
    seeds: tuple[int, ...]
    gamma: float | None = 1.0
    """The outer factors' rate ratio of the second variant (1: no discrepant rate; ``None``: not run; not run
    either when it is the ratio the Fig. 6 runs use)."""
    lr_factor: float | None = 0.1
    """The third variant's inner rate, as a multiple of the chosen one (``None``: not run)."""
    longer_steps: int | None = None
    """Steps of the fourth variant, more than Fig. 6's: is a stalled run slow or stuck? (``None``: not run)."""
    whole_sample: bool = True
    """Run the first variant (outer factors from the whole sample's gradient)."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("DiagnosisPlan.seeds must not be empty")
        if self.gamma is not None and not _positive(self.gamma):
            raise ValueError(f"DiagnosisPlan.gamma must be a positive number or None, got {self.gamma!r}")
        if not isinstance(self.whole_sample, bool):
            raise ValueError(f"DiagnosisPlan.whole_sample must be True or False, got {self.whole_sample!r}")
        if not (self.whole_sample or self.gamma is not None or self.lr_factor is not None or self.longer_steps is not None):
            raise ValueError("DiagnosisPlan runs no variant (whole_sample=False, gamma, lr_factor and longer_steps None); "
                             "give at least one, or no DiagnosisPlan")
        if self.lr_factor is not None and not _positive(self.lr_factor):
            raise ValueError(f"DiagnosisPlan.lr_factor must be a positive number or None, got {self.lr_factor!r}")
        if self.lr_factor == 1:
            raise ValueError("DiagnosisPlan.lr_factor=1 repeats the Fig. 6 runs; give another multiple of the inner rate")
        if self.longer_steps is not None and (isinstance(self.longer_steps, bool) or not isinstance(self.longer_steps, int)
                                              or self.longer_steps < 1):
            raise ValueError(f"DiagnosisPlan.longer_steps must be a positive int or None, got {self.longer_steps!r}")


def diagnosis_experiments(dp: DiagnosisPlan, methods: GlueMethods, base: dict, steps: int) -> list[Experiment]:
    """The variants of :class:`DiagnosisPlan` (part ``"diagnosis"``) at ``methods``' (chosen) rates;
    ``base`` holds the ``RunConfig`` fields of the chapter's STS-B runs. The ``gamma`` variant is left out
    when ``methods`` already train at that ``gamma`` (it would repeat Fig. 6's runs: a tuning chose it)."""
    compressed = RunConfig(n_train=dp.n, steps=steps, **base, **methods.method("compressed"))
    if dp.longer_steps is not None and dp.longer_steps <= steps:
        raise ValueError(f"DiagnosisPlan.longer_steps={dp.longer_steps} must be more than the Fig. 6 runs' {steps} steps")
    out = []
    if dp.whole_sample:
        out.append(Experiment("diagnosis", WHOLE_SAMPLE, compressed.replace(compress_from="sample"), dp.seeds))
    if dp.gamma is not None and dp.gamma != compressed.adapter.gamma:  # a tuning that chose dp.gamma leaves nothing to change
        free = dataclasses.replace(methods, deep_gamma=dp.gamma)
        out.append(Experiment("diagnosis", free_outer_label(dp.gamma),
                              RunConfig(n_train=dp.n, steps=steps, **base, **free.method("compressed")), dp.seeds))
    if dp.lr_factor is not None:
        slow = dataclasses.replace(methods, deep_lr=compressed.lr * dp.lr_factor)
        out.append(Experiment("diagnosis", inner_rate_label(compressed.lr * dp.lr_factor),
                              RunConfig(n_train=dp.n, steps=steps, **base, **slow.method("compressed")), dp.seeds))
    if dp.longer_steps is not None:
        out.append(Experiment("diagnosis", longer_label(dp.longer_steps), compressed.replace(steps=dp.longer_steps),
                              dp.seeds))
    return out


class Cause(StrEnum):
    """The cause of a stall that a variant tests (what it changes against Fig. 6's run)."""

    FIRST_BATCH = "first batch"
    """The subspace the first batch gives the outer factors (the whole-sample variant)."""
    OUTER_TOO_FAST = "outer too fast"
    """Outer factors that move too fast (a variant with a smaller gamma)."""
    OUTER_TOO_SLOW = "outer too slow"
    """Outer factors that move too slowly to leave their first subspace (a variant with another gamma)."""
    INNER_RATE = "inner rate"
    """An inner rate too large for batches that differ from step to step (the smaller inner rate)."""
    PLATEAU = "plateau"
    """A plateau that outlasts Fig. 6's steps: a slow run rather than a stuck one (the longer variant)."""


class DiagnosisOutcome(StrEnum):
    """What the diagnosis found about the stalled compressed runs."""

    NO_STALL = "no stall"
    """Every compressed run at these seeds trained: nothing to diagnose."""
    NO_VARIANT = "no variant"
    """Runs stalled, but no change was run (the plan's only one would have repeated Fig. 6's runs)."""
    FIXED = "fixed"
    """At least one change made every stalled seed train (:attr:`DiagnosisSummary.fixes`)."""
    NOT_FIXED = "not fixed"
    """No change made the stalled seeds pass the training check within its steps."""


class DiagnosisRun(Frozen):
    """One run of the diagnosis: its losses (means of the first and last 10 steps) against its constant
    predictor's, its rates, its update spectra and the course of its head input's spread."""

    seed: int
    steps: int
    lr: float | None
    """The run's inner rate (``None`` when not stored)."""
    gamma: float | None
    """The run's outer-factor ratio (``None`` when not stored)."""
    first_train_loss: float
    final_train_loss: float
    loss_baseline: float
    trained: bool
    validation: float | None
    rank_one: int | None
    """Rank-one updates (:func:`~compressible.experiments.fewshot_glue.probes.rank_one_modules`; ``None``: no spectra)."""
    modules: int | None
    start_spread: float | None
    """The spreads (:func:`~compressible.experiments.fewshot_glue.probes.spread_course`; ``None``: no probes)."""
    min_spread: float | None
    final_spread: float | None
    collapse_step: int | None
    final_saturated: float | None

    @property
    def collapsed(self) -> bool | None:
        """Whether the head input ended below :data:`~compressible.experiments.fewshot_glue.probes.COLLAPSED` of
        its start (``None`` without probes)."""
        return None if self.final_spread is None else is_collapsed(self.start_spread, self.final_spread)

    @property
    def spread_ratio(self) -> float | None:
        return None if self.final_spread is None else self.final_spread / self.start_spread


class CollapseFinding(Frozen):
    """Every stalled run *collapsed*: when, how far, and which changes kept the same seeds from collapsing
    while lowering their loss (without passing the training check: those are :attr:`DiagnosisSummary.fixes`)."""

    step: int
    """The last of the stalled runs' first collapsed probe steps."""
    ratios: list[float]
    """Per stalled seed, the head input's spread at the end over its start."""
    lora_ratios: list[float]
    """The same of LoRA's runs at those seeds (those with probes)."""
    max_saturated: float | None
    """The largest share of saturated pooler units at the end (``None``: no tanh pooler)."""
    pooler_clear: bool
    """Under :data:`~compressible.experiments.fewshot_glue.probes.SATURATED_SHARE` of the pooler ended saturated in
    every stalled run: the pooler did not block the gradient."""
    kept: list[str]
    """The variants that kept every stalled seed from collapsing and ended with a lower loss."""
    kept_ratios: dict[str, list[float]]
    kept_losses: dict[str, list[float]]
    baseline_losses: list[float]
    """The stalled runs' final losses."""
    kept_steps: int | None
    """The most steps of a kept variant's runs (``None``: none kept)."""
    outer_rate_from: float | None
    """The outer factors' Adam rate (inner rate x gamma) of the stalled runs, when every kept variant lowers it
    to one common rate (``outer_rate_to``); else both ``None``."""
    outer_rate_to: float | None
    causes: list[Cause]
    """What the collapse comes from: too fast outer factors when several kept variants share a lower outer rate,
    else the causes the kept variants test (empty when none kept)."""


class RankOneFinding(Frozen):
    """What the stalled runs' update spectra show."""

    deep_share: float
    """Share of the stalled compressed runs' updates that are rank one."""
    lora_share: float | None
    """The same of LoRA's runs (``None``: no spectra)."""
    first_loss: float
    """Mean over the stalled runs of their first 10 steps' training loss."""
    last_loss: float
    baseline: float
    """Mean constant-predictor loss of those runs."""
    label_mean: bool
    """The stalled runs' updates are (nearly all, >= 90 %) rank one while LoRA's are not: they fitted the label
    mean, one direction per weight (else the spectra single out no cause)."""


class DiagnosisSummary(Frozen):
    """Per method or variant at the diagnosis ``n``: every seed's run, and what they show."""

    n: int
    seeds: list[int]
    baseline: str
    """Label of the Fig. 6 compressed runs the variants change one thing of."""
    runs: dict[str, list[DiagnosisRun]]
    outcome: DiagnosisOutcome
    stalled: list[int]
    """Seeds whose compressed (baseline) run did not train."""
    variants: list[str]
    """The variants run, in the plan's order."""
    causes: dict[str, Cause]
    """The cause each variant tests."""
    fixes: list[str]
    """Variants that made every stalled seed train."""
    collapse: CollapseFinding | None
    """``None``: not every stalled run collapsed, the runs stored no probes, nothing stalled or no variant ran."""
    rank_one: RankOneFinding | None
    """``None``: nothing stalled or the runs stored no update spectra."""

    def trained(self, label: str) -> int:
        return sum(r.trained for r in self.runs[label])

    def rank_one_share(self, label: str, seeds: Sequence[int] | None = None) -> float | None:
        """Share of rank-one updates over the runs of ``label`` (at ``seeds``); ``None`` without spectra."""
        rows = [r for r in self.runs[label] if (seeds is None or r.seed in seeds) and r.modules]
        if not rows:
            return None
        return sum(r.rank_one for r in rows) / sum(r.modules for r in rows)


def _run(seed: int, r: dict) -> DiagnosisRun:
    losses = np.asarray(r["train_loss"], dtype=float)
    ranks = rank_one_modules(r)
    config = r.get("_config") or {}
    probes = spread_course(r) or dict.fromkeys(("start_spread", "min_spread", "final_spread", "collapse_step",
                                               "final_saturated"))
    return DiagnosisRun(seed=seed, steps=len(losses), lr=config.get("lr"), gamma=(config.get("adapter") or {}).get("gamma"),
                        final_train_loss=float(losses[-10:].mean()), first_train_loss=float(losses[:10].mean()),
                        loss_baseline=float(r["loss_baseline"]), trained=bool(r["trained"]),
                        validation=finite(r["final"][r["metric"]]), rank_one=None if ranks is None else ranks[0],
                        modules=None if ranks is None else ranks[1], **probes)


def _cause(runs: dict[str, list[DiagnosisRun]], baseline: str, label: str) -> Cause:
    if label == WHOLE_SAMPLE:
        return Cause.FIRST_BATCH
    if label.startswith("Deep LoRA, γ"):
        base, mine = ({r.gamma for r in runs[x]} for x in (baseline, label))
        if None not in base | mine and len(base) == len(mine) == 1 and min(mine) < min(base):
            return Cause.OUTER_TOO_FAST
        return Cause.OUTER_TOO_SLOW
    if label.startswith("Deep LoRA, inner rate"):
        return Cause.INNER_RATE
    return Cause.PLATEAU


def _outer_rate(rows: Sequence[DiagnosisRun]) -> float | None:
    """The outer factors' Adam rate (inner rate times ``gamma``) of runs that stored both, if they share one."""
    rates = {None if r.lr is None or r.gamma is None else r.lr * r.gamma for r in rows}
    return rates.pop() if len(rates) == 1 else None


def _collapse(runs: dict[str, list[DiagnosisRun]], baseline: str, stalled: Sequence[int], variants: Sequence[str],
              causes: dict[str, Cause]) -> CollapseFinding | None:
    rows = [r for r in runs[baseline] if r.seed in stalled]
    if not rows or any(r.collapsed is not True for r in rows):
        return None
    saturated = [r.final_saturated for r in rows if r.final_saturated is not None]
    by_seed = {r.seed: r for r in rows}
    at = {label: [r for r in runs[label] if r.seed in by_seed] for label in variants}
    kept = [label for label in variants if at[label] and all(
        r.collapsed is False and r.final_train_loss < by_seed[r.seed].final_train_loss for r in at[label])]
    base_rate, new_rates = _outer_rate(rows), {_outer_rate(at[label]) for label in kept}
    new_rate = new_rates.pop() if len(new_rates) == 1 else None
    lowered = base_rate is not None and new_rate is not None and new_rate < base_rate
    return CollapseFinding(
        step=max(r.collapse_step for r in rows), ratios=[r.spread_ratio for r in rows],
        lora_ratios=[r.spread_ratio for r in runs[LORA] if r.seed in stalled and r.final_spread is not None],
        max_saturated=max(saturated) if saturated else None,
        pooler_clear=bool(saturated) and max(saturated) < SATURATED_SHARE, kept=kept,
        kept_ratios={label: [r.spread_ratio for r in at[label]] for label in kept},
        kept_losses={label: [r.final_train_loss for r in at[label]] for label in kept},
        baseline_losses=[r.final_train_loss for r in rows],
        kept_steps=max((r.steps for label in kept for r in runs[label]), default=None),
        outer_rate_from=base_rate if lowered else None, outer_rate_to=new_rate if lowered else None,
        causes=[Cause.OUTER_TOO_FAST] if lowered and len(kept) > 1 else list(dict.fromkeys(causes[label] for label in kept)),
    )


def _rank_one(summary_runs: dict[str, list[DiagnosisRun]], baseline: str, stalled: Sequence[int]) -> RankOneFinding | None:
    def share(label, seeds=None):
        rows = [r for r in summary_runs[label] if (seeds is None or r.seed in seeds) and r.modules]
        return sum(r.rank_one for r in rows) / sum(r.modules for r in rows) if rows else None

    deep, lora = share(baseline, stalled), share(LORA)
    if deep is None:
        return None
    rows = [r for r in summary_runs[baseline] if r.seed in stalled]
    return RankOneFinding(deep_share=deep, lora_share=lora, first_loss=float(np.mean([r.first_train_loss for r in rows])),
                          last_loss=float(np.mean([r.final_train_loss for r in rows])),
                          baseline=float(np.mean([r.loss_baseline for r in rows])),
                          label_mean=not (deep < 0.9 or (lora is not None and lora >= 0.9)))


def summarise_diagnosis(curves: dict[str, dict[int, dict]], dp: DiagnosisPlan) -> DiagnosisSummary:
    """:class:`DiagnosisSummary` of stored runs ``{label: {seed: result}}`` (Fig. 6's LoRA and compressed runs at
    ``dp.n`` and the variants, all at ``dp.seeds``): which change made the stalled compressed runs train, whether
    they collapsed and which change kept them from it (no more than the runs show)."""
    missing = [label for label in (LORA, DEEP) if label not in curves]
    if missing:
        raise ValueError(f"the diagnosis compares with the Fig. 6 runs of {missing}; pass them in curves")
    runs = {label: [_run(seed, by_seed[seed]) for seed in dp.seeds] for label, by_seed in curves.items()}
    stalled = [r.seed for r in runs[DEEP] if not r.trained]
    variants = [label for label in runs if label not in (LORA, DEEP)]
    causes = {label: _cause(runs, DEEP, label) for label in variants}
    fixes = [label for label in variants if all(r.trained for r in runs[label] if r.seed in stalled)] if stalled else []
    if not stalled:
        outcome = DiagnosisOutcome.NO_STALL
    elif not variants:
        outcome = DiagnosisOutcome.NO_VARIANT
    else:
        outcome = DiagnosisOutcome.FIXED if fixes else DiagnosisOutcome.NOT_FIXED
    collapse = (_collapse(runs, DEEP, stalled, [v for v in variants if v not in fixes], causes)
                if outcome in (DiagnosisOutcome.FIXED, DiagnosisOutcome.NOT_FIXED) else None)
    return DiagnosisSummary(n=dp.n, seeds=list(dp.seeds), baseline=DEEP, runs=runs, outcome=outcome, stalled=stalled,
                            variants=variants, causes=causes, fixes=fixes, collapse=collapse,
                            rank_one=_rank_one(runs, DEEP, stalled) if stalled else None)
