"""The deep matrix completion chapter (paper Sec. 3, Fig. 1, Fig. 5, App. D.1; the speed-up against ``d`` is ours).

The chapter's contract (:mod:`compressible.experiments.contract`): ``PLANS`` and :func:`plan` (``plan.py``),
:func:`run` (``run.py``), :func:`~compressible.experiments.completion.stats.summarise` (``stats.py``) into a :class:`~compressible.experiments.completion.summary.CompletionSummary` (``summary.py``),
and the tables and figures that take it (``tables.py``, ``figures.py``). The experiments themselves are
the matrix engine's: :mod:`compressible.matrix.width` (Fig. 1), :mod:`compressible.matrix.race` (Fig. 5,
App. D.1) and :mod:`compressible.matrix.scaling` (the speed-up against ``d``).
"""

from .plan import CHAPTER, PLANS, CompletionPlan, plan
from .run import CompletionRuns, run
from .stats import summarise
from .summary import CompletionSummary

__all__ = ["CHAPTER", "PLANS", "plan", "CompletionPlan", "run", "CompletionRuns", "summarise", "CompletionSummary"]
