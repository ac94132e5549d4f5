"""Running the paper scale: how many runs each sweep chapter has at each scale, and what one costs.

The two GLUE chapters (:mod:`~compressible.experiments.deep_lora_subspaces`,
:mod:`~compressible.experiments.fewshot_glue`) are the sweeps that ``python -m compressible.sweeps``
runs -- locally or as Ray tasks (:mod:`compressible.executors`). :func:`run_counts` counts their
unique ``(config, seed)`` runs and training steps from the frozen plans of every scale (nothing is
run); :func:`measured_costs` reads the wall time that every stored run recorded at the build's
scale. Nothing here trains: :func:`run` only reads plans and the result store, and :func:`summarise`
(pure) turns what it read into a :class:`PaperScaleSummary`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from ..scales import SCALES, check_scale
from ..store import ResultStore
from ..summaries import Frozen, Summary
from . import deep_lora_subspaces, fewshot_glue, fewshot_tuning
from .contract import Execution
from .fewshot_tuning import grid_runs
from .glue_runs import as_store, merge_experiments

__all__ = ["CHAPTER", "SWEEP_CHAPTERS", "ChapterRuns", "ChapterCost", "PaperScaleResults", "PaperScaleSummary",
           "run_counts", "measured_costs", "run", "summarise", "counts_table", "costs_table"]

CHAPTER = "paper_scale"

SWEEP_CHAPTERS = {"deep_lora_subspaces": deep_lora_subspaces, "fewshot_glue": fewshot_glue}
"""The chapters whose runs go through the sweep CLI, and their experiment modules."""


class ChapterRuns(Frozen):
    """The size of one chapter's sweep at one scale (from its plan)."""

    runs: int
    """Unique ``(config, seed)`` runs (a run shared by two figures counts once)."""
    steps: int
    """Training steps summed over those runs."""
    backbone: str


class ChapterCost(Frozen):
    """Wall time of one chapter's stored runs at the build's scale, as each run recorded it."""

    stored: int
    """Runs of the plan found in the store (the others are not counted)."""
    planned: int
    seconds_per_run: float | None
    """Median wall seconds of one run (``None`` when none is stored)."""
    seconds_total: float
    """Sum over the stored runs: the chapter's cost on one device, one run after another."""
    seconds_per_step: float | None
    """``seconds_total`` over the stored runs' training steps (evaluation included)."""
    device: str | None
    """Device the runs recorded (the most common one)."""
    platform: str | None
    """Operating system and CPU architecture the runs recorded (the most common one)."""


class PaperScaleSummary(Summary):
    """Runs per sweep chapter at each scale, and their measured cost at this build's scale."""

    chapter: ClassVar[str] = CHAPTER
    runs: dict[str, dict[str, ChapterRuns]]
    """``runs[chapter][scale]``, for every sweep chapter and every scale."""
    costs: dict[str, ChapterCost]
    """``costs[chapter]`` at ``scale``: what the stored runs of this build's scale took."""
    stored_runs: int | None = None
    """Runs of this build's scale found in the store, over every sweep chapter (0: nothing to cost yet)."""
    platforms: list[str] = []
    """The platforms the stored runs recorded (each chapter's most common one), sorted."""


def _unique_runs(module, scale: str, store: ResultStore | None = None) -> list[tuple]:
    """The chapter's runs at ``scale``: at the rates its tuning grid chose when ``store`` holds the grid, else
    at the plan's own rates."""
    p = module.plan(scale)
    tuning = getattr(p, "tuning", None)
    grid = grid_runs(tuning) if tuning is not None else []
    tuned = store is not None and all(store.has(e.config, seed) for e in grid for seed in e.seeds)
    return [(config, seed) for config, seeds in merge_experiments(module.planned(p, store) if tuned else module.planned(p))
            for seed in seeds]


