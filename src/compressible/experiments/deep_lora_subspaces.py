"""Deep LoRA and its invariant subspaces (paper Sec. 4, Fig. 2 and App. D.2).

- **Fig. 2**: STS-B, the whole (filtered) training set, full-width Deep LoRA, lr 1e-4 decaying
  linearly to 1e-5, spectra and top-8 left singular subspaces of every update at checkpoints:
  are the final updates low-rank, and do their subspaces settle early?
- **App. D.2**: STS-B, n = 16, seed 0, evaluation every few steps: the original (full width,
  lr 1e-4) vs compressed (rank 8, inner lr 1e-2, gamma 1e-2) vs random narrow (rank 8, lr 1e-4).

:data:`PLANS` holds the frozen plan of each scale; :func:`run` runs what the result store lacks
and loads the rest; :func:`summarise` computes every statistic the chapter shows and the
scorecard judges (:class:`DeepLoraSubspacesSummary`); the ``*_table`` and ``plot_*`` functions
build the chapter's tables and figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from ..deeplora import DeepLoRAConfig
from ..finetune.backbones import TINY_BERT
from ..finetune.classify import RunConfig
from ..reference import PROVENANCE, paper_value
from ..scales import check_scale, scale_label
from ..store import ResultStore
from ..summaries import Summary
from .contract import Execution
from .glue_runs import (
    ATTENTION_TARGETS,
    GLUE_METHODS,
    METHOD_LABELS,
    Experiment,
    GlueChapterPlan,
    as_store,
    load_runs,
    run_and_load,
)
from .glue_stats import finite

__all__ = [
    "CHAPTER",
    "PARTS",
    "FIG2_CHECKPOINTS",
    "D2_METHODS",
    "KINDS",
    "LEARNED",
    "Fig2Plan",
    "D2Plan",
    "DeepLoraSubspacesPlan",
    "PLANS",
    "plan",
    "experiments",
    "planned",
    "DeepLoraSubspacesResults",
    "run",
    "kind_of",
    "early_checkpoint",
    "significant_singular_values",
    "first_step_within",
    "first_step_loss_below",
    "Fig2Summary",
    "D2Summary",
    "DeepLoraSubspacesSummary",
    "summarise",
    "settings_table",
    "fig2_table",
    "d2_table",
    "d2_within_table",
    "build_label",
    "targets_text",
    "settings_text",
    "data_card_text",
    "runs_text",
    "fig2_text",
    "fig2_caveat",
    "d2_text",
    "d2_caveat",
    "paper_d2_curves",
    "plot_fig2",
    "plot_d2",
]

CHAPTER = "deep_lora_subspaces"
PARTS = ("fig2", "d2")
"""The figures of the chapter, in the order they are built."""

FIG2_CHECKPOINTS = (0, 1, 10, 20, 30, 100, 500, 1000, 1500, 2000)
"""The paper's Fig. 2 checkpoints (steps)."""

D2_METHODS = ("original", "compressed", "random")
"""The three App. D.2 variants, in the order they are shown."""

KINDS = {
    "attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
    "attention.output.dense": "attn out", "intermediate.dense": "intermediate", "output.dense": "output",
}
"""Short name of each kind of adapted BERT weight, by the module name's suffix."""

LEARNED = 0.3
"""App. D.2 "catching up with the original" means something only once the original's best validation
Pearson reaches this (the paper's original is at 0.649 after 20 steps)."""

WITHIN = 0.05
"""App. D.2 tolerance: a variant is "within 0.05 of the original" at a step when its Pearson is at least the
original's minus this."""


# ------------------------------------------------------------------------------------------------
# plans
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fig2Plan:
    """Fig. 2: one full-width Deep LoRA run on STS-B with checkpoints."""

    n: int | None
    """Training examples (``None``: the whole filtered training split)."""
    steps: int
    checkpoints: tuple[int, ...]
    targets: str


@dataclass(frozen=True)
class D2Plan:
    """App. D.2: original vs compressed vs random narrow on STS-B at ``n`` examples, seed 0."""

    n: int
    steps: int
    eval_every: int
    targets: str
    eval_limit: int | None = None
    """Validation examples per evaluation (App. D.2 evaluates every few steps)."""


@dataclass(frozen=True, kw_only=True)
class DeepLoraSubspacesPlan(GlueChapterPlan):
    """Every knob of the chapter at one scale (the ``paper`` instance is the protocol); ``methods`` and
    ``chapter_notes`` come from :class:`~compressible.experiments.glue_runs.GlueChapterPlan`."""

    fig2: Fig2Plan
    d2: D2Plan


