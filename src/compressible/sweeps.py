"""The GLUE experiments of the Deep LoRA chapters, as data, and a resumable way to run them.

An experiment is ``(RunConfig, seeds)``. :func:`plan` lists a chapter's experiments at a scale
(each tagged with the figure or table it feeds, ``part``, and a method ``label``);
:func:`experiments_for` merges them into unique ``(config, seeds)`` pairs; :func:`run_experiments`
runs them through a :class:`~compressible.store.ResultStore`, which writes each ``(config, seed)``
atomically -- a sweep killed half-way and started again recomputes only the runs that are missing.
:func:`results_frame` turns stored runs into a tidy table for plotting.

Chapters and their parts (protocols: ``paper-notes.md`` Sec. 4 and ``paper_numbers.json``):

``deep_lora_subspaces``
    ``fig2``: STS-B, the whole (filtered) training set, full-width Deep LoRA, lr 1e-4 decaying
    linearly to 1e-5, 2000 steps, spectra and top-8 left singular subspaces of every update at
    steps 0, 1, 10, 20, 30, 100, 500, 1000, 1500, 2000. ``d2`` (App. D.2): STS-B, n = 16, seed 0,
    200 steps, evaluation every 20: original (full width, lr 1e-4) vs compressed (rank 8, inner
    lr 1e-2, gamma 1e-2) vs random narrow (rank 8, lr 1e-4).
``fewshot_glue``
    ``table1``: 8 tasks, n = 1024, 1000 steps (SST-2: 600), 10 seeds, LoRA vs Deep LoRA.
    ``fig6``: STS-B, n in {16, 64, 256}, 500 steps, 20 seeds. ``fig7``: STS-B, n = 256, 500 steps,
    seed 0, numerical ranks of every update (the same runs as ``fig6`` at n = 256, seed 0).
    ``fig8``: STS-B, n = 16, r in {8, 16, 32, 64}, 200 steps, 5 seeds.

"LoRA" is the official code's vanilla LoRA (depth 2, ``A ~ N(0, 1)``, ``B = 0``, no ``alpha/r``,
lr 1e-4); "Deep LoRA" is the paper's compressed Deep LoRA (depth 3, rank 8, inner lr 1e-2,
gamma 1e-2). The authors' logged Table 1 / Fig. 6-8 runs used uncompressed full-width (Table 1,
Figs. 6-7) or random narrow (Fig. 8) depth-3 adapters at lr 1e-4; the chapters say so.

Scales: ``paper`` is the protocol above on ``google-bert/bert-base-cased`` (a GPU job);
``ci`` runs on ``sentence-transformers/all-MiniLM-L6-v2`` with fewer seeds and steps, sized to
fit the book's CPU budget, a trained classification head and ``gamma = 0.1`` (see :data:`PLANS`
and its ``notes``); ``smoke`` uses a tiny random BERT and 2 steps.

Command line::

    python -m compressible.sweeps run fewshot_glue --scale paper --device cuda
    python -m compressible.sweeps list fewshot_glue --scale ci
    python -m compressible.sweeps plan deep_lora_subspaces --scale paper
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import pandas as pd

from .finetune.glue import TASKS, check_task
from .hub import BACKBONES
from .scales import SCALES, check_scale
from .store import ResultStore, config_key
from .finetune.classify import TINY_BERT, RunConfig, Runner

__all__ = [
    "CHAPTERS",
    "FIG2_CHECKPOINTS",
    "ATTENTION_TARGETS",
    "PARTS",
    "METHOD_LABELS",
    "GluePlan",
    "PLANS",
    "Experiment",
    "plan",
    "experiments_for",
    "run_experiments",
    "run_chapter",
    "status",
    "results_frame",
    "load_runs",
    "main",
]

log = logging.getLogger(__name__)

CHAPTERS = ("deep_lora_subspaces", "fewshot_glue")

PARTS = {
    "deep_lora_subspaces": ("fig2", "d2"),
    "fewshot_glue": ("table1", "fig6", "fig7", "fig8"),
}
"""The figures and tables of each chapter, in the order they are built."""

METHOD_LABELS = {
    "lora": "LoRA",
    "compressed": "Deep LoRA",
    "full": "Deep LoRA (full width)",
    "random": "Deep LoRA (random narrow)",
}
"""Method name shown for each adapter kind."""

FIG2_CHECKPOINTS = (0, 1, 10, 20, 30, 100, 500, 1000, 1500, 2000)

ATTENTION_TARGETS = r"re:.*attention\.(self\.(query|key|value)|output\.dense)"
"""q, k, v and attention-output weights of every BERT block (full-width adapters at ci scale)."""


@dataclass(frozen=True)
class GluePlan:
    """Every knob of the two chapters at one scale (the ``paper`` instance is the protocol)."""

    backbone: str
    table1_tasks: tuple[str, ...]
    table1_seeds: tuple[int, ...]
    table1_steps: int
    table1_steps_sst2: int
    table1_n: int
    fig6_n: tuple[int, ...]
    fig6_seeds: tuple[int, ...]
    fig6_steps: int
    fig7_n: int
    fig7_steps: int
    fig8_ranks: tuple[int, ...]
    fig8_seeds: tuple[int, ...]
    fig8_steps: int
    fig8_n: int
    fig2_n: int | None
    fig2_steps: int
    fig2_checkpoints: tuple[int, ...]
    fig2_targets: str
    d2_n: int
    d2_steps: int
    d2_eval_every: int
    d2_targets: str
    eval_limit: int | None = None
    """Validation examples per evaluation (``None`` = the whole split)."""
    d2_eval_limit: int | None = None
    """Validation examples per evaluation in App. D.2, which evaluates every few steps."""
    train_head: bool = False
    """Train the classification head as well, at ``head_lr`` (the paper keeps it frozen at its random
    initialisation). Applies to every run of both chapters, so every method trains the same head."""
    head_lr: float | None = None
    """Learning rate of the head when ``train_head``."""
    deep_lr: float | None = None
    """Inner learning rate of compressed Deep LoRA (``None``: the App. D.2 value 1e-2)."""
    deep_gamma: float | None = None
    """Outer-to-inner learning-rate ratio of compressed Deep LoRA (``None``: the App. D.2 value 1e-2)."""
    notes: tuple[str, ...] = field(default=())
    """How this scale departs from the paper's protocol (for the chapters to print)."""

    def __post_init__(self) -> None:
        for task in self.table1_tasks:
            check_task(task)
        for name in ("table1_seeds", "fig6_seeds", "fig8_seeds", "fig6_n", "fig8_ranks", "table1_tasks"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if (self.head_lr is not None) != self.train_head:
            raise ValueError(f"head_lr={self.head_lr!r} needs train_head=True and train_head=True needs a head_lr "
                             f"(got train_head={self.train_head!r})")

    def method(self, adapter: str) -> dict:
        """``RunConfig`` keyword arguments of a method (``"lora"`` or ``"compressed"``) at this scale."""
        kwargs: dict = {"adapter": adapter}
        if adapter == "compressed":
            if self.deep_lr is not None:
                kwargs["lr"] = self.deep_lr
            if self.deep_gamma is not None:
                kwargs["gamma"] = self.deep_gamma
        return {**kwargs, **self.head()}

    def head(self) -> dict:
        """``RunConfig`` keyword arguments for the classification head at this scale."""
        return {"train_head": True, "head_lr": self.head_lr} if self.train_head else {}


PLANS: dict[str, GluePlan] = {
    "paper": GluePlan(
        backbone=BACKBONES["paper"],
        table1_tasks=TASKS,
        table1_seeds=tuple(range(10)),
        table1_steps=1000,
        table1_steps_sst2=600,
        table1_n=1024,
        fig6_n=(16, 64, 256),
        fig6_seeds=tuple(range(20)),
        fig6_steps=500,
        fig7_n=256,
        fig7_steps=500,
        fig8_ranks=(8, 16, 32, 64),
        fig8_seeds=tuple(range(5)),
        fig8_steps=200,
        fig8_n=16,
        fig2_n=None,
        fig2_steps=2000,
        fig2_checkpoints=FIG2_CHECKPOINTS,
        fig2_targets="attention-mlp",
        d2_n=16,
        d2_steps=200,
        d2_eval_every=20,
        d2_targets="attention-mlp",
    ),
    # ci: sized on this machine (2 CPU cores, 2 torch threads) for both chapters to take ~23 minutes.
    # Measured wall seconds per training step (batch 16): STS-B 0.5, RTE 1.2, MRPC 0.9, CoLA 0.22,
    # SST-2 0.3; an evaluation of <= 500 examples 2-7. Predicted: Table 1 ~9 min, Figs. 6-8 ~11 min
    # (18 STS-B runs of ~38 s), deep_lora_subspaces ~4 min.
    # Calibration runs (STS-B, n = 1024, seed 0, MiniLM) that fixed the departures listed in `notes`:
    # frozen random head: LoRA Pearson -0.06 after 120 steps at lr 1e-4 (-0.09 at 1e-3), Deep LoRA -0.07;
    # trained head (lr 1e-2): LoRA 0.53 after 50 steps and 0.74 after 100; Deep LoRA with the App. D.2
    # rates (inner 1e-2, gamma 1e-2) -0.06 after 100 steps, with gamma 0.1 0.29 after 80 steps.
    # With 60 steps RTE, MRPC and CoLA stayed at chance for both methods (2 seeds), so Table 1 spends
    # 40 steps and the STS-B figures, where both methods learn at n = 16, get 60.
    "ci": GluePlan(
        backbone=BACKBONES["ci"],
        table1_tasks=("stsb", "rte", "mrpc", "cola", "sst2"),
        table1_seeds=(0, 1),
        table1_steps=40,
        table1_steps_sst2=40,
        table1_n=1024,
        fig6_n=(16, 256),
        fig6_seeds=(0, 1, 2),
        fig6_steps=60,
        fig7_n=256,
        fig7_steps=60,
        fig8_ranks=(8, 32),
        fig8_seeds=(0, 1, 2),
        fig8_steps=60,  # = fig6_steps, so r = 8 reuses Fig. 6's n = 16 runs
        fig8_n=16,
        fig2_n=None,
        fig2_steps=50,
        fig2_checkpoints=(0, 1, 5, 10, 20, 30, 40, 50),
        fig2_targets=ATTENTION_TARGETS,
        d2_n=16,
        d2_steps=60,
        d2_eval_every=20,
        d2_targets=ATTENTION_TARGETS,
        eval_limit=500,
        d2_eval_limit=500,
        train_head=True,
        head_lr=1e-2,
        deep_gamma=0.1,
        notes=(
            "backbone all-MiniLM-L6-v2 (6 layers, hidden 384, a sentence-embedding checkpoint) instead of bert-base-cased",
            "the classification head trains (lr 1e-2) for every method, where the paper keeps it frozen at its random "
            "initialisation: this checkpoint's [CLS] pooler was never trained for a task (weights of std 0.009), so a "
            "frozen random head outputs almost nothing, and on STS-B the adapters only learn to shift the mean "
            "(Pearson stays at chance after 120 steps)",
            "compressed Deep LoRA trains its outer factors at gamma = 0.1 times the inner rate (paper: 0.01); with 0.01 "
            "it did not leave chance within 100 steps here",
            "Table 1: 5 of the 8 tasks, 2 seeds, 40 steps instead of 10 seeds and 1000 (SST-2 600) steps; "
            "RTE, MRPC and CoLA need far more steps than a CPU build can give them and stay near chance",
            "Figs. 6-8: n in {16, 256}, r in {8, 32}, 3 seeds, 60 steps instead of 20/5 seeds and 500/200 steps",
            "Fig. 2 and App. D.2: full-width adapters on the attention weights only (q, k, v, attention output; "
            "24 matrices), 50 and 60 steps; the MLP weights' 1536-wide factorisations cost too much on a CPU",
            "evaluation on a fixed subset of at most 500 validation examples (the same for every run)",
        ),
    ),
    "smoke": GluePlan(
        backbone=TINY_BERT,
        table1_tasks=("stsb", "rte"),
        table1_seeds=(0,),
        table1_steps=2,
        table1_steps_sst2=2,
        table1_n=32,
        fig6_n=(16, 32),
        fig6_seeds=(0,),
        fig6_steps=2,
        fig7_n=32,
        fig7_steps=2,
        fig8_ranks=(2, 4),
        fig8_seeds=(0,),
        fig8_steps=2,
        fig8_n=16,
        fig2_n=32,
        fig2_steps=3,
        fig2_checkpoints=(0, 1, 3),
        fig2_targets="attention-mlp",
        d2_n=16,
        d2_steps=2,
        d2_eval_every=1,
        d2_targets="attention-mlp",
        eval_limit=32,
        d2_eval_limit=32,
        notes=("a tiny random BERT and 2-3 steps: checks that the code runs, measures nothing",),
    ),
}
"""The experiment plan of each scale."""


@dataclass(frozen=True)
class Experiment:
    """One configuration of a chapter, the seeds it runs at, and what it is for."""

    part: str
    """The figure or table it feeds (see :data:`PARTS`)."""
    label: str
    """The method's name in plots and tables."""
    config: RunConfig
    seeds: tuple[int, ...]


def _check_chapter(chapter: str) -> str:
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; valid chapters are {CHAPTERS}")
    return chapter


_METHODS = ("lora", "compressed")


def _fewshot(p: GluePlan) -> list[Experiment]:
    out = []
    for task in p.table1_tasks:
        steps = p.table1_steps_sst2 if task == "sst2" else p.table1_steps
        for method in _METHODS:
            config = RunConfig(task, n_train=p.table1_n, steps=steps, backbone=p.backbone, eval_limit=p.eval_limit, **p.method(method))
            out.append(Experiment("table1", METHOD_LABELS[method], config, p.table1_seeds))
    stsb = {"task": "stsb", "backbone": p.backbone, "eval_limit": p.eval_limit, "spectrum_top": 10}
    for n in p.fig6_n:
        for method in _METHODS:
            config = RunConfig(n_train=n, steps=p.fig6_steps, **stsb, **p.method(method))
            out.append(Experiment("fig6", METHOD_LABELS[method], config, p.fig6_seeds))
    for method in _METHODS:  # identical to a fig6 run when fig7_n is one of fig6_n: computed once
        config = RunConfig(n_train=p.fig7_n, steps=p.fig7_steps, **stsb, **p.method(method))
        out.append(Experiment("fig7", METHOD_LABELS[method], config, (0,)))
    for rank in p.fig8_ranks:
        for method in _METHODS:
            config = RunConfig(n_train=p.fig8_n, steps=p.fig8_steps, rank=rank, **stsb, **p.method(method))
            out.append(Experiment("fig8", METHOD_LABELS[method], config, p.fig8_seeds))
    return out


def _subspaces(p: GluePlan) -> list[Experiment]:
    fig2 = RunConfig(
        "stsb",
        n_train=p.fig2_n,
        steps=p.fig2_steps,
        adapter="full",
        targets=p.fig2_targets,
        lr=1e-4,
        lr_end=1e-5,
        backbone=p.backbone,
        eval_limit=p.eval_limit,
        spectrum_top=10,
        checkpoints=p.fig2_checkpoints,
        checkpoint_rank=8,
        **p.head(),
    )
    d2 = {
        "task": "stsb",
        "n_train": p.d2_n,
        "steps": p.d2_steps,
        "eval_every": p.d2_eval_every,
        "backbone": p.backbone,
        "targets": p.d2_targets,
        "eval_limit": p.d2_eval_limit,
    }
    return [
        Experiment("fig2", METHOD_LABELS["full"], fig2, (0,)),
        Experiment("d2", "original", RunConfig(adapter="full", lr=1e-4, **d2, **p.head()), (0,)),
        Experiment("d2", "compressed", RunConfig(rank=8, **d2, **p.method("compressed")), (0,)),
        Experiment("d2", "random", RunConfig(adapter="random", rank=8, lr=1e-4, **d2, **p.head()), (0,)),
    ]


def plan(chapter: str, scale: str, parts: Sequence[str] | None = None) -> list[Experiment]:
    """The experiments of ``chapter`` at ``scale`` (optionally only some ``parts``), in build order."""
    _check_chapter(chapter)
    p = PLANS[check_scale(scale)]
    experiments = _subspaces(p) if chapter == "deep_lora_subspaces" else _fewshot(p)
    if parts is not None:
        unknown = [x for x in parts if x not in PARTS[chapter]]
        if unknown:
            raise ValueError(f"unknown parts {unknown} of {chapter!r}; valid parts are {PARTS[chapter]}")
        experiments = [e for e in experiments if e.part in parts]
    return experiments


def _merge(experiments: Iterable[Experiment]) -> list[tuple[RunConfig, tuple[int, ...]]]:
    merged: dict[str, tuple[RunConfig, list[int]]] = {}
    for e in experiments:
        config, seeds = merged.setdefault(config_key(e.config), (e.config, []))
        seeds.extend(s for s in e.seeds if s not in seeds)
    return [(config, tuple(seeds)) for config, seeds in merged.values()]


def experiments_for(chapter: str, scale: str, parts: Sequence[str] | None = None) -> list[tuple[RunConfig, tuple[int, ...]]]:
    """Unique ``(RunConfig, seeds)`` of ``chapter`` at ``scale``: what a sweep has to compute.

    Configurations shared between parts (Fig. 7 reuses Fig. 6's n = 256 runs) appear once, with
    the union of their seeds.
    """
    return _merge(plan(chapter, scale, parts))


def _store(store: ResultStore | str | None) -> ResultStore:
    return store if isinstance(store, ResultStore) else ResultStore(store)


def _shape(config: RunConfig) -> dict:
    """``n_train`` and ``rank`` for display: ``"all"`` for the whole training set, ``"full"`` width."""
    return {
        "n_train": "all" if config.n_train is None else config.n_train,
        "rank": "full" if config.adapter == "full" else config.rank,
    }


def _describe(config: RunConfig) -> str:
    n = "all" if config.n_train is None else config.n_train
    return f"{config.task} {config.adapter} r={config.rank} n={n} steps={config.steps}"


def run_experiments(
    experiments: Sequence[tuple[RunConfig, Sequence[int]]] | Sequence[Experiment],
    store: ResultStore | str | None = None,
    device: str = "cpu",
    progress: bool = True,
    fn=None,
) -> int:
    """Compute every missing ``(config, seed)`` of ``experiments`` into ``store``; returns how many ran.

    ``experiments`` are ``(config, seeds)`` pairs or :class:`Experiment` s (merged first).
    ``fn(config, seed) -> dict`` defaults to a :class:`~compressible.finetune.classify.Runner` on ``device``.
    Finished runs are never recomputed; a run that raises stops the sweep, keeping everything
    finished before it.
    """
    if experiments and isinstance(experiments[0], Experiment):
        experiments = _merge(experiments)  # type: ignore[arg-type]
    store = _store(store)
    fn = fn or Runner(device=device, progress=progress)
    ran = 0
    for config, seeds in experiments:
        seeds = list(seeds)
        missing = [s for s in seeds if not store.has(config, s)]
        if not missing:
            continue
        log.info("%s: %d of %d seeds to run", _describe(config), len(missing), len(seeds))
        store.run(config, seeds, fn, progress=progress, desc=_describe(config))
        ran += len(missing)
    return ran


def status(chapter: str, scale: str, store: ResultStore | str | None = None) -> pd.DataFrame:
    """One row per experiment of ``chapter`` at ``scale``: what it is, seeds stored and missing."""
    store = _store(store)
    rows = []
    for e in plan(chapter, scale):
        c = e.config
        done = [s for s in e.seeds if store.has(c, s)]
        rows.append({
            "part": e.part, "method": e.label, "task": c.task, **_shape(c), "steps": c.steps,
            "stored": len(done), "seeds": len(e.seeds),
            "missing": [s for s in e.seeds if s not in done], "key": config_key(c),
        })
    return pd.DataFrame(rows)


def load_runs(experiment: Experiment, store: ResultStore | str | None = None) -> dict[int, dict]:
    """``{seed: stored result}`` of an experiment (every seed must be stored)."""
    store = _store(store)
    return {s: store.load(experiment.config, s) for s in experiment.seeds}


def results_frame(
    experiments: Sequence[Experiment], store: ResultStore | str | None = None, missing: str = "raise"
) -> pd.DataFrame:
    """A tidy table of stored runs: one row per ``(experiment, seed)``.

    Columns: ``part, method, adapter, task, n_train, rank, steps, seed, metric, value`` (the final
    value of the paper's metric), ``final_<name>`` for every final metric, ``wall_time``,
    ``trainable_params``, ``key``. ``missing="raise"`` (default) fails on a run not yet stored and
    names it; ``"skip"`` leaves it out.
    """
    if missing not in ("raise", "skip"):
        raise ValueError(f"missing must be 'raise' or 'skip', got {missing!r}")
    store = _store(store)
    rows = []
    for e in experiments:
        c = e.config
        for seed in e.seeds:
            if not store.has(c, seed):
                if missing == "raise":
                    raise KeyError(
                        f"{e.part} {e.label} ({_describe(c)}) seed {seed} is not stored in {store.root}; "
                        "run the sweep first (python -m compressible.sweeps run ...)"
                    )
                continue
            r = store.load(c, seed)
            row = {
                "part": e.part, "method": e.label, "adapter": c.adapter, "task": c.task, "n_train": c.n_train,
                "rank": c.rank, "steps": c.steps, "seed": seed, "metric": r["metric"], "value": r["final"][r["metric"]],
            }
            row.update({f"final_{k}": v for k, v in r["final"].items() if k != "step"})
            row.update({"wall_time": r["wall_time"], "trainable_params": r["trainable_params"], "key": config_key(c)})
            rows.append(row)
    return pd.DataFrame(rows)


def run_chapter(
    chapter: str,
    scale: str,
    device: str = "cpu",
    store: ResultStore | str | None = None,
    parts: Sequence[str] | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> pd.DataFrame:
    """Run what is missing of ``chapter`` at ``scale`` and return :func:`results_frame` of it.

    ``threads`` sets torch's CPU threads during each run (see :class:`~compressible.finetune.classify.Runner`).
    """
    experiments = plan(chapter, scale, parts)
    store = _store(store)
    run_experiments(experiments, store, progress=progress, fn=Runner(device=device, progress=progress, threads=threads))
    return results_frame(experiments, store)


def _print_plan(chapter: str, scale: str) -> None:
    p = PLANS[scale]
    frame = pd.DataFrame([
        {"part": e.part, "method": e.label, "task": e.config.task, **_shape(e.config),
         "steps": e.config.steps, "lr": e.config.lr, "seeds": len(e.seeds), "backbone": e.config.backbone}
        for e in plan(chapter, scale)
    ])
    print(f"{chapter} at {scale} scale ({len(experiments_for(chapter, scale))} unique configs)")
    print(frame.to_string(index=False))
    for note in p.notes:
        print(f"note: {note}")


def main(argv: Sequence[str] | None = None) -> int:
    """``compressible-sweep {run,list,plan} CHAPTER [--scale S] [--device D] [--root DIR] [--parts P,...]``."""
    parser = argparse.ArgumentParser(prog="compressible-sweep", description="Resumable GLUE sweeps of the Deep LoRA chapters.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("run", "compute what is missing"), ("list", "show stored/missing runs"), ("plan", "print the experiments")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("chapter", choices=(*CHAPTERS, "all"))
        cmd.add_argument("--scale", default="ci", choices=SCALES)
        cmd.add_argument("--root", default=None, help="result store folder (default: $COMPRESSIBLE_RESULTS or ./results)")
        if name == "run":
            cmd.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
            cmd.add_argument("--parts", default=None, help="comma-separated parts, e.g. table1,fig6")
            cmd.add_argument("--no-progress", action="store_true")
            cmd.add_argument("--threads", type=int, default=None, help="torch CPU threads per run (default: torch's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    chapters = CHAPTERS if args.chapter == "all" else (args.chapter,)
    store = ResultStore(args.root)
    if args.command == "plan":
        for chapter in chapters:
            _print_plan(chapter, args.scale)
        return 0
    if args.command == "list":
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
    try:
        runner = Runner(device=args.device, progress=not args.no_progress, threads=args.threads)
    except ValueError as err:
        parser.error(str(err))
    for chapter in chapters:
        ran = run_experiments(plan(chapter, args.scale, parts), store, progress=not args.no_progress, fn=runner)
        print(f"{chapter} at {args.scale} scale: {ran} runs computed, store {store.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
