"""Few-shot GLUE (paper Sec. 4, Table 1 and Figs. 6-8): LoRA vs compressed Deep LoRA, and the checks behind it.

- **Table 1**: GLUE tasks with ``n`` training examples, LoRA vs Deep LoRA, several seeds.
- **Fig. 6**: STS-B with several ``n``.
- **Fig. 7**: the numerical rank of every learned update (STS-B, one ``n``, seed 0; the same runs
  as Fig. 6 when that ``n`` is one of Fig. 6's).
- **Fig. 8**: STS-B at one small ``n`` for several adapter ranks ``r``.
- **Checks**: float32 twins of bf16 runs, whether every run trained, and why compressed runs stall
  (:mod:`~compressible.experiments.fewshot_glue.diagnosis`).

``PLANS`` holds the frozen plan of each scale (``paper`` is the protocol of ``paper-notes.md`` Sec. 4);
:func:`~compressible.experiments.fewshot_glue.run.run` runs the tuning chapter's grid (:mod:`compressible.experiments.fewshot_tuning`), takes the rates
it chooses and runs the chapter's runs at them, then loads everything; :func:`summarise` computes every
statistic and conclusion the chapter shows and the scorecard judges (:class:`~compressible.experiments.fewshot_glue.summary.FewshotGlueSummary`);
``tables`` and ``figures``
build the chapter's tables and figures from the summary. :func:`~compressible.experiments.fewshot_glue.runs.experiments` lists the runs of a plan at given
rates (pure).
"""

from . import figures, tables
from .plan import CHAPTER, PARTS, PLANS, SCALED, FewshotGluePlan, plan
from .run import FewshotGlueResults, run
from .runs import experiments, planned, rate_free_runs
from .summarise import summarise
from .summary import FewshotGlueSummary

__all__ = ["CHAPTER", "PARTS", "PLANS", "plan", "run", "summarise", "FewshotGluePlan", "FewshotGlueResults",
           "FewshotGlueSummary", "SCALED", "experiments", "rate_free_runs", "planned", "tables", "figures"]