PLANS: dict[str, DeepLoraSubspacesPlan] = {
    "paper": DeepLoraSubspacesPlan(
        methods=GLUE_METHODS["paper"],
        fig2=Fig2Plan(n=None, steps=2000, checkpoints=FIG2_CHECKPOINTS, targets="attention-mlp"),
        d2=D2Plan(n=16, steps=200, eval_every=20, targets="attention-mlp"),
    ),
    # ci: predicted ~4 min on 2 CPU cores.
    "ci": DeepLoraSubspacesPlan(
        methods=GLUE_METHODS["ci"],
        fig2=Fig2Plan(n=None, steps=50, checkpoints=(0, 1, 5, 10, 20, 30, 40, 50), targets=ATTENTION_TARGETS),
        d2=D2Plan(n=16, steps=60, eval_every=20, targets=ATTENTION_TARGETS, eval_limit=500),
        chapter_notes=(
            "Fig. 2 and App. D.2: full-width adapters on the attention weights only (q, k, v, attention output; "
            "24 matrices), 50 and 60 steps; the MLP weights' 1536-wide factorisations cost too much on a CPU",
            "every run computes with one torch thread, one run per CPU core at a time",
        ),
        parallel_cpu=True,
    ),
    "smoke": DeepLoraSubspacesPlan(
        methods=GLUE_METHODS["smoke"],
        fig2=Fig2Plan(n=32, steps=3, checkpoints=(0, 1, 3), targets="attention-mlp"),
        d2=D2Plan(n=16, steps=2, eval_every=1, targets="attention-mlp", eval_limit=32),
    ),
}
"""The plan of each scale."""


def plan(scale: str) -> DeepLoraSubspacesPlan:
    """The chapter's plan at ``scale``."""
    return PLANS[check_scale(scale)]


def planned(p: DeepLoraSubspacesPlan, store: ResultStore | str | None = None) -> list[Experiment]:
    """Every run the chapter needs, for sweeps: :func:`experiments` (nothing depends on stored results)."""
    return experiments(p)


def experiments(p: DeepLoraSubspacesPlan) -> list[Experiment]:
    """The runs of plan ``p``, tagged with the part they feed, in build order."""
    m = p.methods
    fig2 = RunConfig(
        "stsb",
        n_train=p.fig2.n,
        steps=p.fig2.steps,
        adapter=DeepLoRAConfig(init="full", targets=p.fig2.targets),
        lr=1e-4,
        lr_end=1e-5,
        backbone=m.backbone,
        eval_limit=m.eval_limit,
        spectrum_top=10,
        checkpoints=p.fig2.checkpoints,
        checkpoint_rank=8,
        **m.head(),
    )
    d2 = {
        "task": "stsb",
        "n_train": p.d2.n,
        "steps": p.d2.steps,
        "eval_every": p.d2.eval_every,
        "backbone": m.backbone,
        "eval_limit": p.d2.eval_limit,
    }
    original = DeepLoRAConfig(init="full", targets=p.d2.targets)
    random = DeepLoRAConfig(init="random", rank=8, targets=p.d2.targets)
    return [
        Experiment("fig2", METHOD_LABELS["full"], fig2, (0,)),
        Experiment("d2", "original", RunConfig(adapter=original, **d2, **m.head()), (0,)),
        Experiment("d2", "compressed", RunConfig(**d2, **m.method("compressed", rank=8, targets=p.d2.targets)), (0,)),
        Experiment("d2", "random", RunConfig(adapter=random, **d2, **m.head()), (0,)),
    ]


# ------------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DeepLoraSubspacesResults:
    """The stored runs of the chapter (one seed each)."""

    scale: str
    plan: DeepLoraSubspacesPlan
    runs: pd.DataFrame
    """:func:`~compressible.experiments.glue_runs.results_frame` of every experiment."""
    fig2: dict
    """The stored Fig. 2 run (``checkpoints``, ``spectra``, ``train_loss``, ``final``, ...)."""
    d2: dict[str, dict]
    """The stored App. D.2 run of each variant of :data:`D2_METHODS`."""
    epsilon: float
    """Scale of the Fig. 2 adapters' initialisation: every singular value of ``Delta W(0)`` is ``epsilon**3``."""


def run(scale: str, device: str = "cpu", store: ResultStore | str | None = None, progress: bool = True,
        threads: int | None = None) -> DeepLoraSubspacesResults:
    """Run what the result store lacks of the chapter at ``scale``, then load every run."""
    p = plan(scale)
    exps = experiments(p)
    store = as_store(store)
    runs = run_and_load(exps, store, device, Execution(progress, threads), p)
    fig2 = next(e for e in exps if e.part == "fig2")
    d2 = {e.label: e for e in exps if e.part == "d2"}
    return DeepLoraSubspacesResults(
        scale, p, runs, load_runs(fig2, store)[fig2.seeds[0]],
        {m: load_runs(d2[m], store)[d2[m].seeds[0]] for m in D2_METHODS}, fig2.config.adapter.epsilon,
    )


# ------------------------------------------------------------------------------------------------
# statistics
# ------------------------------------------------------------------------------------------------


def kind_of(module: str) -> str:
    """The kind of an adapted BERT weight (``"q"``, ``"k"``, ..., ``"output"``) from its module name."""
    kind = next((short for suffix, short in KINDS.items() if module.endswith(suffix)), None)
    if kind is None:
        raise ValueError(f"module {module!r} is none of the adapted kinds; its name must end with one of {tuple(KINDS)}")
    return kind


