"""Running the Deep LoRA subspaces chapter: compute what the result store lacks, load every run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ...finetune.glue import data_card
from ...store import ResultStore
from ..contract import Execution, resolve
from ..glue_runs import as_store, load_runs, run_and_load
from .plan import D2_METHODS, PLANS, DeepLoraSubspacesPlan, experiments

__all__ = ["DeepLoraSubspacesResults", "run"]


@dataclass(frozen=True, eq=False)
class DeepLoraSubspacesResults:
    """The stored runs of the chapter (one seed each)."""

    scale: str
    plan: DeepLoraSubspacesPlan
    runs: pd.DataFrame
    """:func:`~compressible.experiments.glue_runs.results_frame` of every experiment."""
    fig2: dict
    """The stored Fig. 2 run (``checkpoints``, ``spectra``, ``train_loss``, ``final``, ...)."""
    d2: dict[str, dict]
    """The stored App. D.2 run of each variant of ``D2_METHODS``."""
    epsilon: float
    """Scale of the Fig. 2 adapters' initialisation: every singular value of ``Delta W(0)`` is ``epsilon**3``."""
    card: dict[str, Any] | None = None
    """STS-B's :func:`~compressible.finetune.glue.data_card` as :func:`run` read it (``None``: not read)."""


def run(plan: DeepLoraSubspacesPlan | str, store: ResultStore | str | None = None, device: str = "cpu", *,
        execution: Execution | None = None, scale: str | None = None) -> DeepLoraSubspacesResults:
    """Run what the result store lacks of the chapter's plan (or scale name), then load every run and read
    STS-B's data card (where the data came from: the hub or a local mirror)."""
    scale, p = resolve(PLANS, plan, scale)
    exps = experiments(p)
    store = as_store(store)
    runs = run_and_load(exps, store, device, execution, p)
    fig2 = next(e for e in exps if e.part == "fig2")
    d2 = {e.label: e for e in exps if e.part == "d2"}
    return DeepLoraSubspacesResults(
        scale, p, runs, load_runs(fig2, store)[fig2.seeds[0]],
        {m: load_runs(d2[m], store)[d2[m].seeds[0]] for m in D2_METHODS}, fig2.config.adapter.epsilon,
        card=data_card("stsb"),
    )
