"""Running the chapter: the tuning grid, the rates it chooses, then the chapter's runs at those rates."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ...finetune import glue
from ...store import ResultStore
from ..contract import Execution, resolve
from ..fewshot_tuning import grid_runs, tuning_frame
from ..fewshot_tuning.summary import choose, rates_of
from ..glue_runs import Experiment, as_store, load_runs, run_and_load, task_chance
from ..glue_stats import DEEP, LORA
from .plan import PLANS, FewshotGluePlan
from .runs import experiments, rate_free_runs

__all__ = ["FewshotGlueResults", "run"]


@dataclass(frozen=True, eq=False)
class FewshotGlueResults:
    """Everything :func:`~compressible.experiments.fewshot_glue.summarise` needs: the stored runs and the data
    facts they are judged against, read once here (the summary reads nothing else)."""

    scale: str
    plan: FewshotGluePlan
    runs: pd.DataFrame
    """:func:`~compressible.experiments.glue_runs.results_frame` of every experiment (one row per run)."""
    fig7: dict[str, dict]
    """Stored Fig. 7 run of each method (seed 0), with ``spectra``: ``{module: {"rank", "singular_values"}}``."""
    fig7_rank: int
    """Adapter rank ``r`` of the Fig. 7 runs (the cap of their numerical ranks)."""
    chance: dict[str, float]
    """Chance level (points) of every Table 1 task (:func:`~compressible.experiments.glue_stats.chance_level`)."""
    sizes: dict[str, dict] = field(default_factory=dict)
    """Per task, a stored run's ``train_pool``, ``n_eval`` and ``eval_dropped_by_filter`` (for the data cards)."""
    grid: pd.DataFrame | None = None
    """:func:`~compressible.experiments.fewshot_tuning.run.tuning_frame` of the tuning grid (``None`` without one)."""
    experiments: list[Experiment] = field(default_factory=list)
    """Every experiment that ran, the tuning grid first, at the rates it chose."""
    twins: tuple[dict[int, dict], dict[int, dict]] | None = None
    """The float32 twins and their bf16 originals, ``{seed: stored run}`` each (``None`` without them)."""
    curves: dict[str, dict[int, dict]] = field(default_factory=dict)
    """Stored Fig. 6 runs at the largest ``n`` per method, ``{label: {seed: run}}``, for the training curves."""
    diagnosis: dict[str, dict[int, dict]] = field(default_factory=dict)
    """The diagnosis runs and the Fig. 6 LoRA and compressed runs they are set beside, ``{label: {seed: run}}``."""
    probes: dict[str, dict[int, dict[int, list[dict]]]] = field(default_factory=dict)
    """What the head saw along every Fig. 8 run, ``{method: {rank: {seed: probes}}}`` (the runs' ``probes``,
    :func:`compressible.finetune.classify.evaluation.head_input_probe`; runs stored without them are left out)."""
    cards: dict[str, dict] = field(default_factory=dict)
    """:func:`compressible.finetune.glue.data_card` of every task used."""
    mirror: bool = False
    """Whether GLUE was read from the offline mirror (whose QQP validation split is not the official one)."""


def run(plan: FewshotGluePlan | str, store: ResultStore | str | None = None, device: str = "cpu", *,
        execution: Execution | None = None, scale: str | None = None) -> FewshotGlueResults:
    """Run what the result store lacks of the chapter, then load every run.

    In order: the tuning grid (with the runs no rate choice changes, :func:`~compressible.experiments.fewshot_glue.runs.rate_free_runs`, beside it), the
    rates it chooses (:func:`~compressible.experiments.fewshot_tuning.summary.choose`; the methods' own without a grid),
    then the chapter's runs at those rates; a chosen point's runs are the chapter's runs at that ``n`` and seed.
    """
    scale, p = resolve(PLANS, plan, scale)
    store = as_store(store)
    grid = grid_runs(p.tuning)
    run_and_load(grid + rate_free_runs(p), store, device, execution, p)
    frame = tuning_frame(grid, store) if grid else None
    rates = rates_of(choose(frame)) if grid else None
    exps = experiments(p, rates)
    runs = run_and_load(exps, store, device, execution, p)

    fig7 = {e.label: load_runs(e, store)[0] for e in exps if e.part == "fig7"}
    fig7_rank = next(e.config.adapter.rank for e in exps if e.part == "fig7")
    tasks = list(dict.fromkeys([*(p.table1.tasks if p.table1 is not None else ()), "stsb"]))
    sizes = {}
    for task in tasks:
        e = next(e for e in exps if e.config.task == task)
        r = store.load(e.config, e.seeds[0])
        sizes[task] = {k: r[k] for k in ("train_pool", "n_eval", "eval_dropped_by_filter")}
    table1_tasks = [t for t in p.table1.tasks if t in set(runs[runs.part == "table1"].task)] if p.table1 is not None else []
    twins = None
    if p.precision is not None:
        twin = next(e for e in exps if e.part == "precision")
        original = twin.config.replace(autocast=p.methods.autocast)
        twins = (load_runs(twin, store), {seed: store.load(original, seed) for seed in twin.seeds})
    largest = max(p.fig6.n)
    curves = {e.label: load_runs(e, store) for e in exps if e.part == "fig6" and e.config.n_train == largest}
    diagnosis = {}
    if p.diagnosis is not None:
        d = p.diagnosis
        diagnosis = {e.label: {seed: r for seed, r in load_runs(e, store).items() if seed in d.seeds} for e in exps
                     if (e.part == "fig6" and e.config.n_train == d.n and e.label in (LORA, DEEP)) or e.part == "diagnosis"}
    probes: dict[str, dict[int, dict[int, list[dict]]]] = {}
    for e in (e for e in exps if e.part == "fig8"):
        for seed, r in load_runs(e, store).items():
            if r.get("probes"):
                probes.setdefault(e.label, {}).setdefault(e.config.adapter.rank, {})[seed] = r["probes"]
    return FewshotGlueResults(
        scale, p, runs, fig7, fig7_rank, {t: task_chance(t) for t in table1_tasks}, sizes, grid=frame,
        experiments=grid + exps, twins=twins, curves=curves, diagnosis=diagnosis, probes=probes,
        cards={t: glue.data_card(t) for t in tasks}, mirror=glue.dataset_source(glue.HUB_ID).is_local,
    )

