"""The GLUE runs of the two Deep LoRA chapters as data, and a resumable way to run and load them.

An :class:`Experiment` is a :class:`~compressible.finetune.classify.config.RunConfig`, the seeds it
runs at, the figure or table it feeds (``part``) and its method ``label``. Each chapter's module
(:mod:`~compressible.experiments.fewshot_tuning`, :mod:`~compressible.experiments.fewshot_glue`,
:mod:`~compressible.experiments.deep_lora_subspaces`)
lists its experiments from its frozen plan; :func:`run_experiments` computes the missing
``(config, seed)`` runs through a :class:`~compressible.store.ResultStore` (each stored
atomically: a sweep killed half-way recomputes only what is missing) and :func:`results_frame`
turns stored runs into a tidy table. What every run of a chapter shares at a scale (backbone, head,
rates) is :mod:`~compressible.experiments.glue_methods`; the order in which a pool of workers takes the
runs (the longest first) is :mod:`~compressible.experiments.glue_costs`.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from ..finetune import glue
from ..finetune.classify import RunConfig, Runner
from ..finetune.metrics import primary_metric
from ..hub import load_dataset
from ..executors import execute
from ..store import ResultStore, config_key
from .contract import Execution
from .glue_costs import longest_first
from .glue_methods import GlueChapterPlan
from .glue_stats import DEEP, FULL, LORA, chance_level

__all__ = [
    "METHOD_LABELS",
    "Experiment",
    "merge_experiments",
    "as_store",
    "describe",
    "shape",
    "run_experiments",
    "run_and_load",
    "cpu_execution",
    "results_frame",
    "load_runs",
    "task_chance",
]

log = logging.getLogger(__name__)

METHOD_LABELS = {
    "lora": LORA,
    "compressed": DEEP,
    "full": FULL,
    "random": "Deep LoRA (random narrow)",
}
"""Method name shown for each adapter kind."""

@dataclass(frozen=True)
class Experiment:
    """One configuration of a chapter, the seeds it runs at, and what it is for."""

    part: str
    """The figure or table it feeds (e.g. ``"table1"``, ``"fig2"``)."""
    label: str
    """The method's name in plots and tables."""
    config: RunConfig
    seeds: tuple[int, ...]


def merge_experiments(experiments: Iterable[Experiment]) -> list[tuple[RunConfig, tuple[int, ...]]]:
    """Unique ``(config, seeds)``: a configuration shared by several parts appears once, with the union of their seeds."""
    merged: dict[str, tuple[RunConfig, list[int]]] = {}
    for e in experiments:
        config, seeds = merged.setdefault(config_key(e.config), (e.config, []))
        seeds.extend(s for s in e.seeds if s not in seeds)
    return [(config, tuple(seeds)) for config, seeds in merged.values()]


def as_store(store: ResultStore | str | None) -> ResultStore:
    """``store`` itself, or a :class:`~compressible.store.ResultStore` at the folder ``store`` (default: the results folder)."""
    return store if isinstance(store, ResultStore) else ResultStore(store)


def shape(config: RunConfig) -> dict:
    """``n_train`` and ``rank`` for display: ``"all"`` for the whole training set, ``"full"`` width."""
    return {
        "n_train": "all" if config.n_train is None else config.n_train,
        "rank": "full" if config.adapter.init == "full" else config.adapter.rank,
    }


def describe(config: RunConfig) -> str:
    """A one-line description of a run configuration for logs and error messages."""
    n = "all" if config.n_train is None else config.n_train
    return f"{config.task} {config.adapter.init} r={config.adapter.rank} n={n} steps={config.steps}"


def run_experiments(
    experiments: Sequence[tuple[RunConfig, Sequence[int]]] | Sequence[Experiment],
    store: ResultStore | str | None = None,
    device: str = "cpu",
    progress: bool = True,
    fn=None,
) -> int:
    """Compute every missing ``(config, seed)`` of ``experiments`` into ``store``; returns how many ran.

    ``experiments`` are ``(config, seeds)`` pairs or :class:`Experiment` s (merged first).
    ``fn(config, seed) -> dict`` defaults to a :class:`~compressible.finetune.runner.Runner` on ``device``.
    Finished runs are never recomputed; a run that raises stops the sweep, keeping everything
    finished before it.
    """
    if experiments and isinstance(experiments[0], Experiment):
        experiments = merge_experiments(experiments)  # type: ignore[arg-type]
    store = as_store(store)
    fn = fn or Runner(device=device, progress=progress)
    ran = 0
    for config, seeds in experiments:
        seeds = list(seeds)
        missing = [s for s in seeds if not store.has(config, s)]
        if not missing:
            continue
        log.info("%s: %d of %d seeds to run", describe(config), len(missing), len(seeds))
        store.run(config, seeds, fn, progress=progress, desc=describe(config))
        ran += len(missing)
    return ran


