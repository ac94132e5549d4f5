"""Run the GLUE experiments of the Deep LoRA chapters from the command line, resumably.

The experiments themselves live with their chapters: :mod:`compressible.experiments.fewshot_glue`
(Table 1, Figs. 6-8) and :mod:`compressible.experiments.deep_lora_subspaces` (Fig. 2, App. D.2)
each hold a frozen plan per scale (``PLANS``) and list its runs (``experiments(plan)``); the
machinery that runs and loads them through the result store is
:mod:`compressible.experiments.glue_runs`. This module is the thin layer over both: :func:`plan`
lists a chapter's experiments at a scale (each tagged with the figure or table it feeds, ``part``,
and a method ``label``), :func:`experiments_for` merges them into unique ``(config, seeds)``
pairs, :func:`run_chapter` computes what is missing and returns the tidy results, and
:func:`status` says what is stored.

Runs execute one after another in this process (``executor="local"``, the default) or as Ray tasks
on this machine's GPUs or a cluster (``executor="ray"``, :mod:`compressible.executors`); the result
store may be a local folder or an fsspec URL shared by the workers (:mod:`compressible.store`).

Scales: ``paper`` is the protocol on ``bert-base-cased`` (a GPU job); ``ci`` runs on
``all-MiniLM-L6-v2`` with fewer seeds and steps, sized to fit the book's CPU budget (the plans'
``notes`` list every departure); ``smoke`` uses a tiny random BERT and 2 steps.

Growing the committed ledger (:mod:`compressible.ledger.records`) is a sweep whose store is the ledger:
``--into ledger`` writes each finished run there as a sealed record with its provenance. Every run
command sets its own priority low (``--nice``, default 10), so a sweep can sit in the background while
other work goes on; it is resumable and can be interrupted at any point (Ctrl-C, ``kill``): finished
runs stay, the one in flight is recomputed next time. ``run`` also takes the chapters whose runs are
not GLUE runs (``generation``, ``completion``, ``compression``): they compute through their own
chapter's ``run``.

Command line::

    python -m compressible.sweeps run fewshot_glue --scale ci --into ledger          # grow the ledger
    python -m compressible.sweeps run fewshot_glue --scale paper --device cuda
    python -m compressible.sweeps run all --scale paper --device cuda --executor ray --gpus-per-run 1 \
        [--address auto|ray://host:10001] [--cpus-per-run N] [--root s3://bucket/results]
    python -m compressible.sweeps status fewshot_glue --scale ci      # (alias: list)
    python -m compressible.sweeps plan deep_lora_subspaces --scale paper
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from typing import Sequence

import pandas as pd

from .executors import EXECUTORS, SweepInterrupted, SweepSummary, execute
from .experiments import deep_lora_subspaces, fewshot_glue
from .experiments.deep_lora_subspaces import FIG2_CHECKPOINTS
from .experiments.glue_runs import (
    ATTENTION_TARGETS,
    METHOD_LABELS,
    Experiment,
    as_store,
    describe,
    load_runs,
    merge_experiments,
    results_frame,
    run_experiments,
    shape,
)
from .finetune.classify import RunConfig, Runner
from .scales import SCALES, check_scale
from .store import ResultStore, config_key

__all__ = [
    "CHAPTERS",
    "PARTS",
    "METHOD_LABELS",
    "ATTENTION_TARGETS",
    "FIG2_CHECKPOINTS",
    "Experiment",
    "chapter_plan",
    "plan",
    "experiments_for",
    "run_experiments",
    "run_chapter",
    "sweep",
    "status",
    "results_frame",
    "load_runs",
    "main",
]

log = logging.getLogger(__name__)

_MODULES = {"deep_lora_subspaces": deep_lora_subspaces, "fewshot_glue": fewshot_glue}
CHAPTERS = tuple(_MODULES)
"""The chapters whose GLUE experiments this module runs."""

OTHER_CHAPTERS = ("generation", "completion", "compression")
"""The other chapters whose runs are stored (``run`` computes them through the chapter's own ``run``)."""


def _run_other(chapter: str, scale: str, store: ResultStore, device: str, progress: bool) -> None:
    from .experiments import completion, compression, generation

    if chapter == "generation":
        generation.run(scale, device=device, store=store, progress=progress)
    elif chapter == "completion":
        completion.run(scale, store=store, progress=progress)
    else:
        compression.run(scale, store=store)

PARTS = {chapter: module.PARTS for chapter, module in _MODULES.items()}
"""The figures and tables of each chapter, in the order they are built."""


def _module(chapter: str):
    if chapter not in _MODULES:
        raise ValueError(f"unknown chapter {chapter!r}; valid chapters are {CHAPTERS}")
    return _MODULES[chapter]


def chapter_plan(chapter: str, scale: str):
    """The frozen plan of ``chapter`` at ``scale`` (a ``FewshotGluePlan`` or ``DeepLoraSubspacesPlan``)."""
    return _module(chapter).plan(scale)


def plan(chapter: str, scale: str, parts: Sequence[str] | None = None,
         store: ResultStore | str | None = None) -> list[Experiment]:
    """The experiments of ``chapter`` at ``scale`` (optionally only some ``parts``), in build order.

    A chapter that tunes its rates first (Few-shot GLUE at ``ci``) lists its tuning grid, and its other
    runs at the chosen rates once ``store`` holds the grid (without a store: at the plan's own rates,
    for counting); see ``planned`` of its module.
    """
    module = _module(chapter)
    experiments = module.planned(module.plan(check_scale(scale)), store)
    if parts is not None:
        unknown = [x for x in parts if x not in module.PARTS]
        if unknown:
            raise ValueError(f"unknown parts {unknown} of {chapter!r}; valid parts are {module.PARTS}")
        experiments = [e for e in experiments if e.part in parts]
    return experiments


def experiments_for(chapter: str, scale: str, parts: Sequence[str] | None = None) -> list[tuple[RunConfig, tuple[int, ...]]]:
    """Unique ``(RunConfig, seeds)`` of ``chapter`` at ``scale``: what a sweep has to compute.

    Configurations shared between parts (Fig. 7 reuses Fig. 6's n = 256 runs) appear once, with
    the union of their seeds.
    """
    return merge_experiments(plan(chapter, scale, parts))


def status(chapter: str, scale: str, store: ResultStore | str | None = None) -> pd.DataFrame:
    """One row per experiment of ``chapter`` at ``scale``: what it is, seeds stored and missing."""
    store = as_store(store)
    rows = []
    for e in plan(chapter, scale):
        c = e.config
        done = [s for s in e.seeds if store.has(c, s)]
        rows.append({
            "part": e.part, "method": e.label, "task": c.task, **shape(c), "steps": c.steps,
            "stored": len(done), "seeds": len(e.seeds),
            "missing": [s for s in e.seeds if s not in done], "key": config_key(c),
        })
    return pd.DataFrame(rows)


def _check_device(device: str, executor: str, gpus_per_run: float) -> None:
    if executor == "ray" and str(device).startswith("cuda"):
        if not gpus_per_run:
            raise ValueError(f"device={device!r} with executor='ray' needs gpus_per_run > 0 "
                             "(Ray hides the GPUs from a task that does not ask for one)")
        if str(device) != "cuda":
            raise ValueError(f"device={device!r}: with executor='ray' use device='cuda' (each task sees only its own GPUs)")


def sweep(
    experiments: Sequence[tuple[RunConfig, Sequence[int]]] | Sequence[Experiment],
    store: ResultStore | str | None = None,
    device: str = "cpu",
    progress: bool = True,
    threads: int | None = None,
    executor: str = "local",
    **execute_kwargs,
) -> SweepSummary:
    """Compute the missing runs of ``experiments`` with a :class:`~compressible.finetune.classify.Runner` on
    ``device``, through ``executor`` (``"local"`` or ``"ray"``; ``execute_kwargs``: ``address``,
    ``gpus_per_run``, ``cpus_per_run``, ``max_retries``, see :func:`compressible.executors.execute`).

    A run that raises is recorded as failed and the sweep goes on; returns the summary."""
    if experiments and isinstance(experiments[0], Experiment):
        experiments = merge_experiments(experiments)  # type: ignore[arg-type]
    _check_device(device, executor, execute_kwargs.get("gpus_per_run", 0))
    make_runner = functools.partial(Runner, device=device, progress=progress and executor == "local", threads=threads)
    make_runner()  # checks device and threads before anything runs
    return execute(experiments, make_runner, as_store(store), executor, threads=threads, progress=progress,
                   describe=describe, **execute_kwargs)


def run_chapter(
    chapter: str,
    scale: str,
    device: str = "cpu",
    store: ResultStore | str | None = None,
    parts: Sequence[str] | None = None,
    progress: bool = True,
    threads: int | None = None,
    executor: str = "local",
    **execute_kwargs,
) -> pd.DataFrame:
    """Run what is missing of ``chapter`` at ``scale`` and return :func:`results_frame` of it.

    ``threads`` sets torch's CPU threads during each run (see :class:`~compressible.finetune.classify.Runner`).
    ``executor="ray"`` (with ``execute_kwargs`` of :func:`sweep`) runs them as Ray tasks; a failed
    run is then reported in the log and its missing result raises in :func:`results_frame`.
    """
    store = as_store(store)
    for _ in range(2):  # a tuning grid first, then the runs at the rates it chose
        experiments = plan(chapter, scale, parts, store)
        if executor == "local" and not execute_kwargs:
            run_experiments(experiments, store, progress=progress, fn=Runner(device=device, progress=progress, threads=threads))
        else:
            sweep(experiments, store, device, progress, threads, executor, **execute_kwargs)
    return results_frame(plan(chapter, scale, parts, store), store)


def _print_plan(chapter: str, scale: str) -> None:
    frame = pd.DataFrame([
        {"part": e.part, "method": e.label, "task": e.config.task, **shape(e.config),
         "steps": e.config.steps, "lr": e.config.lr, "seeds": len(e.seeds), "backbone": e.config.backbone}
        for e in plan(chapter, scale)
    ])
    print(f"{chapter} at {scale} scale ({len(experiments_for(chapter, scale))} unique configs)")
    print(frame.to_string(index=False))
    for note in chapter_plan(chapter, scale).notes:
        print(f"note: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    """``compressible-sweep {run,status,plan} CHAPTER [--scale S] [--device D] [--root DIR] [--parts P,...]``."""
    parser = argparse.ArgumentParser(prog="compressible-sweep", description="Resumable GLUE sweeps of the Deep LoRA chapters.")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = (("run", "compute what is missing", ()), ("status", "show stored/missing runs", ("list",)),
                ("plan", "print the experiments", ()))
    for name, help_text, aliases in commands:
        cmd = sub.add_parser(name, help=help_text, aliases=aliases)
        cmd.add_argument("chapter", choices=(*CHAPTERS, *(OTHER_CHAPTERS if name == "run" else ()), "all"))
        cmd.add_argument("--scale", default="ci", choices=SCALES)
        cmd.add_argument("--root", default=None, help="result store folder (default: $COMPRESSIBLE_RESULTS or ./results)")
        cmd.add_argument("--into", default=None, metavar="LEDGER",
                         help="a ledger folder (e.g. ledger): store each run there as a sealed record with provenance")
        if name == "run":
            cmd.add_argument("--nice", type=int, default=10, help="lower this process's priority by N (default 10)")
            cmd.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
            cmd.add_argument("--parts", default=None, help="comma-separated parts, e.g. table1,fig6")
            cmd.add_argument("--no-progress", action="store_true")
            cmd.add_argument("--threads", type=int, default=None,
                             help="torch CPU threads per run (default: torch's locally, --cpus-per-run on Ray)")
            cmd.add_argument("--executor", default="local", choices=EXECUTORS,
                             help="local: one run after another here (default); ray: one Ray task per run")
            cmd.add_argument("--address", default=None,
                             help="Ray cluster to join: auto (started by `ray start` here) or ray://host:10001 "
                                  "(default: start Ray on this machine)")
            cmd.add_argument("--gpus-per-run", type=float, default=0, help="GPUs of each Ray task (e.g. 1, 0.5)")
            cmd.add_argument("--cpus-per-run", type=float, default=1, help="CPUs of each Ray task")
            cmd.add_argument("--max-retries", type=int, default=3, help="reruns of a Ray task whose worker died")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    chapters = CHAPTERS if args.chapter == "all" else (args.chapter,)
    if args.into is not None and args.root is not None:
        parser.error("give --root or --into, not both")
    if args.into is not None:
        from .ledger import Ledger

        store = Ledger(args.into)
    else:
        store = ResultStore(args.root)  # a folder or an fsspec URL (s3://..., gs://...)
    if args.command == "run" and args.nice:
        os.nice(args.nice)
    if args.command == "run" and args.chapter in OTHER_CHAPTERS:
        if args.executor != "local" or args.parts:
            parser.error(f"{args.chapter} runs through its chapter's own run(): no --executor or --parts")
        try:
            _run_other(args.chapter, args.scale, store, args.device, not args.no_progress)
        except KeyboardInterrupt:
            print("interrupted: finished runs are stored")
            return 130
        print(f"{args.chapter} at {args.scale} scale: every run stored in {store.url}")
        return 0
    if args.command == "plan":
        for chapter in chapters:
            _print_plan(chapter, args.scale)
        return 0
    if args.command in ("status", "list"):
        missing_total = 0
        for chapter in chapters:
            table = status(chapter, args.scale, store)
            missing_total += int((table["seeds"] - table["stored"]).sum())
            print(f"{chapter} at {args.scale} scale, store {store.root}")
            print(table.drop(columns=["key"]).to_string(index=False))
        print(f"{missing_total} runs missing")
        return 0
    parts = None if args.parts is None else [x.strip() for x in args.parts.split(",") if x.strip()]
    if parts is not None and args.chapter == "all":
        parser.error("--parts needs a single chapter")
    if args.executor == "local" and (args.address is not None or args.gpus_per_run):
        parser.error("--address and --gpus-per-run need --executor ray")
    ray_options = {} if args.executor == "local" else {
        "address": args.address, "gpus_per_run": args.gpus_per_run, "cpus_per_run": args.cpus_per_run,
        "max_retries": args.max_retries}
    stages = []
    for _ in range(2):  # a chapter that tunes its rates lists its other runs once the grid is stored
        experiments = [e for chapter in chapters for e in plan(chapter, args.scale, parts, store)]
        try:
            stages.append(sweep(experiments, store, args.device, not args.no_progress, args.threads, args.executor,
                                **ray_options))
        except SweepInterrupted as interrupted:
            print(f"interrupted: {interrupted.summary}")
            return 130
        except ValueError as err:
            parser.error(str(err))
        if stages[-1].failed or not stages[-1].done:
            break
    summary = stages[-1] if len(stages) == 1 else stages[0].then(stages[1])
    print(f"{' and '.join(chapters)} at {args.scale} scale: {summary.done} runs computed, store {store.url}")
    print(summary)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