def early_checkpoint(steps: Sequence[int], total: int) -> int:
    """The first checkpoint at or beyond 10% of ``total`` steps (and after step 0): "early" in the paper's sense."""
    early = next((int(t) for t in steps if t >= max(1, 0.1 * total)), None)
    if early is None:
        raise ValueError(f"no checkpoint at or after 10% of {total} steps among {list(steps)}")
    return early


def significant_singular_values(spectra: np.ndarray, init_level: float) -> np.ndarray:
    """Per row of ``spectra`` (``(modules, k)``, descending): how many grew above ``init_level`` by at least
    10% of what the largest grew (for updates far above ``init_level``: "at least 10% of sigma_1")."""
    growth = spectra - init_level
    return (growth >= 0.1 * growth[:, :1]).sum(axis=1)


def first_step_within(curves: Mapping[str, Mapping[int, float]], method: str, tol: float = WITHIN) -> int | None:
    """First step evaluated for both at which ``method`` >= original - tol (None if never)."""
    common = sorted(set(curves[method]) & set(curves["original"]))
    return next((s for s in common if curves[method][s] >= curves["original"][s] - tol), None)


def first_step_loss_below(losses: Sequence[float], fraction: float = 0.9) -> int | None:
    """First step (1-based) whose loss is below ``fraction`` of step 1's: how fast a variant starts to fit."""
    return next((i + 1 for i, v in enumerate(losses) if v < fraction * losses[0]), None)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Fig2Summary(_Model):
    """Fig. 2: the full-width Deep LoRA run (whole filtered STS-B training set)."""

    steps: int
    eval_examples: int
    """Validation pairs evaluated."""
    final_pearson: float | None
    """Validation Pearson after the last step (``None``: undefined, constant predictions)."""
    loss_window: int
    """Steps averaged for ``initial_train_loss`` and ``final_train_loss`` (a tenth of the run)."""
    initial_train_loss: float
    """Mean training loss of the first ``loss_window`` steps."""
    final_train_loss: float
    """Mean training loss of the last ``loss_window`` steps."""
    checkpoint_rank: int
    """Dimension ``k`` of the compared top-k left singular subspaces."""
    median_alignment: dict[int, float]
    """Per checkpoint step, the median over matrices of ``||U_t^T U_final||_2``."""
    alignment_early_step: int
    """The first checkpoint at or after 10% of training."""
    median_alignment_at_10pct_steps: float
    min_alignment_at_10pct_steps: float
    frac_alignment_above_0_9_at_10pct_steps: float
    """Share of matrices whose alignment at ``alignment_early_step`` exceeds 0.9."""
    median_alignment_step1: float | None
    """Median alignment after one step (``None`` when step 1 is no checkpoint)."""
    median_alignment_step0: float | None
    """Median alignment of the arbitrary step-0 basis: the chance level (``None`` when step 0 is no checkpoint)."""
    median_significant_singular_values: float
    """Median over matrices of how many of the top singular values of the final update grew above eps^3 by at
    least 10% of what sigma_1 grew."""
    top_singular_values: int
    """How many singular values per update are stored (the ``k`` of the statistic above)."""
    median_sv_ratio_9_to_1: float
    """Median over matrices of sigma_9 / sigma_1 of the final update."""
    median_top_sv_over_eps3: float
    """Median over matrices of sigma_1 / eps^3."""
    median_top_sv_over_eps3_by_kind: dict[str, float]
    """The same, per kind of weight (:data:`KINDS`), in the order of :data:`KINDS`."""
    updates_still_at_init_scale: bool
    """``median_top_sv_over_eps3 < 10``: the updates have not left the initial scale yet."""


class D2Summary(_Model):
    """App. D.2 (n = 16, seed 0): original vs compressed vs random narrow."""

    steps: int
    eval_examples: int
    pearson_final: dict[str, float | None]
    """Validation Pearson after the last step, per variant."""
    pearson_at_step: dict[str, dict[int, float | None]]
    """Validation Pearson per variant at the paper's evaluation steps that this run reached."""
    loss_window: int
    final_train_loss: dict[str, float]
    """Mean training loss over the last ``loss_window`` steps, per variant."""
    initial_train_loss: dict[str, float]
    """Training loss of step 1, per variant."""
    trainable_params: dict[str, int]
    first_step_within_0_05_of_original: dict[str, int | None]
    """For ``compressed`` and ``random``: first evaluated step with Pearson >= original's - 0.05 (``None``: never)."""
    paper_first_step_within_0_05_of_original: dict[str, int | None]
    """The same statistic on the authors' logs."""
    original_best_pearson: float | None
    first_step_loss_below_90pct: dict[str, int | None]
    """Per variant, the first step whose training loss is below 90% of step 1's (``None``: never)."""
    comparison_informative: bool
    """The original's best Pearson reached :data:`LEARNED`: only then does "within 0.05 of it" mean something."""


