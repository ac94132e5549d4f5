"""The plans of the few-shot generation chapter: one :class:`~compressible.finetune.generate.GenerationConfig`
per method (vanilla LoRA, compressed Deep LoRA), the seeds and the scale's settings line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ...finetune.generate import AdapterSpec, GenerationConfig
from ..contract import resolve

__all__ = ["CHAPTER", "VANILLA_LABEL", "DEEP_LABEL", "MODEL_NAMES", "GenerationPlan", "PLANS", "plan"]

CHAPTER = "generation"
VANILLA_LABEL = "vanilla LoRA"
DEEP_LABEL = "Deep LoRA"

MODEL_NAMES = {"t5-base": "T5-base", "smollm2": "SmolLM2-135M-Instruct, 4-bit GGUF", "tiny-llama": "tiny random LLaMA"}
"""How the summary names each backbone's model."""


@dataclass(frozen=True)
class GenerationPlan:
    """The configs (one per method, same everything else) and seeds of one scale."""

    scale: str
    configs: Mapping[str, GenerationConfig]
    """``{method label: config}``: vanilla LoRA first, then Deep LoRA."""
    seeds: tuple[int, ...]
    notes: str = ""
    """How this scale departs from App. C (the chapter's one-line settings caption)."""
    workers: int = 1
    """Local processes computing the runs side by side on a CPU, one torch thread each (1: one after another in
    this process, with torch's threads)."""

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {self.workers!r}")

    @property
    def methods(self) -> list[str]:
        return list(self.configs)


def _plan(scale: str, seeds: tuple[int, ...], notes: str, *, vanilla_lr: float = 1e-4, workers: int = 1,
          **common) -> GenerationPlan:
    """Vanilla LoRA (depth 2, rank 8, at ``vanilla_lr``) and compressed Deep LoRA (depth 3, rank 8, App. D.2 rates:
    inner 1e-2, outer ``gamma * lr`` = 1e-4), otherwise the same ``common`` config (every dense weight, 16 pairs)."""
    vanilla = AdapterSpec(VANILLA_LABEL, "lora", 2, rank=8, lr=vanilla_lr)
    deep = AdapterSpec(DEEP_LABEL, "compressed", 3, rank=8, lr=1e-2, gamma=1e-2)
    configs = {spec.label: GenerationConfig(adapter=spec, **common) for spec in (vanilla, deep)}
    return GenerationPlan(scale, configs, seeds, notes, workers)


PLANS: dict[str, GenerationPlan] = {
    # App. C: T5-base, 400 steps, batch 16, beam search with 4 beams, at most 64 tokens, 10 seeds, every validation MR.
    "paper": _plan("paper", tuple(range(10)), "App. C protocol; Deep LoRA rates from App. D.2 (inner 1e-2, outer 1e-4)",
                   backbone="t5-base", steps=400, batch_size=16, num_beams=4, max_new_tokens=64, n_eval=None),
    # ci: SmolLM2-135M-Instruct (4-bit GGUF offline), greedy decoding on a fixed subset of validation MRs. The paper's
    # 10 seeds (issue #26: at least 5): a run took 57 s of one core (AVX-512, bf16), so the 20 runs are computed into
    # the ledger (`sweeps run generation --into ledger`), not at build time.
    "ci": _plan(
        "ci", tuple(range(10)), "SmolLM2-135M-Instruct, fewer steps, greedy decoding on a fixed MR subset, two runs at a "
        "time with one torch thread each, training steps under bf16 autocast where the CPU has native bf16 (adapters "
        "and Adam's state float32, decoding float32)",
        backbone="smollm2", steps=40, batch_size=2, num_beams=1, max_new_tokens=40, n_eval=16, eval_batch_size=16,
        autocast="auto", workers=2,  # two one-thread runs side by side on the 2 cores
    ),
    # smoke: a tiny random LLaMA and a handful of steps; seconds.
    "smoke": _plan(
        "smoke", (0, 1), "tiny random LLaMA: checks the pipeline, not the method",
        vanilla_lr=1e-3, backbone="tiny-llama", steps=4, batch_size=8, num_beams=1, max_new_tokens=12, n_eval=8,
        eval_batch_size=8, autocast="bf16", workers=2,  # so that the test suite's smoke build runs the ci scale's way
    ),
}
"""The two methods (vanilla LoRA, compressed Deep LoRA) and seeds at each scale."""


def plan(scale: str) -> GenerationPlan:
    """The experiment's plan at ``scale``."""
    return resolve(PLANS, scale)[1]