def run_counts(store: ResultStore | str | None = None, scale: str | None = None) -> dict[str, dict[str, ChapterRuns]]:
    """``{chapter: {scale: ChapterRuns}}`` from the plans (nothing is run). A plan that tunes its rates lists its
    runs at its own rates, except at ``scale`` with a ``store`` that holds its tuning grid: there, at the rates
    the grid chose (what a build at that scale runs)."""
    out: dict[str, dict[str, ChapterRuns]] = {}
    for name, module in SWEEP_CHAPTERS.items():
        out[name] = {}
        for s_ in SCALES:
            runs = _unique_runs(module, s_, as_store(store) if store is not None and s_ == scale else None)
            out[name][s_] = ChapterRuns(runs=len(runs), steps=sum(c.steps for c, _ in runs),
                                        backbone=module.plan(s_).methods.backbone)
    return out


def _most_common(values: list) -> str | None:
    values = [v for v in values if v is not None]
    return Counter(values).most_common(1)[0][0] if values else None


def measured_costs(scale: str, store: ResultStore | str | None = None) -> dict[str, ChapterCost]:
    """``{chapter: ChapterCost}`` of the runs of ``scale`` that ``store`` holds (the others are skipped)."""
    check_scale(scale)
    store = as_store(store)
    out = {}
    for name, module in SWEEP_CHAPTERS.items():
        planned = _unique_runs(module, scale, store)
        records = [(config, store.load(config, seed)) for config, seed in planned if store.has(config, seed)]
        seconds = pd.Series([r["wall_time"] for _, r in records], dtype=float)
        steps = sum(config.steps for config, _ in records)
        env = [r.get("_environment", {}) for _, r in records]
        out[name] = ChapterCost(
            stored=len(records), planned=len(planned),
            seconds_per_run=float(seconds.median()) if records else None,
            seconds_total=float(seconds.sum()),
            seconds_per_step=float(seconds.sum() / steps) if steps else None,
            device=_most_common([e.get("device") for e in env]),
            platform=_most_common([e.get("platform") for e in env]),
        )
    return out


@dataclass(frozen=True, eq=False)
class PaperScaleResults:
    """What :func:`run` read: the run counts of every scale and the recorded costs at ``scale``."""

    scale: str
    runs: dict[str, dict[str, ChapterRuns]]
    costs: dict[str, ChapterCost]


def run(plan: str, store: ResultStore | str | None = None, device: str = "cpu", *,
        execution: Execution | None = None) -> PaperScaleResults:
    """Count the sweep chapters' runs from their plans and read the wall times their stored runs at scale ``plan``
    recorded. This chapter's plan is the other chapters' plans, so ``plan`` is a scale name; nothing is computed
    (``device`` and ``execution`` are the chapter contract's and change nothing here)."""
    scale = check_scale(plan)
    store = as_store(store)
    return PaperScaleResults(scale, run_counts(store, scale), measured_costs(scale, store))


def summarise(results: PaperScaleResults) -> PaperScaleSummary:
    """The page's numbers: run counts of every scale, costs of the stored runs at the build's scale (pure)."""
    return PaperScaleSummary(
        scale=results.scale, runs=results.runs, costs=results.costs,
        stored_runs=sum(c.stored for c in results.costs.values()),
        platforms=sorted({c.platform for c in results.costs.values() if c.platform}),
    )


def counts_table(summary: PaperScaleSummary) -> pd.DataFrame:
    """One row per chapter: runs and training steps at each scale."""
    rows = []
    for name, by_scale in summary.runs.items():
        row = {"chapter": name}
        for scale in SCALES:
            row[f"runs ({scale})"] = by_scale[scale].runs
            row[f"steps ({scale})"] = by_scale[scale].steps
        rows.append(row)
    return pd.DataFrame(rows)


def costs_table(summary: PaperScaleSummary) -> pd.DataFrame:
    """One row per chapter: measured wall time per run, per step and in total at the build's scale."""
    def rounded(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    return pd.DataFrame([
        {"chapter": name, "runs stored": f"{c.stored} of {c.planned}", "device": c.device or "-",
         "s per run (median)": rounded(c.seconds_per_run, 1), "s per step": rounded(c.seconds_per_step, 2),
         "min in total": rounded(c.seconds_total / 60, 1)}
        for name, c in summary.costs.items()
    ])
