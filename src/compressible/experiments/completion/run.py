"""Running the completion chapter: compute the parts the result store lacks, then load every one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from ...executors import execute
from ...matrix.completion import torch_threads
from ...matrix.race import CompressionRaceConfig, RandomVsCompressedConfig, compression_race, random_vs_compressed
from ...matrix.scaling import SameErrorConfig, race_to_same_error
from ...matrix.width import WidthSweepConfig, width_sweep
from ...store import ResultStore
from ..contract import Execution, resolve
from .plan import PLANS, CompletionPlan

__all__ = ["CompletionRuns", "run_part", "run"]


@dataclass(frozen=True)
class CompletionRuns:
    """The tidy results of one scale: ``sweep`` (:func:`~compressible.matrix.width.width_sweep`, both
    depths stacked), ``race`` (:func:`~compressible.matrix.race.compression_race`), ``d1``
    (:func:`~compressible.matrix.race.random_vs_compressed`) and ``scaling`` (one
    :func:`~compressible.matrix.scaling.race_to_same_error` record per size, increasing ``d``), with the
    ``scale`` and the ``plan`` they ran under."""

    scale: str
    plan: CompletionPlan
    sweep: pd.DataFrame
    race: pd.DataFrame
    d1: pd.DataFrame
    scaling: pd.DataFrame


_KERNELS: dict[type, Callable[[Any, int], pd.DataFrame]] = {
    WidthSweepConfig: width_sweep,
    CompressionRaceConfig: compression_race,
    RandomVsCompressedConfig: random_vs_compressed,
    SameErrorConfig: lambda config, seed: pd.DataFrame([race_to_same_error(config, seed).record]),
}


def run_part(config: Any, seed: int) -> dict:
    """The stored record of one part of a :class:`~compressible.experiments.completion.plan.CompletionPlan`:
    ``{"rows": [...]}``, the rows of its kernel's frame (what the ledger keeps and replays)."""
    if type(config) not in _KERNELS:
        raise TypeError(f"no completion kernel for {type(config).__name__}; parts are "
                        f"{sorted(k.__name__ for k in _KERNELS)}")
    return {"rows": _KERNELS[type(config)](config, seed).to_dict("records")}


def _runner() -> Callable[[Any, int], dict]:
    """The run factory of :func:`compressible.executors.execute` (a module-level function: it is pickled)."""
    return run_part


def run(plan: CompletionPlan | str, store: ResultStore | str | None = None, device: str = "cpu", *,
        execution: Execution | None = None, scale: str | None = None) -> CompletionRuns:
    """Compute (or load from ``store``, default the results folder's) every part of ``plan``, seed 0.

    The parts run on the CPU (their wall times are what the chapter compares), so ``device`` must be
    ``"cpu"``. With more than one worker (``execution.workers``, else the plan's) or on Ray the missing
    parts are computed first side by side, one torch thread each unless ``execution.threads`` says
    otherwise (:func:`compressible.executors.execute`); a part that fails raises ``RuntimeError``.
    One worker computes them here, each at its own thread setting.
    """
    scale, p = resolve(PLANS, plan, scale)
    if device != "cpu":
        raise ValueError(f"the completion chapter times its runs on the CPU; got device={device!r}, give 'cpu'")
    execution = execution or Execution()
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    parts = p.parts()
    workers = execution.workers or p.workers
    if execution.executor == "ray" or workers > 1:
        ray = execution.executor == "ray"
        done = execute(parts, _runner, store, "ray" if ray else "processes", threads=execution.threads,
                       progress=execution.progress, desc="completion parts",
                       **(dict(execution.options) if ray else {"workers": workers}))
        if done.failed:
            raise RuntimeError(f"{len(done.failed)} part(s) of the completion chapter failed: "
                               + "; ".join(f"{f.description} seed {f.seed}: {f.error}" for f in done.failed))
    with torch_threads(execution.threads):
        rows = {config: store.run(config, [0], run_part, progress=False)[0]["rows"] for config, _ in parts}
    return CompletionRuns(
        scale=scale, plan=p,
        sweep=pd.concat([pd.DataFrame(rows[c]) for c in p.fig1], ignore_index=True),
        race=pd.DataFrame(rows[p.race]),
        d1=pd.DataFrame(rows[p.d1]),
        scaling=pd.concat([pd.DataFrame(rows[p.scaling.at(d)]) for d in p.scaling.sizes], ignore_index=True),
    )
