"""Deep LoRA and its invariant subspaces (paper Sec. 4, Fig. 2 and App. D.2).

- **Fig. 2**: STS-B, the whole (filtered) training set, full-width Deep LoRA, lr 1e-4 decaying
  linearly to 1e-5, spectra and top-8 left singular subspaces of every update at checkpoints:
  are the final updates low-rank, and do their subspaces settle early?
- **App. D.2**: STS-B, n = 16, seed 0, evaluation every few steps: the original (full width,
  lr 1e-4) vs compressed (rank 8, inner lr 1e-2, gamma 1e-2) vs random narrow (rank 8, lr 1e-4).

``PLANS`` holds the frozen plan of each scale (submodule ``plan``); :func:`run` runs what the result store
lacks and loads the rest (``run``); :func:`~compressible.experiments.deep_lora_subspaces.summary.summarise` computes every statistic and decision the chapter shows and
the scorecard judges (:class:`~compressible.experiments.deep_lora_subspaces.summary.DeepLoraSubspacesSummary`, submodule ``summary``); the submodules ``tables`` and
``figures`` build the chapter's tables and figures.
"""

from . import figures, tables
from .plan import CHAPTER, D2_METHODS, FIG2_CHECKPOINTS, PARTS, PLANS, DeepLoraSubspacesPlan, experiments, plan, planned
from .run import DeepLoraSubspacesResults, run
from .summary import DeepLoraSubspacesSummary, summarise

__all__ = [
    "CHAPTER", "PARTS", "FIG2_CHECKPOINTS", "D2_METHODS", "PLANS", "plan", "experiments", "planned", "run",
    "summarise", "DeepLoraSubspacesPlan", "DeepLoraSubspacesResults", "DeepLoraSubspacesSummary",
]
