"""Running the tuning grid: compute what the result store lacks, load the held-out scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from ...finetune.metrics import primary_metric
from ...store import ResultStore
from ..contract import Execution, resolve
from ..glue_runs import Experiment, as_store, run_and_load
from .plan import PLANS, FewshotTuningPlan, Rates, grid_runs
from .summary import choose, rates_of

__all__ = ["TuningResults", "run", "tuning_frame", "chosen_rates"]


@dataclass(frozen=True, eq=False)
class TuningResults:
    """What :func:`~compressible.experiments.fewshot_tuning.summary.summarise` needs: the grid's stored scores."""

    scale: str
    plan: FewshotTuningPlan
    grid: pd.DataFrame
    """:func:`tuning_frame` of the grid (empty without one)."""


def tuning_frame(experiments: Sequence[Experiment], store: ResultStore | str | None = None) -> pd.DataFrame:
    """One row per tuning run: ``method, lr, gamma, n, seed, holdout`` (the tuning score), ``validation`` and
    ``trained``. Raises ``KeyError`` for a run not stored yet."""
    store = as_store(store)
    rows = []
    for e in experiments:
        metric = primary_metric(e.config.task)
        for seed in e.seeds:
            r = store.load(e.config, seed)
            rows.append({
                "method": e.label, "lr": e.config.lr,
                "gamma": e.config.adapter.gamma if e.config.adapter.init == "compressed" else None,
                "n": e.config.n_train, "seed": seed, "holdout": r["holdout"][metric], "validation": r["final"][metric],
                "trained": r["trained"],
            })
    return pd.DataFrame(rows)


def chosen_rates(p: FewshotTuningPlan, store: ResultStore | str | None = None) -> Rates | None:
    """The rates the grid of ``p`` chose, read from ``store``; ``None`` without a grid (the methods' own rates)
    or while ``store`` lacks part of it."""
    grid = grid_runs(p)
    store = as_store(store)
    if not grid or not all(store.has(e.config, seed) for e in grid for seed in e.seeds):
        return None
    return rates_of(choose(tuning_frame(grid, store)))


def run(plan: FewshotTuningPlan | str, store: ResultStore | str | None = None, device: str = "cpu", *,
        execution: Execution | None = None) -> TuningResults:
    """Run the grid points the result store lacks, then load every point's scores."""
    scale, p = resolve(PLANS, plan)
    store = as_store(store)
    grid = grid_runs(p)
    run_and_load(grid, store, device, execution, p)
    return TuningResults(scale, p, tuning_frame(grid, store))
