"""Few-shot GLUE, fair learning rates (paper Sec. 4 and App. D.2): the tuning grid and the rates it chooses.

The paper gives no learning rate for compressed Deep LoRA outside App. D.2, and a smaller backbone need not
share bert-base's best rate. Every method therefore gets the same number of grid points (LoRA: ``lr``;
compressed Deep LoRA: ``(inner lr, gamma)``), each run at the tuning ``n`` and seeds, and scored on training
examples *held out of every few-shot sample* (``RunConfig.holdout``), never on the validation split the
Few-shot GLUE chapter reports. The grid point with the best mean held-out score is the method's rate
(``choose``, as :class:`~compressible.experiments.fewshot_tuning.plan.Rates`); a chosen point's runs are the Few-shot GLUE chapter's runs at that ``n``
and seed (the same configuration).

``PLANS`` holds the plan of each scale (:class:`~compressible.experiments.fewshot_tuning.plan.FewshotTuningPlan`; at ``paper`` no grid: the paper's
rates); :func:`run` runs the grid (and nothing else), :func:`~compressible.experiments.fewshot_tuning.summary.summarise` gives :class:`~compressible.experiments.fewshot_tuning.summary.FewshotTuningSummary`,
:func:`~compressible.experiments.fewshot_tuning.run.chosen_rates` reads the choice back from a store holding the grid.
"""

from .plan import CHAPTER, PLANS, FewshotTuningPlan, Rate, Rates, TuningPlan, grid_runs, plan, stsb_fields
from .run import TuningResults, chosen_rates, run, tuning_frame
from .summary import FewshotTuningSummary, TuningSummary, choose, summarise
from .views import plot_sensitivity, tuning_table

__all__ = [
    "CHAPTER", "PLANS", "plan", "run", "summarise", "FewshotTuningPlan", "TuningPlan", "TuningResults",
    "FewshotTuningSummary", "TuningSummary", "Rates", "grid_runs", "chosen_rates", "tuning_table", "plot_sensitivity",
]