def cpu_execution(p: GlueChapterPlan, device: str, threads: int | None = None,
                  workers: int | None = None) -> tuple[int | None, int]:
    """``(threads per run, worker processes)`` of plan ``p`` on ``device``: with ``p.parallel_cpu`` on
    a CPU, one thread per run and one worker per core (``os.cpu_count()``, at most 8); otherwise the
    given ``threads`` and one worker. Explicit ``threads``/``workers`` win."""
    if not p.parallel_cpu or torch.device(device).type != "cpu":
        return threads, workers or 1
    return (1 if threads is None else threads), (workers or max(1, min(8, os.cpu_count() or 1)))


def run_and_load(
    experiments: Sequence[Experiment],
    store: ResultStore | str | None = None,
    device: str = "cpu",
    execution: Execution | None = None,
    plan: GlueChapterPlan | None = None,
) -> pd.DataFrame:
    """Compute what ``store`` lacks of ``experiments`` with a :class:`~compressible.finetune.runner.Runner`
    on ``device``, then return :func:`results_frame` of them.

    ``execution`` (:class:`~compressible.experiments.contract.Execution`) says how: in this process, in
    worker processes (``workers > 1``; ``threads`` per run, default 1) or as Ray tasks; its unset threads
    and workers come from ``plan`` (:func:`cpu_execution`). A failed run raises once the others are done,
    naming it.
    """
    execution = execution or Execution()
    store = as_store(store)
    threads, workers = execution.threads, execution.workers
    if plan is not None:
        threads, workers = cpu_execution(plan, device, threads, workers)
    workers = workers or 1
    if execution.executor == "local" and workers == 1:
        run_experiments(experiments, store, progress=execution.progress,
                        fn=Runner(device=device, progress=execution.progress, threads=threads))
    else:
        ray = execution.executor == "ray"
        summary = execute(longest_first(merge_experiments(experiments)),
                          functools.partial(Runner, device=device, progress=False), store,
                          executor="ray" if ray else "processes", threads=threads, progress=execution.progress,
                          desc="GLUE runs", describe=describe,
                          **(dict(execution.options) if ray else {"workers": workers}))
        if summary.failed:
            raise RuntimeError(f"{len(summary.failed)} run(s) failed (recorded in {store.url}): "
                               + "; ".join(str(f) for f in summary.failed))
    return results_frame(experiments, store)


def load_runs(experiment: Experiment, store: ResultStore | str | None = None) -> dict[int, dict]:
    """``{seed: stored result}`` of an experiment (every seed must be stored)."""
    store = as_store(store)
    return {s: store.load(experiment.config, s) for s in experiment.seeds}


def results_frame(
    experiments: Sequence[Experiment], store: ResultStore | str | None = None, missing: str = "raise"
) -> pd.DataFrame:
    """A tidy table of stored runs: one row per ``(experiment, seed)``.

    Columns: ``part, method, adapter, task, n_train, rank, steps, seed, metric, value`` (the final
    value of the paper's metric), ``final_<name>`` for every final metric, ``wall_time``,
    ``trainable_params``, ``key``, ``final_train_loss`` (mean of the last 10 steps), ``loss_baseline`` and
    ``trained`` (see :func:`compressible.finetune.classify.training.run`). ``missing="raise"`` (default) fails on a run not yet stored and
    names it; ``"skip"`` leaves it out.
    """
    if missing not in ("raise", "skip"):
        raise ValueError(f"missing must be 'raise' or 'skip', got {missing!r}")
    store = as_store(store)
    rows = []
    for e in experiments:
        c = e.config
        for seed in e.seeds:
            if not store.has(c, seed):
                if missing == "raise":
                    raise KeyError(
                        f"{e.part} {e.label} ({describe(c)}) seed {seed} is not stored in {store.root}; "
                        "run the sweep first (python -m compressible.sweeps run ...)"
                    )
                continue
            r = store.load(c, seed)
            row = {
                "part": e.part, "method": e.label, "adapter": c.adapter.init, "task": c.task, "n_train": c.n_train,
                "rank": c.adapter.rank, "steps": c.steps, "seed": seed, "metric": r["metric"], "value": r["final"][r["metric"]],
            }
            row.update({f"final_{k}": v for k, v in r["final"].items() if k != "step"})
            row.update({"wall_time": r["wall_time"], "trainable_params": r["trainable_params"], "key": config_key(c)})
            losses = r.get("train_loss", [])
            row.update({"final_train_loss": float(np.mean(losses[-10:])) if losses else float("nan"),
                        "loss_baseline": r.get("loss_baseline", float("nan")), "trained": r.get("trained")})
            rows.append(row)
    return pd.DataFrame(rows)


def task_chance(task: str) -> float:
    """Chance level (points) of ``task`` on its whole evaluation split (loads its labels for accuracy)."""
    metric = primary_metric(task)
    labels = np.asarray(load_dataset(glue.HUB_ID, task)[glue.eval_split(task)]["label"]) if metric == "accuracy" else None
    return chance_level(metric, labels)
