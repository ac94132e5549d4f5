"""The tuning chapter's plan: a grid of learning rates per method (:class:`TuningPlan`) and the rates it
chooses (:class:`Rates`), which the Few-shot GLUE chapter's runs then use."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pydantic import model_validator

from ...finetune.classify import RunConfig
from ...scales import check_scale
from ...summaries import Frozen
from ..glue_methods import FEWSHOT_METHODS, GlueChapterPlan, GlueMethods
from ..glue_runs import Experiment
from ..glue_stats import DEEP, LORA

__all__ = ["CHAPTER", "TuningPlan", "Rate", "Rates", "FewshotTuningPlan", "PLANS", "plan", "stsb_fields", "grid_runs"]

CHAPTER = "fewshot_tuning"


@dataclass(frozen=True)
class TuningPlan:
    """A grid of learning rates per method, run at ``n`` training examples and scored on held-out examples."""

    n: tuple[int, ...]
    seeds: tuple[int, ...]
    steps: int
    lora: tuple[float, ...]
    """LoRA's learning rates."""
    compressed: tuple[tuple[float, float], ...]
    """Compressed Deep LoRA's ``(inner learning rate, gamma)`` points."""

    def __post_init__(self) -> None:
        for name in ("n", "seeds", "lora", "compressed"):
            if not getattr(self, name):
                raise ValueError(f"TuningPlan.{name} must not be empty")
        if len(self.lora) != len(self.compressed):
            raise ValueError(
                f"TuningPlan gives LoRA {len(self.lora)} grid points and compressed Deep LoRA {len(self.compressed)}; "
                "a fair comparison gives every method the same budget"
            )
        for point in self.compressed:
            if len(point) != 2:
                raise ValueError(f"TuningPlan.compressed points are (inner lr, gamma) pairs, got {point!r}")


class Rate(Frozen):
    """One method's learning rate: ``lr`` (compressed Deep LoRA: the inner factors') and, for compressed
    Deep LoRA, ``gamma``, the outer factors' rate as a multiple of it."""

    lr: float
    gamma: float | None = None


_METHODS = ("lora", "compressed")


class Rates(Frozen):
    """The rates of LoRA (``"lora"``) and compressed Deep LoRA (``"compressed"``) that a chapter's runs use:
    ``default`` at every ``n``, unless ``by_n`` gives that ``n`` its own (a tuning per ``n``)."""

    default: dict[str, Rate]
    by_n: dict[int, dict[str, Rate]] = {}

    @model_validator(mode="after")
    def _both_methods(self):
        for where, rates in (("default", self.default), *((f"by_n[{n}]", r) for n, r in self.by_n.items())):
            unknown = sorted(set(rates) - set(_METHODS))
            if unknown or (where == "default" and set(rates) != set(_METHODS)):
                raise ValueError(f"Rates.{where} has methods {sorted(rates)}; give 'lora' and 'compressed' (by_n: some of them)")
        return self

    def at(self, n: int) -> dict[str, Rate]:
        """``{method: Rate}`` at ``n`` training examples."""
        return {**self.default, **self.by_n.get(n, {})}

    def methods(self, methods: GlueMethods, n: int) -> GlueMethods:
        """``methods`` with the rates of LoRA and compressed Deep LoRA at ``n`` in place of their own."""
        r = self.at(n)
        return methods.with_rates(r["lora"].lr, r["compressed"].lr, r["compressed"].gamma)


@dataclass(frozen=True, kw_only=True)
class FewshotTuningPlan(GlueChapterPlan):
    """The tuning chapter at one scale: the grid (``None``: no tuning, the methods' own rates, the paper's) on
    the runs of the Few-shot GLUE chapter (``methods``, from
    :class:`~compressible.experiments.glue_methods.GlueChapterPlan`)."""

    grid: TuningPlan | None
    spectra_n: int
    """The ``n`` whose runs also store the spectra of their updates (the Few-shot GLUE chapter's Fig. 7 ``n``):
    a grid run there is the same configuration as the chapter's run that it stands for."""

    def __post_init__(self) -> None:
        if self.grid is not None and self.methods.holdout < 1:
            raise ValueError("a plan with tuning needs methods.holdout >= 1 (held-out training examples to tune on)")


PLANS: dict[str, FewshotTuningPlan] = {
    "paper": FewshotTuningPlan(methods=FEWSHOT_METHODS["paper"], grid=None, spectra_n=256),
    # ci: 2 points per method at n = 16 on 2 seeds: the chosen points' runs are Fig. 6's n = 16 runs at seeds 0-1
    "ci": FewshotTuningPlan(
        methods=FEWSHOT_METHODS["ci"],
        grid=TuningPlan(n=(16,), seeds=(0, 1), steps=200, lora=(1e-4, 3e-4), compressed=((1e-2, 1e-2), (1e-2, 1e-1))),
        spectra_n=256, parallel_cpu=True,
        chapter_notes=("learning rates of LoRA and compressed Deep LoRA chosen on held-out training examples (the "
                       "paper's are for bert-base)",),
    ),
    "smoke": FewshotTuningPlan(
        methods=FEWSHOT_METHODS["smoke"],
        grid=TuningPlan(n=(16,), seeds=(0,), steps=2, lora=(1e-4, 1e-3), compressed=((1e-2, 1e-2), (1e-2, 1e-1))),
        spectra_n=32, parallel_cpu=False,
    ),
}
"""The plan of each scale."""


def plan(scale: str) -> FewshotTuningPlan:
    """The chapter's plan at ``scale``."""
    return PLANS[check_scale(scale)]


def stsb_fields(p: FewshotTuningPlan, n: int) -> dict:
    """``RunConfig`` fields every STS-B run of the few-shot chapters at ``n`` training examples shares (grid,
    figures and diagnosis alike): the runs at ``p.spectra_n`` also store the spectra of their updates."""
    return {"task": "stsb", "backbone": p.methods.backbone, "eval_limit": p.methods.eval_limit,
            "spectrum_top": 10 if n == p.spectra_n else 0}


def grid_runs(p: FewshotTuningPlan) -> list[Experiment]:
    """Every grid point of ``p`` at every tuning ``n`` and seed (part ``"tuning"``; empty without a grid)."""
    if p.grid is None:
        return []
    out = []
    for n in p.grid.n:
        for lr in p.grid.lora:
            m = dataclasses.replace(p.methods, lora_lr=lr)
            config = RunConfig(n_train=n, steps=p.grid.steps, **stsb_fields(p, n), **m.method("lora"))
            out.append(Experiment("tuning", LORA, config, p.grid.seeds))
        for lr, gamma in p.grid.compressed:
            m = dataclasses.replace(p.methods, deep_lr=lr, deep_gamma=gamma)
            config = RunConfig(n_train=n, steps=p.grid.steps, **stsb_fields(p, n), **m.method("compressed"))
            out.append(Experiment("tuning", DEEP, config, p.grid.seeds))
    return out
