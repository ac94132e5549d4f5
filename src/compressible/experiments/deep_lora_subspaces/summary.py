"""The statistics of the Deep LoRA subspaces chapter: :func:`summarise` turns the runs into a typed
:class:`DeepLoraSubspacesSummary`, every conclusion the chapter draws included."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Mapping, Sequence

import numpy as np

from ...reference import paper_value
from ...summaries import Frozen, Summary
from ..glue_methods import ATTENTION_TARGETS
from ...summaries import finite
from .plan import CHAPTER, D2_METHODS
from .run import DeepLoraSubspacesResults

__all__ = [
    "KINDS", "LEARNED", "Targets", "kind_of", "early_checkpoint", "significant_singular_values",
    "first_step_within", "first_step_loss_below", "paper_d2_curves", "Fig2Summary", "D2Summary", "RunsRecord",
    "DataRecord", "DeepLoraSubspacesSummary", "summarise",
]

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


class Targets(StrEnum):
    """Which weights of every block a plan's ``targets`` pattern adapts."""

    ATTENTION_MLP = "attention-mlp"
    """q, k, v, attention output, intermediate and output: the paper's 72 matrices of bert-base-cased."""
    ATTENTION = "attention"
    """q, k, v and attention output only (not the MLP weights)."""
    OTHER = "other"
    """Another pattern."""

    @classmethod
    def of(cls, pattern: str) -> "Targets":
        return {"attention-mlp": cls.ATTENTION_MLP, ATTENTION_TARGETS: cls.ATTENTION}.get(pattern, cls.OTHER)


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


def paper_d2_curves() -> dict[str, dict[int, float]]:
    """The authors' App. D.2 validation Pearson per variant and step."""
    return {m: {int(s): v for s, v in paper_value("appendix_d2_compression_ablation", "pearson_at_step", m).items()}
            for m in D2_METHODS}


class Fig2Summary(Frozen):
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
    """The same, per kind of weight (``KINDS``), in the order of ``KINDS``."""
    updates_still_at_init_scale: bool
    """``median_top_sv_over_eps3 < 10``: the updates have not left the initial scale yet."""
    epsilon: float | None = None
    """Scale ``epsilon`` of the adapters' initialisation (every singular value of ``Delta W(0)`` is ``epsilon**3``)."""


class D2Summary(Frozen):
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
    """The original's best Pearson reached ``LEARNED``: only then does "within 0.05 of it" mean something."""
    eval_subset: bool = False
    """Each evaluation used a fixed subset of the validation split (App. D.2 evaluates every few steps)."""
    paper_steps_beyond_ours: list[int] = []
    """The authors' evaluation steps after this run's last step (they have no counterpart here)."""
    pearson_curve: dict[str, dict[int, float | None]] = {}
    """Validation Pearson per variant at every step this run evaluated."""


class RunsRecord(Frozen):
    """What the chapter's runs recorded: their wall time, the length filter, evaluation sizes, parameters."""

    count: int
    """Stored runs the chapter shows."""
    wall_time_total: float
    """Seconds all of them took where they were computed."""
    wall_time: dict[str, float]
    """Seconds per run: ``fig2`` and each App. D.2 variant."""
    train_kept: int
    """Training pairs left by the 128-token length filter."""
    eval_dropped: int
    """Validation pairs the length filter dropped."""
    fig2_eval_examples: int
    d2_eval_examples: int
    eval_subset: bool
    """Some evaluation used a fixed subset of the validation split (the same for every run), not all of it."""
    adapted_modules: int
    trainable_params: dict[str, int]
    """Trainable parameters: ``fig2`` (full width) and each App. D.2 variant."""


class DataRecord(Frozen):
    """STS-B as :func:`~compressible.finetune.glue.data_card` read it when the chapter ran."""

    hub_id: str
    task: str
    local_mirror: bool
    """Read from a local mirror (not the hub)."""
    splits: dict[str, int]
    """Rows per split in the copy that was read."""
    official_sizes: dict[str, int]
    train_split: str
    eval_split: str
    text_fields: list[str]
    num_labels: int
    regression: bool
    caveats: list[str]
    """What a reader must know about the mirror (empty for an official copy)."""


class DeepLoraSubspacesSummary(Summary):
    """Headline numbers of the Deep LoRA subspaces chapter (Fig. 2, App. D.2)."""

    chapter: ClassVar[str] = CHAPTER
    backbone: str
    adapted_modules: int
    """Adapted weight matrices of the Fig. 2 run."""
    fig2: Fig2Summary
    d2: D2Summary
    targets: dict[str, Targets] = {}
    """Which weights each part adapts (``fig2``, ``d2``)."""
    runs: RunsRecord | None = None
    data: DataRecord | None = None
    """STS-B's data card (``None`` when the runs came without one)."""


