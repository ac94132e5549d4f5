"""Run the book's stored experiments from the command line, resumably: the chapters' own ``run()``.

Every chapter whose runs go through the result store (and so into the ledger) follows the chapter
contract (:mod:`compressible.experiments.contract`): a frozen plan per scale and one ``run(plan, store,
device, *, execution)`` that computes what the store lacks, in the chapter's order (a tuning grid, the
rates it chooses, then the runs at them), and loads the rest. :func:`run_chapter` and ``python -m
compressible.sweeps run`` call that same function, with an :class:`~compressible.experiments.contract.Execution`
saying how to compute: one run after another here, in worker processes (``--executor processes``), or as
Ray tasks on this machine's GPUs or a cluster (``--executor ray``); the store may be a local folder, an
fsspec URL shared by the workers (:mod:`compressible.store`), or the committed ledger (``--into ledger``:
every finished run is sealed there with its provenance, :mod:`compressible.ledger.records`).

Every run command lowers its own priority (``--nice``, default 10), so a sweep can sit in the background
while other work goes on; it can be interrupted at any point (Ctrl-C, ``kill``): finished runs stay, the one
in flight is recomputed next time. ``status`` and ``plan`` list a chapter's planned runs
(:func:`compressible.ledger.coverage.planned_runs`) against a store; :func:`plan` and :func:`sweep` list and
compute GLUE experiments directly (tests and the GPU check use them).

Scales: ``paper`` is the protocol on ``bert-base-cased`` (a GPU job); ``ci`` runs on ``all-MiniLM-L6-v2``
with fewer seeds and steps (the plans' ``notes`` list every departure); ``smoke`` uses a tiny random BERT
and 2 steps.

Command line::

    python -m compressible.sweeps run fewshot_evidence --scale ci --into ledger --executor processes
    python -m compressible.sweeps run fewshot_glue --scale paper --device cuda
    python -m compressible.sweeps run all --scale paper --device cuda --executor ray --gpus-per-run 1 \
        [--address auto|ray://host:10001] [--cpus-per-run N] [--root s3://bucket/results]
    python -m compressible.sweeps status fewshot_glue --scale ci      # (alias: list)
    python -m compressible.sweeps plan deep_lora_subspaces --scale paper
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import sys
from typing import Any, Sequence

import pandas as pd

from .executors import SweepInterrupted, SweepSummary, execute
from .experiments.contract import Execution
from .experiments.glue_runs import Experiment, as_store, describe, merge_experiments, shape
from .finetune.classify import RunConfig, Runner
from .ledger.coverage import planned_runs
from .scales import SCALES, check_scale
from .store import ResultStore, config_key

__all__ = ["CHAPTERS", "GLUE_CHAPTERS", "chapter_plan", "plan", "experiments_for", "status", "sweep", "run_chapter",
           "main"]

log = logging.getLogger(__name__)

GLUE_CHAPTERS = ("deep_lora_subspaces", "fewshot_glue", "fewshot_evidence")
"""The chapters whose runs are GLUE fine-tuning runs (:func:`plan` lists them as experiments)."""
CHAPTERS = (*GLUE_CHAPTERS, "generation", "completion", "compression")
"""Every chapter whose runs are stored; ``all`` on the command line means :data:`GLUE_CHAPTERS`."""
EXECUTORS = ("local", "processes", "ray")


def _module(chapter: str):
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; valid chapters are {CHAPTERS}")
    return importlib.import_module(f"compressible.experiments.{chapter}")


def chapter_plan(chapter: str, scale: str):
    """The frozen plan of ``chapter`` at ``scale``."""
    return _module(chapter).plan(check_scale(scale))


def plan(chapter: str, scale: str, parts: Sequence[str] | None = None,
         store: ResultStore | str | None = None) -> list[Experiment]:
    """The GLUE experiments of ``chapter`` at ``scale`` (optionally only some ``parts``), in build order.

    A chapter that tunes its rates lists its tuning grid, and its other runs at the chosen rates once
    ``store`` holds the grid (before that, and without a store: at the plan's own rates, for counting).
    """
    if chapter not in GLUE_CHAPTERS:
        raise ValueError(f"unknown GLUE chapter {chapter!r}; valid chapters are {GLUE_CHAPTERS}")
    module = _module(chapter)
    p = module.plan(check_scale(scale))
    if chapter == "fewshot_evidence":
        runs = planned_runs(chapter, scale, as_store(store) if store is not None else None)
        seeds: dict[tuple[str, str, Any], list[int]] = {}
        for r in runs:
            seeds.setdefault((r.part, r.method, r.config), []).append(r.seed)
        experiments = [Experiment(part, method, config, tuple(s)) for (part, method, config), s in seeds.items()]
        valid = ("tuning", "fig6", "peft", "fig8", "table1")
    else:
        experiments = module.planned(p, store)
        valid = module.PARTS
    if parts is not None:
        unknown = [x for x in parts if x not in valid]
        if unknown:
            raise ValueError(f"unknown parts {unknown} of {chapter!r}; valid parts are {valid}")
        experiments = [e for e in experiments if e.part in parts]
    return experiments


def experiments_for(chapter: str, scale: str, parts: Sequence[str] | None = None) -> list[tuple[RunConfig, tuple[int, ...]]]:
    """Unique ``(RunConfig, seeds)`` of ``chapter`` at ``scale``: what a sweep has to compute (a configuration
    shared by several parts, e.g. Fig. 7 and Fig. 6 at ``n = 256``, appears once with the union of their seeds)."""
    return merge_experiments(plan(chapter, scale, parts))


def status(chapter: str, scale: str, store: ResultStore | str | None = None) -> pd.DataFrame:
    """One row per planned configuration of ``chapter`` at ``scale``: its part and method, seeds stored and missing."""
    store = as_store(store)
    rows: dict[tuple[str, str, str], dict] = {}
    for run in planned_runs(chapter, check_scale(scale), store):
        row = rows.setdefault((run.part, run.method, run.key), {
            "part": run.part, "method": run.method, "config": type(run.config).__name__,
            **(shape(run.config) if isinstance(run.config, RunConfig) else {}),
            "stored": 0, "seeds": 0, "missing": [], "key": run.key})
        row["seeds"] += 1
        if store.has(run.config, run.seed):
            row["stored"] += 1
        else:
            row["missing"].append(run.seed)
    return pd.DataFrame(list(rows.values()))


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
    """Compute the missing runs of a list of GLUE ``experiments`` with a :class:`~compressible.finetune.runner.Runner`
    on ``device``, through ``executor`` (``"local"``, ``"processes"`` or ``"ray"``; ``execute_kwargs``:
    ``address``, ``gpus_per_run``, ``cpus_per_run``, ``max_retries``, ``workers``, see
    :func:`compressible.executors.execute`). A run that raises is recorded as failed and the sweep goes on;
    returns the summary. (A chapter's runs are computed by its own ``run()``: :func:`run_chapter`.)"""
    if experiments and isinstance(experiments[0], Experiment):
        experiments = merge_experiments(experiments)  # type: ignore[arg-type]
    _check_device(device, executor, execute_kwargs.get("gpus_per_run", 0))
    make_runner = functools.partial(Runner, device=device, progress=progress and executor == "local", threads=threads)
    make_runner()  # checks device and threads before anything runs
    return execute(experiments, make_runner, as_store(store), executor, threads=threads, progress=progress,
                   describe=describe, **execute_kwargs)


def run_chapter(chapter: str, scale: str, store: ResultStore | str | None = None, device: str = "cpu",
                execution: Execution | None = None):
    """``chapter``'s own ``run()`` at ``scale``: computes what ``store`` lacks and returns the chapter's runs."""
    module = _module(chapter)
    return module.run(check_scale(scale), as_store(store), device, execution=execution)


def _held(chapter: str, scale: str, store: ResultStore) -> int:
    return sum(store.has(r.config, r.seed) for r in planned_runs(chapter, scale, store))


def _print_plan(chapter: str, scale: str) -> None:
    runs = planned_runs(chapter, scale)
    frame = pd.DataFrame([{"part": r.part, "method": r.method, "config": type(r.config).__name__,
                           **(shape(r.config) if isinstance(r.config, RunConfig) else {}), "seed": r.seed,
                           "key": config_key(r.config)} for r in runs])
    print(f"{chapter} at {scale} scale: {len(runs)} runs, {frame.key.nunique() if len(frame) else 0} configurations")
    if len(frame):
        print(frame.groupby(["part", "method"], sort=False).agg(runs=("seed", "size"), configs=("key", "nunique"))
              .reset_index().to_string(index=False))
    notes = getattr(chapter_plan(chapter, scale), "notes", ())
    for note in notes:
        print(f"note: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m compressible.sweeps {run,status,plan} CHAPTER [--scale S] [--device D] [--root DIR | --into LEDGER]``."""
    parser = argparse.ArgumentParser(prog="compressible-sweep", description="Resumable sweeps of the book's stored runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = (("run", "compute what is missing", ()), ("status", "show stored/missing runs", ("list",)),
                ("plan", "print the planned runs", ()))
    for name, help_text, aliases in commands:
        cmd = sub.add_parser(name, help=help_text, aliases=aliases)
        cmd.add_argument("chapter", choices=(*CHAPTERS, "all"))
        cmd.add_argument("--scale", default="ci", choices=SCALES)
        cmd.add_argument("--root", default=None, help="result store folder (default: $COMPRESSIBLE_RESULTS or ./results)")
        cmd.add_argument("--into", default=None, metavar="LEDGER",
                         help="a ledger folder (e.g. ledger): store each run there as a sealed record with provenance")
        if name == "run":
            cmd.add_argument("--nice", type=int, default=10, help="lower this process's priority by N (default 10)")
            cmd.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
            cmd.add_argument("--no-progress", action="store_true")
            cmd.add_argument("--threads", type=int, default=None,
                             help="torch CPU threads per run (default: the plan's; --cpus-per-run on Ray)")
            cmd.add_argument("--workers", type=int, default=None,
                             help="local worker processes (default: the plan's; with --executor processes, every core)")
            cmd.add_argument("--executor", default="local", choices=EXECUTORS,
                             help="local: here, as the plan says (default); processes: one run per worker process; "
                                  "ray: one Ray task per run")
            cmd.add_argument("--address", default=None,
                             help="Ray cluster to join: auto (started by `ray start` here) or ray://host:10001 "
                                  "(default: start Ray on this machine)")
            cmd.add_argument("--gpus-per-run", type=float, default=0, help="GPUs of each Ray task (e.g. 1, 0.5)")
            cmd.add_argument("--cpus-per-run", type=float, default=1, help="CPUs of each Ray task")
            cmd.add_argument("--max-retries", type=int, default=3, help="reruns of a Ray task whose worker died")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    chapters = GLUE_CHAPTERS if args.chapter == "all" else (args.chapter,)
    if args.into is not None and args.root is not None:
        parser.error("give --root or --into, not both")
    if args.into is not None:
        from .ledger import Ledger

        store = Ledger(args.into)
    else:
        store = ResultStore(args.root)  # a folder or an fsspec URL (s3://..., gs://...)
    if args.command == "plan":
        for chapter in chapters:
            _print_plan(chapter, args.scale)
        return 0
    if args.command in ("status", "list"):
        missing_total = 0
        for chapter in chapters:
            table = status(chapter, args.scale, store)
            missing_total += int((table["seeds"] - table["stored"]).sum()) if len(table) else 0
            print(f"{chapter} at {args.scale} scale, store {store.url}")
            print(table.drop(columns=["key"]).to_string(index=False))
        print(f"{missing_total} runs missing")
        return 0
    if args.executor != "ray" and (args.address is not None or args.gpus_per_run):
        parser.error("--address and --gpus-per-run need --executor ray")
    try:
        _check_device(args.device, args.executor, args.gpus_per_run)
        workers = args.workers or ((os.cpu_count() or 1) if args.executor == "processes" else None)
        options = {} if args.executor != "ray" else {
            "address": args.address, "gpus_per_run": args.gpus_per_run, "cpus_per_run": args.cpus_per_run,
            "max_retries": args.max_retries}
        execution = Execution(progress=not args.no_progress, threads=args.threads, workers=workers,
                              executor=args.executor, options=options)
    except ValueError as err:
        parser.error(str(err))
    if args.nice:
        os.nice(args.nice)
    before = {chapter: _held(chapter, args.scale, store) for chapter in chapters}
    for chapter in chapters:
        try:
            run_chapter(chapter, args.scale, store, args.device, execution)
        except (KeyboardInterrupt, SweepInterrupted):
            print(f"interrupted: finished runs are stored in {store.url}")
            return 130
        except RuntimeError as err:  # runs that failed (recorded in the store), after the others finished
            print(f"{chapter}: {err}")
            return 1
    done = sum(_held(chapter, args.scale, store) - before[chapter] for chapter in chapters)
    print(f"{' and '.join(chapters)} at {args.scale} scale: {done} runs computed, store {store.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
