"""The plans of the Deep LoRA subspaces chapter: every knob of Fig. 2 and App. D.2 at each scale, and the runs
they make."""

from __future__ import annotations

from dataclasses import dataclass

from ...deeplora import DeepLoRAConfig
from ...finetune.classify import RunConfig
from ...scales import check_scale
from ...store import ResultStore
from ..glue_methods import ATTENTION_TARGETS, GLUE_METHODS, GlueChapterPlan
from ..glue_runs import METHOD_LABELS, Experiment

__all__ = [
    "CHAPTER", "PARTS", "FIG2_CHECKPOINTS", "D2_METHODS", "Fig2Plan", "D2Plan", "DeepLoraSubspacesPlan",
    "PLANS", "plan", "experiments", "planned",
]

CHAPTER = "deep_lora_subspaces"
PARTS = ("fig2", "d2")
"""The figures of the chapter, in the order they are built."""

FIG2_CHECKPOINTS = (0, 1, 10, 20, 30, 100, 500, 1000, 1500, 2000)
"""The paper's Fig. 2 checkpoints (steps)."""

D2_METHODS = ("original", "compressed", "random")
"""The three App. D.2 variants, in the order they are shown."""


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
    ``chapter_notes`` come from :class:`~compressible.experiments.glue_methods.GlueChapterPlan`."""

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