def _alignment(run: dict) -> tuple[np.ndarray, list[str], np.ndarray]:
    ckpt = run["checkpoints"]
    modules = sorted(ckpt["alignment"])
    return np.array(ckpt["steps"]), modules, np.array([ckpt["alignment"][m] for m in modules])  # (modules, checkpoints)


def _d2_curves(results: DeepLoraSubspacesResults) -> dict[str, dict[int, float]]:
    """Our App. D.2 validation Pearson per variant and step."""
    return {m: {int(e["step"]): float(e["pearson"]) for e in results.d2[m]["evals"]} for m in D2_METHODS}


def _fig2(results: DeepLoraSubspacesResults) -> Fig2Summary:
    fig2_run, steps_total = results.fig2, results.plan.fig2.steps
    ckpt_steps, modules, alignment = _alignment(fig2_run)
    spectra = np.array([fig2_run["spectra"][m]["singular_values"] for m in modules])  # (modules, 10)
    losses = np.array(fig2_run["train_loss"])
    window = max(1, len(losses) // 10)
    early_step = early_checkpoint(ckpt_steps, steps_total)
    early = alignment[:, list(ckpt_steps).index(early_step)]
    step1 = alignment[:, list(ckpt_steps).index(1)] if 1 in ckpt_steps else None
    chance = alignment[:, list(ckpt_steps).index(0)] if 0 in ckpt_steps else None
    ratio_9_1 = spectra[:, 8] / spectra[:, 0] if spectra.shape[1] > 8 else spectra[:, -1] / spectra[:, 0]
    init_level = results.epsilon ** 3
    significant = significant_singular_values(spectra, init_level)
    top_over_init = spectra[:, 0] / init_level
    kinds = [kind_of(m) for m in modules]
    return Fig2Summary(
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
        epsilon=float(results.epsilon),
    )


def _d2(results: DeepLoraSubspacesResults) -> D2Summary:
    p, d2_runs = results.plan, results.d2
    ours_d2, paper_d2 = _d2_curves(results), paper_d2_curves()
    d2_window = max(1, p.d2.steps // 10)
    original_best = max(ours_d2["original"].values())
    return D2Summary(
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
        eval_subset=p.d2.eval_limit is not None,
        paper_steps_beyond_ours=sorted(s for s in paper_d2["original"] if s > p.d2.steps),
        pearson_curve={m: {s: finite(v) for s, v in sorted(ours_d2[m].items())} for m in D2_METHODS},
    )


def _runs(results: DeepLoraSubspacesResults) -> RunsRecord:
    fig2_run, d2_runs, p = results.fig2, results.d2, results.plan
    wall = {"fig2": float(fig2_run["wall_time"]), **{m: float(d2_runs[m]["wall_time"]) for m in D2_METHODS}}
    return RunsRecord(
        count=1 + len(D2_METHODS),
        wall_time_total=float(sum(wall.values())),
        wall_time=wall,
        train_kept=int(fig2_run["train_pool"]),
        eval_dropped=int(fig2_run["eval_dropped_by_filter"]),
        fig2_eval_examples=int(fig2_run["n_eval"]),
        d2_eval_examples=int(d2_runs["original"]["n_eval"]),
        eval_subset=bool(p.methods.eval_limit or p.d2.eval_limit),
        adapted_modules=int(fig2_run["adapted_modules"]),
        trainable_params={"fig2": int(fig2_run["trainable_params"]),
                          **{m: int(d2_runs[m]["trainable_params"]) for m in D2_METHODS}},
    )


def _data(card: dict | None) -> DataRecord | None:
    if card is None:
        return None
    return DataRecord(**{name: card[name] for name in DataRecord.model_fields})


def summarise(results: DeepLoraSubspacesResults) -> DeepLoraSubspacesSummary:
    """Every statistic of the chapter from its runs (pure: reads nothing but ``results``)."""
    p = results.plan
    return DeepLoraSubspacesSummary(
        scale=results.scale, backbone=p.backbone, adapted_modules=int(results.fig2["adapted_modules"]),
        fig2=_fig2(results), d2=_d2(results),
        targets={"fig2": Targets.of(p.fig2.targets), "d2": Targets.of(p.d2.targets)},
        runs=_runs(results), data=_data(results.card),
    )
