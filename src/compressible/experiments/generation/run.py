"""Running the generation chapter: compute the runs the result store lacks, then load every one."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ...executors import execute
from ...finetune.e2e import EvalSet
from ...finetune.generate import GenerationConfig
from ...finetune.runner import Runner
from ...store import ResultStore
from ..contract import Execution, resolve
from .plan import DEEP_LABEL, PLANS, GenerationPlan

__all__ = ["GenerationResults", "run"]


@dataclass(frozen=True, eq=False)
class GenerationResults:
    """The stored runs of one scale and the evaluation set they were scored on."""

    scale: str
    plan: GenerationPlan
    runs: dict[str, list[dict]]
    """``{method label: stored result per seed}`` (see :func:`~compressible.finetune.generate.run_generation`)."""
    eval_set: EvalSet
    computed: int = 0
    """How many runs this call computed (the others came from the store)."""


def _describe(config: GenerationConfig) -> str:
    return config.adapter.label


def run(plan: GenerationPlan | str, store: ResultStore | str | None = None, device: str = "cpu", *,
        execution: Execution | None = None, scale: str | None = None) -> GenerationResults:
    """Run what the result store lacks of ``plan`` (a plan or a scale name), then load every run.

    The runs are computed by a :class:`~compressible.finetune.runner.Runner` on ``device``. With more than
    one worker (``execution.workers``, else the plan's) on a CPU, or on Ray, the missing runs are computed
    first side by side (:func:`compressible.executors.execute`, one torch thread each unless
    ``execution.threads`` says otherwise); a run that fails raises ``RuntimeError`` naming it.
    """
    scale, p = resolve(PLANS, plan, scale)
    execution = execution or Execution()
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    runner = Runner(device, progress=False, threads=execution.threads)
    computed = sum(not store.has(c, s) for c in p.configs.values() for s in p.seeds)
    workers = execution.workers or p.workers
    ray = execution.executor == "ray"
    if computed and (ray or (workers > 1 and runner.device.type == "cpu")):
        done = execute([(c, p.seeds) for c in p.configs.values()],
                       functools.partial(Runner, device=str(runner.device), progress=False), store,
                       "ray" if ray else "processes", threads=execution.threads, progress=execution.progress,
                       desc="generation runs", describe=_describe,
                       **(dict(execution.options) if ray else {"workers": workers}))
        if done.failed:
            raise RuntimeError(f"{len(done.failed)} run(s) failed (recorded in {store.url}): "
                               + "; ".join(str(f) for f in done.failed))
    runs = {label: store.run(config, p.seeds, runner, progress=execution.progress, desc=label)
            for label, config in p.configs.items()}
    return GenerationResults(scale, p, runs, runner.data(p.configs[DEEP_LABEL]).eval_set, computed)
