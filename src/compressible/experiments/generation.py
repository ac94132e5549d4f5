"""Few-shot generation on E2E NLG (paper App. C): vanilla LoRA vs compressed Deep LoRA.

With 16 training pairs per seed, adapters turn a meaning representation into one sentence
(:mod:`compressible.finetune.generate` trains and decodes one run). This module holds the
experiment: its frozen plan per scale (:data:`PLANS`: one :class:`~compressible.finetune.generate.GenerationConfig`
per method, the seeds and the scale's notes), :class:`GenerationExperiment`, which runs
``(config, seed)`` pairs through the result store, :func:`run`, :func:`summarise` (a typed
:class:`GenerationSummary`), the chapter's tables and its plots.

The paper publishes no numbers for this experiment, so the summary holds ours only.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict

from ..finetune.backbones import Backbone, load_backbone
from ..finetune.e2e import E2E_HUB_ID, EvalSet, evaluation_set
from ..finetune.generate import AdapterSpec, GenerationConfig, run_generation
from ..finetune.metrics import NLG_METRICS, paired_differences
from ..hub import load_dataset
from ..scales import check_scale
from ..store import ResultStore
from ..summaries import Summary

__all__ = [
    "CHAPTER",
    "VANILLA_LABEL",
    "DEEP_LABEL",
    "MODEL_NAMES",
    "GenerationPlan",
    "PLANS",
    "plan",
    "GenerationData",
    "GenerationExperiment",
    "GenerationResults",
    "run",
    "metrics_frame",
    "metric_columns",
    "paired_frame",
    "summary_table",
    "examples_table",
    "PairedMetric",
    "GenerationSummary",
    "summarise",
    "plot_paired",
    "plot_losses",
]

log = logging.getLogger(__name__)

CHAPTER = "generation"
VANILLA_LABEL = "vanilla LoRA"
DEEP_LABEL = "Deep LoRA"

MODEL_NAMES = {"t5-base": "T5-base", "smollm2": "SmolLM2-135M-Instruct, 4-bit GGUF", "tiny-llama": "tiny random LLaMA"}
"""How the summary names each backbone's model."""


# ------------------------------------------------------------------------------------------------
# plans
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationPlan:
    """The configs (one per method, same everything else) and seeds of one scale."""

    scale: str
    configs: Mapping[str, GenerationConfig]
    """``{method label: config}``: vanilla LoRA first, then Deep LoRA."""
    seeds: tuple[int, ...]
    notes: str = ""
    """How this scale departs from App. C (for the chapter's settings line)."""
    reading: str = ""
    """What this scale's numbers can and cannot show (for the chapter's closing paragraph)."""
    workers: int = 1
    """Local processes computing the runs side by side on a CPU, one torch thread each (1: one after another in
    this process, with torch's threads)."""

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {self.workers!r}")

    @property
    def methods(self) -> list[str]:
        return list(self.configs)


def _plan(scale: str, seeds: tuple[int, ...], notes: str, reading: str = "", *, vanilla_lr: float = 1e-4,
          workers: int = 1, **common) -> GenerationPlan:
    """Vanilla LoRA (depth 2, rank 8, at ``vanilla_lr``) and compressed Deep LoRA (depth 3, rank 8, App. D.2 rates:
    inner 1e-2, outer ``gamma * lr`` = 1e-4), otherwise the same ``common`` config (every dense weight, 16 pairs)."""
    vanilla = AdapterSpec(VANILLA_LABEL, "lora", 2, rank=8, lr=vanilla_lr)
    deep = AdapterSpec(DEEP_LABEL, "compressed", 3, rank=8, lr=1e-2, gamma=1e-2)
    configs = {spec.label: GenerationConfig(adapter=spec, **common) for spec in (vanilla, deep)}
    return GenerationPlan(scale, configs, seeds, notes, reading, workers)


