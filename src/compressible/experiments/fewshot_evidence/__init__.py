"""Settling the few-shot claim (paper Fig. 6, issue #26): every method tuned at every ``n``, then enough seeds.

The chapter's contract (:mod:`compressible.experiments.contract`): ``PLANS``, :func:`~compressible.experiments.fewshot_evidence.plan.plan`, :func:`~compressible.experiments.fewshot_evidence.run.run`
(the tuning grid, the rates it chooses, Fig. 6 at them), :func:`~compressible.experiments.fewshot_evidence.summarise.summarise` (pure) and the figures and
tables in ``figures`` and ``tables``.
"""

from .plan import CHAPTER, LABELS, METHODS, PEFT_METHODS, PLANS, EvidencePlan, Fig8Evidence, Table1Evidence, fig6, fig8, grid, plan, table1
from .run import EvidenceRuns, choose, run
from .summarise import summarise
from .summary import EvidenceSummary

__all__ = ["CHAPTER", "METHODS", "PEFT_METHODS", "LABELS", "PLANS", "EvidencePlan", "Fig8Evidence", "Table1Evidence", "plan",
           "grid", "fig6", "fig8", "table1", "EvidenceRuns", "choose", "run", "EvidenceSummary", "summarise"]
