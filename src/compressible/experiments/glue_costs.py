"""What a GLUE run costs, so that a pool of workers starts the longest runs first.

:func:`run_cost` estimates a run's cost from its steps, precision, sample size and adapter kind (factors
measured on the ci machine); :func:`longest_first` orders a sweep's runs seed by seed and, within a seed, by
that cost (:func:`~compressible.experiments.glue_runs.run_and_load` does, before handing them to worker processes
or Ray). Only the order of the runs depends on these numbers, never a result.
"""

from __future__ import annotations

from typing import Sequence

from ..finetune.classify import RunConfig

__all__ = ["FLOAT32_COST", "SAMPLE_COST", "ADAPTER_COST", "run_cost", "longest_first"]


FLOAT32_COST = 1.7
"""A float32 step's cost in bf16-autocast steps (the ci machine: 1.6-1.9x), for :func:`run_cost`."""

SAMPLE_COST = 1.25
"""A step's cost when the sample is larger than one batch, against one whose batch is the whole sample (the ci
machine, LoRA at 200 steps: n = 64 and 256 took 1.2-1.3x the time of n = 16, whose batch holds its short
examples every step), for :func:`run_cost`."""

ADAPTER_COST = {"lora": 1.0, "compressed": 1.15, "full": 1.6}
"""A step's cost per adapter kind against LoRA's (the ci machine, MiniLM at n = 16: compressed Deep LoRA r = 8
1.1-1.2x, the full-width depth-3 adapter on the attention weights and the pooler 1.4-1.8x), for :func:`run_cost`."""


def run_cost(config: RunConfig) -> float:
    """A run's estimated cost, in bf16 LoRA steps on one batch that is the whole sample: its steps times
    :data:`FLOAT32_COST` without autocast, :data:`SAMPLE_COST` when the sample is larger than a batch and
    :data:`ADAPTER_COST` of its adapter kind (1 for kinds not listed). Only the order of runs depends on it."""
    return (config.steps * (FLOAT32_COST if config.autocast == "off" else 1.0)
            * (SAMPLE_COST if config.n_train is None or config.n_train > config.batch_size else 1.0)
            * ADAPTER_COST.get(config.adapter.init, 1.0))


def longest_first(runs: Sequence[tuple[RunConfig, tuple[int, ...]]]) -> list[tuple[RunConfig, tuple[int, ...]]]:
    """``runs`` (``(config, seeds)``) as one ``(config, (seed,))`` per run, seed by seed (the lowest first) and,
    within a seed, the costliest first by :func:`run_cost` (stable otherwise).

    A sweep stopped part way then holds whole seeds, every configuration of each, which is what a paired
    comparison over seeds needs; and within a seed a long run started last would leave the other workers idle
    until it ends."""
    one = [(config, (seed,)) for config, seeds in runs for seed in seeds]
    return sorted(one, key=lambda run: (run[1][0], -run_cost(run[0])))