PLANS: dict[str, GenerationPlan] = {
    # App. C: T5-base, 400 steps, batch 16, beam search with 4 beams, at most 64 tokens, 10 seeds, every validation MR.
    "paper": _plan("paper", tuple(range(10)), "App. C protocol; Deep LoRA rates from App. D.2 (inner 1e-2, outer 1e-4)",
                   backbone="t5-base", steps=400, batch_size=16, num_beams=4, max_new_tokens=64, n_eval=None),
    # ci: SmolLM2-135M-Instruct (4-bit GGUF offline), greedy decoding on a fixed subset of validation MRs, for a budget
    # of 6 minutes on 2 CPU cores (3 seeds measured 9.2 CPU-minutes: over the budget).
    "ci": _plan(
        "ci", (0, 1), "SmolLM2-135M-Instruct, fewer steps and seeds, greedy decoding on a fixed MR subset, two runs at a "
        "time with one torch thread each, training steps under bf16 autocast where the CPU has native bf16 (adapters "
        "and Adam's state float32, decoding float32)",
        "These are ci-scale numbers on a different, 4-bit-quantised decoder-only model with far fewer steps than "
        "App. C, and the paper reports no numbers to compare them with; they show that the method runs end to end on "
        "a real generation task, not that either method wins on T5-base. ",
        backbone="smollm2", steps=40, batch_size=2, num_beams=1, max_new_tokens=40, n_eval=16, eval_batch_size=16,
        autocast="auto", workers=2,  # two one-thread runs side by side on the 2 cores
    ),
    # smoke: a tiny random LLaMA and a handful of steps; seconds.
    "smoke": _plan(
        "smoke", (0, 1), "tiny random LLaMA: checks the pipeline, not the method",
        "The smoke model is random and tiny: its scores are meaningless and only show that the pipeline runs. ",
        vanilla_lr=1e-3, backbone="tiny-llama", steps=4, batch_size=8, num_beams=1, max_new_tokens=12, n_eval=8,
        eval_batch_size=8, autocast="bf16", workers=2,  # so that the test suite's smoke build runs the ci scale's way
    ),
}
"""The two methods (vanilla LoRA, compressed Deep LoRA) and seeds at each scale."""


def plan(scale: str) -> GenerationPlan:
    """The experiment's plan at ``scale``."""
    return PLANS[check_scale(scale)]


# ------------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------------


@dataclass
class GenerationData:
    """The training rows few-shot sets are drawn from and the evaluation set (unique MRs, all references)."""

    train_rows: Any
    eval_set: EvalSet


class GenerationExperiment:
    """Runs ``(config, seed)`` pairs through a :class:`~compressible.store.ResultStore`, loading each backbone at most once.

    Nothing is loaded when every requested run is already stored. Each run trains adapters on a
    deep copy of the base model, so runs are independent and the base weights stay untouched.
    """

    def __init__(self, store: ResultStore | None = None, *, device: str | torch.device = "cpu", progress: bool = True):
        self.store = store if store is not None else ResultStore()
        self.device = torch.device(device)
        self.progress = progress
        self.backbones: dict[str, Backbone] = {}
        """Loaded backbones by name (a test may put a tiny one here)."""
        self.splits: Mapping[str, Any] | None = None
        """The E2E splits once loaded (a test may set small stand-ins)."""
        self._data: dict[tuple, GenerationData] = {}

    def backbone(self, name: str) -> Backbone:
        """The loaded backbone ``name`` (loaded on first use)."""
        if name not in self.backbones:
            log.info("loading backbone %s", name)
            self.backbones[name] = load_backbone(name, device=self.device)
        return self.backbones[name]

    def data(self, config: GenerationConfig) -> GenerationData:
        """Training rows and the evaluation set of ``config``."""
        key = (config.eval_split, config.n_eval)
        if key not in self._data:
            if self.splits is None:
                self.splits = load_dataset(E2E_HUB_ID)
            self._data[key] = GenerationData(self.splits["train"], evaluation_set(self.splits[config.eval_split], config.n_eval))
        return self._data[key]

    def missing(self, p: GenerationPlan) -> int:
        """How many ``(config, seed)`` runs of ``p`` the store does not hold."""
        return sum(not self.store.has(c, s) for c in p.configs.values() for s in p.seeds)

    def run(self, config: GenerationConfig, seeds: Sequence[int]) -> list[dict]:
        """Stored or freshly computed results of ``config`` for every seed, in seed order."""

        def compute(cfg: GenerationConfig, seed: int) -> dict:
            return run_generation(cfg, seed, self.backbone(cfg.backbone), self.data(cfg), device=self.device)

        return self.store.run(config, list(seeds), compute, progress=self.progress, desc=config.adapter.label)

    def run_plan(self, p: GenerationPlan) -> dict[str, list[dict]]:
        """``{method label: results per seed}`` for every config of ``p``."""
        return {label: self.run(config, p.seeds) for label, config in p.configs.items()}


@dataclass(frozen=True, eq=False)
class GenerationResults:
    """The stored runs of one scale and the evaluation set they were scored on."""

    scale: str
    plan: GenerationPlan
    runs: dict[str, list[dict]]
    """``{method label: stored result per seed}`` (see :func:`~compressible.finetune.generate.run_generation`)."""
    eval_set: EvalSet
    computed: int = 0
    """How many runs this call computed (the others came from the store)."""