class DeepLoraSubspacesSummary(Summary):
    """Headline numbers of the Deep LoRA subspaces chapter (Fig. 2, App. D.2)."""

    chapter: ClassVar[str] = CHAPTER
    backbone: str
    adapted_modules: int
    """Adapted weight matrices of the Fig. 2 run."""
    fig2: Fig2Summary
    d2: D2Summary


def _alignment(run: dict) -> tuple[np.ndarray, list[str], np.ndarray]:
    ckpt = run["checkpoints"]
    modules = sorted(ckpt["alignment"])
    return np.array(ckpt["steps"]), modules, np.array([ckpt["alignment"][m] for m in modules])  # (modules, checkpoints)


def paper_d2_curves() -> dict[str, dict[int, float]]:
    """The authors' App. D.2 validation Pearson per variant and step."""
    return {m: {int(s): v for s, v in paper_value("appendix_d2_compression_ablation", "pearson_at_step", m).items()}
            for m in D2_METHODS}


def _d2_curves(results: DeepLoraSubspacesResults) -> dict[str, dict[int, float]]:
    return {m: {int(e["step"]): float(e["pearson"]) for e in results.d2[m]["evals"]} for m in D2_METHODS}


def summarise(results: DeepLoraSubspacesResults) -> DeepLoraSubspacesSummary:
    """Every statistic of the chapter from its runs (pure: no data is loaded)."""
    p, fig2_run = results.plan, results.fig2
    # Fig. 2
    ckpt_steps, modules, alignment = _alignment(fig2_run)
    spectra = np.array([fig2_run["spectra"][m]["singular_values"] for m in modules])  # (modules, 10)
    losses = np.array(fig2_run["train_loss"])
    window = max(1, len(losses) // 10)
    steps_total = p.fig2.steps
    early_step = early_checkpoint(ckpt_steps, steps_total)
    early = alignment[:, list(ckpt_steps).index(early_step)]
    step1 = alignment[:, list(ckpt_steps).index(1)] if 1 in ckpt_steps else None
    chance = alignment[:, list(ckpt_steps).index(0)] if 0 in ckpt_steps else None
    ratio_9_1 = spectra[:, 8] / spectra[:, 0] if spectra.shape[1] > 8 else spectra[:, -1] / spectra[:, 0]
    init_level = results.epsilon ** 3
    significant = significant_singular_values(spectra, init_level)
    top_over_init = spectra[:, 0] / init_level
    kinds = [kind_of(m) for m in modules]
    fig2 = Fig2Summary(
        steps=int(steps_total),
        eval_examples=int(fig2_run["n_eval"]),
        final_pearson=finite(fig2_run["final"]["pearson"]),
        loss_window=window,
        initial_train_loss=float(losses[:window].mean()),
        final_train_loss=float(losses[-window:].mean()),
        checkpoint_rank=int(fig2_run["checkpoints"]["k"]),
        median_alignment={int(t): float(v) for t, v in zip(ckpt_steps, np.median(alignment, axis=0))},
        alignment_early_step=early_step,
        median_alignment_at_10pct_steps=float(np.median(early)),
        min_alignment_at_10pct_steps=float(early.min()),
        frac_alignment_above_0_9_at_10pct_steps=float((early > 0.9).mean()),
        median_alignment_step1=float(np.median(step1)) if step1 is not None else None,
        median_alignment_step0=float(np.median(chance)) if chance is not None else None,
        median_significant_singular_values=float(np.median(significant)),
        top_singular_values=int(spectra.shape[1]),
        median_sv_ratio_9_to_1=float(np.median(ratio_9_1)),
        median_top_sv_over_eps3=float(np.median(top_over_init)),
        median_top_sv_over_eps3_by_kind={
            k: float(np.median(top_over_init[[kind == k for kind in kinds]]))
            for k in sorted(set(kinds), key=list(KINDS.values()).index)
        },
        updates_still_at_init_scale=bool(np.median(top_over_init) < 10),
    )
    # App. D.2
    d2_runs = results.d2
    ours_d2, paper_d2 = _d2_curves(results), paper_d2_curves()
    d2_window = max(1, p.d2.steps // 10)
    original_best = max(ours_d2["original"].values())
    d2 = D2Summary(
        steps=int(p.d2.steps),
        eval_examples=int(d2_runs["original"]["n_eval"]),
        pearson_final={m: finite(d2_runs[m]["final"]["pearson"]) for m in D2_METHODS},
        pearson_at_step={m: {s: finite(v) for s, v in ours_d2[m].items() if s in paper_d2[m]} for m in D2_METHODS},
        loss_window=d2_window,
        final_train_loss={m: float(np.mean(d2_runs[m]["train_loss"][-d2_window:])) for m in D2_METHODS},
        initial_train_loss={m: float(d2_runs[m]["train_loss"][0]) for m in D2_METHODS},
        trainable_params={m: int(d2_runs[m]["trainable_params"]) for m in D2_METHODS},
        first_step_within_0_05_of_original={m: first_step_within(ours_d2, m) for m in ("compressed", "random")},
        paper_first_step_within_0_05_of_original={m: first_step_within(paper_d2, m) for m in ("compressed", "random")},
        original_best_pearson=finite(original_best),
        first_step_loss_below_90pct={m: first_step_loss_below(d2_runs[m]["train_loss"]) for m in D2_METHODS},
        comparison_informative=bool(original_best >= LEARNED),
    )
    return DeepLoraSubspacesSummary(scale=results.scale, backbone=p.backbone,
                                    adapted_modules=int(fig2_run["adapted_modules"]), fig2=fig2, d2=d2)


# ------------------------------------------------------------------------------------------------
# tables and prose
# ------------------------------------------------------------------------------------------------

PAPER_LABEL = f"{PROVENANCE}, bert-base-cased"

_SHORT_NAMES = {TINY_BERT: "tiny random BERT"}

TARGET_NAMES = {
    "attention-mlp": "q, k, v, attention output, intermediate and output of every block (the paper's 72 matrices "
                     "for bert-base-cased)",
    ATTENTION_TARGETS: "q, k, v and attention output of every block only -- **not** the paper's intermediate and "
                       "output (MLP) weights",
}
"""What each adapted-module pattern of the plans covers, in words."""


def build_label(scale: str) -> str:
    """The label on every figure and table of this build, e.g. ``"ci scale, all-MiniLM-L6-v2"``."""
    backbone = plan(scale).backbone
    return f"{scale_label(scale)}, {_SHORT_NAMES.get(backbone, backbone)}"


def settings_table(p: DeepLoraSubspacesPlan) -> pd.DataFrame:
    """One column per run of plan ``p`` (adapter, width, depth, rates, data, steps, evaluation, seeds)."""
    return pd.DataFrame({
        f"{e.part}: {e.label}": {
            "adapter": e.config.adapter.init,
            "width": "max(m, n)" if e.config.adapter.init == "full" else e.config.adapter.rank,
            "depth": e.config.adapter.depth,
            "lr (inner)": e.config.lr,
            "lr (outer)": e.config.outer_lr if e.config.outer_lr is not None else "= inner",
            "lr at the end": e.config.lr_end if e.config.lr_end is not None else "constant",
            "training examples": "all (filtered) train" if e.config.n_train is None else e.config.n_train,
            "steps × batch": f"{e.config.steps} × {e.config.batch_size}",
            "evaluated every": e.config.eval_every or "last step only",
            "validation examples": "all" if e.config.eval_limit is None else e.config.eval_limit,
            "seeds": ", ".join(map(str, e.seeds)),
        }
        for e in experiments(p)
    }).reset_index(names="setting")


def targets_text(p: DeepLoraSubspacesPlan) -> str:
    """Markdown: which modules Fig. 2 and App. D.2 adapt."""
    pairs = ([("Fig. 2 and App. D.2", p.fig2.targets)] if p.fig2.targets == p.d2.targets
             else [("Fig. 2", p.fig2.targets), ("App. D.2", p.d2.targets)])
    return "; ".join(f"{part} `{t}`: {TARGET_NAMES.get(t, 'see the pattern')}" for part, t in pairs)


def fig2_table(summary: DeepLoraSubspacesSummary) -> pd.DataFrame:
    """Fig. 2: the paper's statements beside this build's numbers."""
    f, ours = summary.fig2, f"ours ({build_label(summary.scale)})"
    pearson = "n/a" if f.final_pearson is None else f"{f.final_pearson:.4f}"
    return pd.DataFrame([
        {"quantity": "final validation Pearson",
         PAPER_LABEL: f"{paper_value('figure2_invariant_subspaces', 'final_eval_pearson'):.4f}", ours: pearson},
        {"quantity": "steps (lr 1e-4 → 1e-5, linear)",
         PAPER_LABEL: str(paper_value("figure2_invariant_subspaces", "protocol", "steps")), ours: str(f.steps)},
        {"quantity": "adapted matrices", PAPER_LABEL: "72", ours: str(summary.adapted_modules)},
        {"quantity": "spectra of ΔW",
         PAPER_LABEL: "few significant singular values per matrix (qualitative)",
         ours: f"median {f.median_significant_singular_values:.0f} of top {f.top_singular_values} grew ≥ 10% of σ₁'s "
               f"growth; σ₁ = {f.median_top_sv_over_eps3:.3g} × ε³ (median)"},
        {"quantity": f"top-{f.checkpoint_rank} subspace alignment with the final one",
         PAPER_LABEL: "close to 1 early in training (qualitative)",
         ours: f"median {f.median_alignment_at_10pct_steps:.3f} at step {f.alignment_early_step} of {f.steps}"},
    ])


def d2_table(results: DeepLoraSubspacesResults) -> pd.DataFrame:
    """App. D.2: validation Pearson by step, the paper's beside ours, per variant."""
    ours_d2, paper_d2, ours = _d2_curves(results), paper_d2_curves(), f"ours ({build_label(results.scale)})"
    steps = sorted(set().union(*[paper_d2[m] for m in D2_METHODS], *[ours_d2[m] for m in D2_METHODS]))
    return pd.DataFrame({
        "step": steps,
        **{f"{m} — {who}": [f"{curves[m][s]:.3f}" if s in curves[m] else "—" for s in steps]
           for m in D2_METHODS for who, curves in ((PAPER_LABEL, paper_d2), (ours, ours_d2))},
    })


def d2_within_table(summary: DeepLoraSubspacesSummary) -> pd.DataFrame:
    """How fast the narrow variants catch up with the original: the paper's first step beside ours."""
    d = summary.d2
    return pd.DataFrame([
        {"variant": m,
         f"first step within 0.05 of original — {PAPER_LABEL}": str(d.paper_first_step_within_0_05_of_original[m] or "never"),
         f"first step within 0.05 of original — ours ({build_label(summary.scale)})":
             str(d.first_step_within_0_05_of_original[m] or "never")}
        for m in ("compressed", "random")
    ])


_BACKBONE_NAMES = {
    "bert-base-cased": "bert-base-cased (the paper's backbone)",
    "all-MiniLM-L6-v2": "all-MiniLM-L6-v2, a 6-layer sentence-embedding BERT (hidden 384), not bert-base-cased",
    TINY_BERT: "a tiny random BERT (2 layers, hidden 32) that measures nothing",
}


def settings_text(p: DeepLoraSubspacesPlan, scale: str, device: str) -> str:
    """Markdown: backbone, device, adapted modules and how this scale departs from the paper."""
    return (
        f"**Settings ({scale_label(scale)}).** Backbone `{p.backbone}`: {_BACKBONE_NAMES.get(p.backbone, p.backbone)}. "
        f"Device: `{device}`. Adapted modules: {targets_text(p)}. "
        + ("How this scale departs from the paper: " + "; ".join(p.notes) + "." if p.notes else "This is the paper's protocol.")
    )


def data_card_text(card: dict) -> str:
    """Markdown: where STS-B comes from and what it holds (``card``: :func:`compressible.finetune.glue.data_card`)."""
    where = (f"a local mirror at `{card['source']}`" if card["local_mirror"] else f"the hub (`{card['source']}`)")
    return (
        f"**Data card.** `{card['hub_id']}`, config `{card['task']}`, read from {where}. "
        f"Inputs: {' + '.join(card['text_fields'])} (a sentence pair); {card['num_labels']} output, "
        f"{'regression (MSE loss)' if card['regression'] else 'classification'}; training split `{card['train_split']}`, "
        f"evaluation split `{card['eval_split']}`. "
        + ("Mirror caveats: " + " ".join(card["caveats"]) if card["caveats"] else
           "Mirror caveats: none -- every split has the official number of rows.")
    )


def runs_text(results: DeepLoraSubspacesResults, card: dict) -> str:
    """Markdown: run times, the length filter, evaluation sizes, adapted matrices and trainable parameters."""
    fig2_run, d2_runs, p = results.fig2, results.d2, results.plan
    return (
        f"The {len(results.runs)} runs took {results.runs['wall_time'].sum():.0f} s in total when they were computed "
        f"(Fig. 2: {fig2_run['wall_time']:.0f} s; App. D.2: "
        + ", ".join(f"{m} {d2_runs[m]['wall_time']:.0f} s" for m in D2_METHODS) + "). "
        f"Length filter (128 tokens): {fig2_run['train_pool']:,} of {card['splits']['train']:,} training pairs kept, "
        f"{fig2_run['eval_dropped_by_filter']} of {card['splits'][card['eval_split']]:,} validation pairs dropped. "
        f"Evaluation on {fig2_run['n_eval']:,} validation pairs (Fig. 2) and {d2_runs['original']['n_eval']:,} (App. D.2)"
        + (" -- a fixed subset, the same for every run, not the whole split" if p.methods.eval_limit or p.d2.eval_limit else "")
        + f". {fig2_run['adapted_modules']} adapted weight matrices; trainable parameters: "
        f"{fig2_run['trainable_params']:,} (full width), "
        + ", ".join(f"{d2_runs[m]['trainable_params']:,} ({m})" for m in D2_METHODS) + "."
    )


def fig2_text(summary: DeepLoraSubspacesSummary) -> str:
    """Markdown: what the Fig. 2 run shows -- alignment early on, growth of the spectra, loss and Pearson."""
    f, label = summary.fig2, build_label(summary.scale)
    pearson = "n/a" if f.final_pearson is None else f"{f.final_pearson:.4f}"
    return (
        f"**What our run shows ({label}).** After {f.alignment_early_step} of {f.steps} steps the median alignment over "
        f"the {summary.adapted_modules} matrices is {f.median_alignment_at_10pct_steps:.3f} (smallest "
        f"{f.min_alignment_at_10pct_steps:.3f}; {f.frac_alignment_above_0_9_at_10pct_steps:.0%} of the matrices above 0.9)"
        + (f"; after a single step it is already {f.median_alignment_step1:.3f}" if f.median_alignment_step1 is not None else "")
        + (f", against {f.median_alignment_step0:.3f} for the arbitrary step-0 basis" if f.median_alignment_step0 is not None else "")
        + f". The largest singular value of the final updates is a median {f.median_top_sv_over_eps3:.3g} times the initial "
        f"level $\\varepsilon^3$; a median of {f.median_significant_singular_values:.0f} of the top {f.top_singular_values} "
        f"singular values grew by at least 10% of what the largest one grew, and the median ratio "
        f"$\\sigma_{{9}} / \\sigma_1$ is {f.median_sv_ratio_9_to_1:.3g}. By kind, the median $\\sigma_1 / \\varepsilon^3$ is "
        + ", ".join(f"{k} {v:.3g}" for k, v in f.median_top_sv_over_eps3_by_kind.items()) + ". "
        f"The training loss goes from {f.initial_train_loss:.2f} (mean of the first {f.loss_window} steps) to "
        f"{f.final_train_loss:.2f} (last {f.loss_window} steps); the final validation Pearson is {pearson} "
        f"on {f.eval_examples:,} validation pairs. Adapted matrices: {summary.adapted_modules} "
        f"({', '.join(f.median_top_sv_over_eps3_by_kind)})."
    )


def fig2_caveat(summary: DeepLoraSubspacesSummary, epsilon: float) -> str:
    """Markdown caveat when the Fig. 2 updates have not left their initial scale (empty otherwise)."""
    f, label = summary.fig2, build_label(summary.scale)
    if not f.updates_still_at_init_scale:
        return ""
    pearson = "n/a" if f.final_pearson is None else f"{f.final_pearson:.3f}"
    return (
        f"**Caveat: at {label} the updates have barely left their initialisation.** After {f.steps} steps the "
        f"largest singular value of $\\Delta W$ is only {f.median_top_sv_over_eps3:.3g} × $\\varepsilon^3$ "
        f"(median over matrices); the training loss averaged {f.initial_train_loss:.2f} over the first {f.loss_window} steps "
        f"and {f.final_train_loss:.2f} over the last {f.loss_window}, and the validation Pearson is {pearson}: the model "
        f"does not rank STS-B pairs yet. Starting from $\\varepsilon = {epsilon:g}$, a depth-3 factorisation first spends "
        f"many steps growing out of the small initialisation (its gradients carry a factor $\\varepsilon^2$), and the "
        f"paper's run is {paper_value('figure2_invariant_subspaces', 'protocol', 'steps')} steps long. What this run does "
        f"show is the start of Theorem 2.1's picture: the growth goes into a few directions, the rest of the spectrum stays "
        f"near $\\varepsilon^3$, and those few directions are fixed within the first steps. Whether they stay fixed "
        f"while the model actually learns is only tested at `paper` scale."
    )


def d2_text(summary: DeepLoraSubspacesSummary, p: DeepLoraSubspacesPlan) -> str:
    """Markdown: App. D.2's final Pearson and losses, when each narrow variant caught up, beside the paper's."""
    d, label = summary.d2, build_label(summary.scale)
    paper_steps = sorted(paper_d2_curves()["original"])
    pearson = ", ".join(f"{'n/a' if d.pearson_final[m] is None else format(d.pearson_final[m], '.3f')} ({m})"
                        for m in D2_METHODS)
    return (
        f"**What our run shows ({label}).** After {d.steps} steps the validation Pearson is {pearson}, on "
        f"{d.eval_examples:,} validation pairs"
        + (" (a fixed subset: App. D.2 evaluates every few steps)" if p.d2.eval_limit is not None else "")
        + f". Mean training loss over the last {d.loss_window} steps: "
        + ", ".join(f"{d.final_train_loss[m]:.3g} ({m})" for m in D2_METHODS) + ". "
        + "".join(
            f"The {m} variant is first within 0.05 of the original at step {d.first_step_within_0_05_of_original[m]}. "
            if d.first_step_within_0_05_of_original[m] is not None
            else f"The {m} variant is never within 0.05 of the original in our {d.steps} steps. "
            for m in ("compressed", "random")
        )
        + "In the authors' logs (bert-base-cased, 200 steps) the compressed variant is within 0.05 from step "
        f"{d.paper_first_step_within_0_05_of_original['compressed']} and the random one only from step "
        f"{d.paper_first_step_within_0_05_of_original['random']}."
        + (f" Our run stops at step {d.steps}, so the paper's steps "
           + ", ".join(str(s) for s in paper_steps if s > d.steps) + " have no counterpart here."
           if d.steps < max(paper_steps) else "")
    )


def d2_caveat(summary: DeepLoraSubspacesSummary) -> str:
    """Markdown caveat when the original has not learned, so App. D.2's Pearson comparison is uninformative."""
    d, label = summary.d2, build_label(summary.scale)
    if d.comparison_informative:
        return ""
    best = "n/a" if d.original_best_pearson is None else f"{d.original_best_pearson:.3f}"
    return (
        f"**Caveat: at {label} this comparison is not informative.** The original full-width adapter's best "
        f"validation Pearson in our run is {best} (below {LEARNED}): within {d.steps} steps it does not rank validation "
        f"pairs yet (its training loss went from {d.initial_train_loss['original']:.2f} to "
        f"{d.final_train_loss['original']:.2f}), so any variant is trivially \"within 0.05 of the original\". "
        f"The training-loss panel is the informative one here: mean loss over the last {d.loss_window} steps "
        + ", ".join(f"{d.final_train_loss[m]:.3g} ({m})" for m in D2_METHODS)
        + f", from a common start of {d.initial_train_loss['compressed']:.2f}; the first step with a loss below "
        "90% of the first step's: "
        + ", ".join(f"{d.first_step_loss_below_90pct[m] if d.first_step_loss_below_90pct[m] is not None else 'never'} ({m})"
                    for m in D2_METHODS) + "."
    )


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------


def plot_fig2(results: DeepLoraSubspacesResults, summary: DeepLoraSubspacesSummary):
    """Fig. 2: top singular values of every final update, alignment with the final subspace, training loss."""
    import matplotlib.pyplot as plt

    run_ = results.fig2
    ckpt_steps, modules, alignment = _alignment(run_)
    spectra = np.array([run_["spectra"][m]["singular_values"] for m in modules])
    losses = np.array(run_["train_loss"])
    window = summary.fig2.loss_window
    running = pd.Series(losses).rolling(window, min_periods=1).mean()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    kind_colours = {k: f"C{i}" for i, k in enumerate(dict.fromkeys(KINDS.values()))}
    seen = set()
    for m, s in zip(modules, spectra):
        k = kind_of(m)
        axes[0].semilogy(np.arange(1, len(s) + 1), s, color=kind_colours[k], alpha=0.6, lw=1,
                         label=None if k in seen else k)
        seen.add(k)
    axes[0].axhline(results.epsilon ** 3, color="gray", ls=":", lw=1, label=r"$\varepsilon^3$ (all of them at step 0)")
    axes[0].set_xlabel("index i")
    axes[0].set_ylabel(r"$\sigma_i(\Delta W_{\mathrm{final}})$")
    axes[0].set_title("top singular values of every final ΔW")
    axes[0].legend(fontsize=8, ncol=2)
    for row in alignment:
        axes[1].plot(ckpt_steps, row, color="tab:gray", alpha=0.35, lw=0.8)
    axes[1].plot(ckpt_steps, np.median(alignment, axis=0), "o-", color="tab:red", lw=2, label="median over matrices")
    axes[1].set_xscale("symlog", linthresh=1)
    axes[1].set_ylim(0, 1.05)
    axes[1].set_xlabel("step t (symlog)")
    axes[1].set_ylabel(r"$\|U_t^\top U_{\mathrm{final}}\|_2$ (top-%d)" % summary.fig2.checkpoint_rank)
    axes[1].set_title("alignment with the final subspace")
    axes[1].legend(loc="lower right")
    axes[2].plot(np.arange(1, len(losses) + 1), losses, color="tab:blue", alpha=0.35, lw=0.8, label="per batch")
    axes[2].plot(np.arange(1, len(losses) + 1), running, color="tab:blue", lw=2, label=f"running mean ({window} steps)")
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("training loss (MSE)")
    axes[2].set_title("training loss")
    axes[2].legend()
    fig.suptitle(f"Fig. 2: full-width Deep LoRA on STS-B, {summary.fig2.steps} steps ({build_label(results.scale)})")
    fig.tight_layout()
    return fig


def plot_d2(results: DeepLoraSubspacesResults, summary: DeepLoraSubspacesSummary):
    """App. D.2: training loss of every step and validation Pearson (ours solid, the paper's dashed)."""
    import matplotlib.pyplot as plt

    colours = {"original": "tab:blue", "compressed": "tab:green", "random": "tab:orange"}
    ours_d2, paper_d2 = _d2_curves(results), paper_d2_curves()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for m in D2_METHODS:
        loss = results.d2[m]["train_loss"]
        ax1.plot(np.arange(1, len(loss) + 1), loss, color=colours[m], label=m)
        steps, values = zip(*sorted(ours_d2[m].items()))
        ax2.plot(steps, values, "o-", color=colours[m], label=f"{m} (ours)")
        psteps, pvalues = zip(*sorted(paper_d2[m].items()))
        ax2.plot(psteps, pvalues, "s--", color=colours[m], alpha=0.5, label=f"{m} (paper)")
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss (MSE, 16 examples)")
    ax1.set_title("training loss")
    ax1.legend()
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation Pearson")
    ax2.set_title(f"validation Pearson (ours: {summary.d2.eval_examples:,} pairs)")
    ax2.legend(fontsize=8, ncol=2)
    fig.suptitle(f"App. D.2: STS-B, 16 examples, {summary.d2.steps} steps ({build_label(results.scale)}; "
                 f"dashed: {PAPER_LABEL}, 200 steps)")
    fig.tight_layout()
    return fig
