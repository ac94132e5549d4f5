"""Few-shot generation on E2E NLG (paper App. C): vanilla LoRA vs compressed Deep LoRA.

With 16 training pairs per seed, adapters turn a meaning representation into one sentence
(:mod:`compressible.finetune.generate` trains and decodes one run; the one
:class:`~compressible.finetune.runner.Runner` computes it with the backbone and data cached).

:data:`~compressible.experiments.generation.plan.PLANS` holds the frozen plan of each scale (:mod:`.plan`: one
:class:`~compressible.finetune.generate.GenerationConfig` per method, the seeds); :func:`run` runs what
the result store lacks and loads the rest (:mod:`.run`); :func:`~compressible.experiments.generation.summary.summarise` computes every number the
chapter shows (:class:`~compressible.experiments.generation.summary.GenerationSummary`, :mod:`.summary`; the paired comparisons are
:class:`~compressible.experiments.paired.PairedScores`); ``tables`` and ``figures`` build the
chapter's tables and figures. The paper publishes no numbers for this experiment, so the summary holds
ours only.
"""

from . import figures, tables
from .plan import CHAPTER, DEEP_LABEL, MODEL_NAMES, PLANS, VANILLA_LABEL, GenerationPlan, plan
from .run import GenerationResults, run
from .summary import GenerationSummary, metrics_frame, summarise

__all__ = [
    "CHAPTER", "VANILLA_LABEL", "DEEP_LABEL", "MODEL_NAMES", "PLANS", "plan", "run", "summarise",
    "GenerationPlan", "GenerationResults", "GenerationSummary", "metrics_frame",
]