def _describe(config: GenerationConfig) -> str:
    return config.adapter.label


class _Worker:
    """``run_one(config, seed)`` of :func:`compressible.executors.execute`: one run, computed (not stored) by a
    :class:`GenerationExperiment` of this process, which loads the backbone and the data on first use."""

    def __init__(self, device: str = "cpu"):
        self.experiment = GenerationExperiment(device=device, progress=False)

    def __call__(self, config: GenerationConfig, seed: int) -> dict:
        e = self.experiment
        return run_generation(config, seed, e.backbone(config.backbone), e.data(config), device=e.device)


def run(scale: str, device: str | torch.device = "cpu", store: ResultStore | None = None,
        progress: bool = True) -> GenerationResults:
    """Run what the result store lacks of the experiment at ``scale``, then load every run.

    On a CPU with the plan's ``workers > 1``, the missing runs are computed in that many local processes
    (:func:`compressible.executors.execute`, one torch thread each) before everything is loaded.
    """
    p = plan(scale)
    experiment = GenerationExperiment(store, device=device, progress=progress)
    computed = experiment.missing(p)
    if computed and p.workers > 1 and experiment.device.type == "cpu":
        from ..executors import execute

        summary = execute([(c, p.seeds) for c in p.configs.values()], functools.partial(_Worker, str(experiment.device)),
                          experiment.store, executor="processes", workers=p.workers, threads=1, progress=progress,
                          desc="generation runs", describe=_describe)
        if summary.failed:
            raise RuntimeError(f"{len(summary.failed)} run(s) failed (recorded in {experiment.store.url}): "
                               + "; ".join(str(f) for f in summary.failed))
    runs = experiment.run_plan(p)
    return GenerationResults(scale, p, runs, experiment.data(p.configs[DEEP_LABEL]).eval_set, computed)


# ------------------------------------------------------------------------------------------------
# tidy results and tables
# ------------------------------------------------------------------------------------------------


def metrics_frame(results: Mapping[str, Sequence[dict]]) -> pd.DataFrame:
    """One row per (method, seed) with every metric, the final training loss and the run times."""
    rows = []
    for label, runs in results.items():
        for r in runs:
            rows.append({
                "method": label,
                "seed": r["_seed"],
                **r["metrics"],
                "final_loss": r["train_loss"][-1],
                "trainable_parameters": r["trainable_parameters"],
                "train_seconds": r["seconds"]["train"],
                "eval_seconds": r["seconds"]["eval"],
            })
    return pd.DataFrame(rows)


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The NLG metrics present in ``frame`` (METEOR only when WordNet was installed)."""
    return [m for m in (*NLG_METRICS, "meteor") if m in frame.columns]


def paired_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Per seed, Deep LoRA - vanilla LoRA for every metric (the two share the few-shot set of a seed)."""
    return paired_differences(frame, DEEP_LABEL, VANILLA_LABEL, metric_columns(frame))


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean ± standard deviation over seeds of every metric, one row per method."""
    cols = metric_columns(frame) + ["final_loss"]
    grouped = frame.groupby("method", sort=False)[cols]
    mean, std = grouped.mean(), grouped.std(ddof=1).fillna(0.0)
    return pd.DataFrame({c: [f"{m:.2f} ± {s:.2f}" for m, s in zip(mean[c], std[c])] for c in cols}, index=mean.index)


def examples_table(results: Mapping[str, Sequence[dict]], references: EvalSet | None = None, *,
                   seed: int = 0, n: int = 4) -> pd.DataFrame:
    """The first ``n`` evaluated MRs with each method's sentence (for ``seed``) and one reference."""
    runs = {label: next(r for r in runs if r["_seed"] == seed) for label, runs in results.items()}
    mrs = next(iter(runs.values()))["mrs"][:n]
    table: dict[str, list[str]] = {"MR": mrs}
    for label, r in runs.items():
        table[label] = r["predictions"][:n]
    if references is not None:
        lookup = dict(zip(references.mrs, references.references))
        table["a human reference"] = [lookup[mr][0] for mr in mrs]
    return pd.DataFrame(table)


# ------------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------------


class PairedMetric(BaseModel):
    """Deep LoRA - vanilla LoRA in one metric (points), over the seeds both ran."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: float
    """Mean over seeds of the paired difference."""
    deep_wins: int
    """Seeds on which Deep LoRA scored higher."""
    seeds: int
    differences: dict[int, float]
    """The paired difference of every seed."""


class GenerationSummary(Summary):
    """Headline numbers of the Few-shot generation chapter (App. C); the paper publishes none to compare."""

    chapter: ClassVar[str] = CHAPTER
    backbone: str
    """Key of the generator in :data:`compressible.finetune.backbones.BACKBONES`."""
    model: str
    """The model in words, e.g. ``"SmolLM2-135M-Instruct, 4-bit GGUF"``."""
    steps: int
    seeds: int
    eval_mrs: int
    """Unique MRs evaluated (each against all of its references)."""
    bleu_gain: float
    """Mean paired BLEU difference Deep LoRA - vanilla LoRA (= ``paired["bleu"].mean``)."""
    vanilla: dict[str, float]
    """Mean over seeds of every metric (BLEU, ROUGE-1/2/L, METEOR when available), vanilla LoRA."""
    deep: dict[str, float]
    """The same for Deep LoRA."""
    paired: dict[str, PairedMetric]
    """Per metric, the paired per-seed differences Deep LoRA - vanilla LoRA."""
    loss_window: int
    """Steps averaged for the first and last training losses below."""
    first_loss: dict[str, float]
    """Per method, mean training loss over the first ``loss_window`` steps (all seeds)."""
    last_loss: dict[str, float]
    """Per method, mean training loss over the last ``loss_window`` steps (all seeds)."""


def summarise(results: GenerationResults) -> GenerationSummary:
    """Every number the chapter reports, from the stored runs (pure: nothing is loaded)."""
    cfg = results.plan.configs[DEEP_LABEL]
    frame = metrics_frame(results.runs)
    diff = paired_frame(frame)
    metrics = [m for m in metric_columns(frame) if m in diff.columns]
    means = frame.groupby("method", sort=False)[metrics].mean()
    window = max(1, cfg.steps // 8)
    return GenerationSummary(
        scale=results.scale,
        backbone=cfg.backbone,
        model=MODEL_NAMES.get(cfg.backbone, cfg.backbone),
        steps=cfg.steps,
        seeds=len(results.plan.seeds),
        eval_mrs=len(results.eval_set),
        bleu_gain=float(diff["bleu"].mean()),
        vanilla={m: float(means.loc[VANILLA_LABEL, m]) for m in metrics},
        deep={m: float(means.loc[DEEP_LABEL, m]) for m in metrics},
        paired={m: PairedMetric(mean=float(diff[m].mean()), deep_wins=int((diff[m] > 0).sum()), seeds=len(diff),
                                differences={int(s): float(v) for s, v in zip(diff["seed"], diff[m])})
                for m in metrics},
        loss_window=window,
        first_loss={label: float(np.mean([r["train_loss"][:window] for r in runs])) for label, runs in results.runs.items()},
        last_loss={label: float(np.mean([r["train_loss"][-window:] for r in runs])) for label, runs in results.runs.items()},
    )


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------

METRIC_NAMES = {"bleu": "BLEU", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "meteor": "METEOR",
                "final_loss": "final training loss"}
"""How tables and figures name each metric."""


def plot_paired(summary: GenerationSummary):
    """Every seed's paired difference Deep LoRA - vanilla LoRA and its mean, per metric."""
    import matplotlib.pyplot as plt

    from ..scales import scale_label

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, (metric, p) in enumerate(summary.paired.items()):
        d = list(p.differences.values())
        ax.scatter(k + np.linspace(-0.25, 0.25, len(d)), d, color="C0", zorder=3, label="one seed" if k == 0 else None)
        ax.hlines(p.mean, k - 0.35, k + 0.35, color="C3", label="mean" if k == 0 else None)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(summary.paired)), [METRIC_NAMES[m] for m in summary.paired])
    ax.set_ylabel("Deep LoRA − vanilla LoRA (points)")
    ax.set_title(f"Paired differences per seed ({scale_label(summary.scale)}, {summary.seeds} seeds)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def plot_losses(results: GenerationResults):
    """The training loss of every run, one colour per method."""
    import matplotlib.pyplot as plt

    from ..scales import scale_label

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, (label, runs) in enumerate(results.runs.items()):
        for j, r in enumerate(runs):
            ax.plot(np.arange(1, len(r["train_loss"]) + 1), r["train_loss"], color=f"C{k}", alpha=0.7,
                    label=label if j == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(f"Training loss, every seed ({scale_label(results.scale)})")
    ax.legend()
    fig.tight_layout()
    return fig
