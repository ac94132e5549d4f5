"""Re-executing ledger runs: the first ``K`` training steps of a run, or the whole run.

Each kind of stored run (its config class) has a :class:`Replayer`:

- ``first(config, seed, steps, float32)`` re-executes the run's first ``steps`` updates exactly as the
  run itself takes them and returns the fields to compare with the record: the loss curve, and what a
  run fixes before it trains (the sample of training examples, the rate of every step);
- ``whole(config, seed, float32)`` re-executes the whole run and returns its result.

``float32=True`` computes in float32 where the config asks for bf16 autocast (what a CPU without bf16
does anyway): a record computed under bf16 is then compared within the tolerance of
:mod:`compressible.ledger.verify`.

The matrix experiments (Figs. 1, 3-5, App. D.1) have no steps to cut: their parts are verified by
re-executing them whole.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Replayer", "REPLAYERS", "replayer_for", "replay_precision"]


@dataclass(frozen=True)
class Replayer:
    """How to re-execute one config class (see the module docstring)."""

    first: Callable[[Any, int, int, bool], dict] | None
    whole: Callable[[Any, int, bool], dict]
    exact: tuple[str, ...]
    """Fields of a first-steps replay that no platform changes (compared for equality everywhere)."""


@functools.lru_cache(maxsize=4)
def _runner(device: str, threads: int | None):
    """The one :class:`~compressible.finetune.runner.Runner` (GLUE and generation runs) of ``device``, with its caches."""
    from ..finetune.runner import Runner

    return Runner(device=device, progress=False, threads=threads)


def _float32(config: Any, float32: bool) -> Any:
    return dataclasses.replace(config, autocast="off") if float32 and getattr(config, "autocast", "off") != "off" else config


def _first(config, seed, steps, float32, device="cpu", threads=None):
    return _runner(device, threads).replay(_float32(config, float32), seed, steps)


def _whole(config, seed, float32, device="cpu", threads=None):
    return _runner(device, threads).run(_float32(config, float32), seed)


def _completion_whole(config, seed, float32, device="cpu", threads=None):
    from ..experiments.completion.run import run_part

    return run_part(config, seed)


def _compression_whole(config, seed, float32, device="cpu", threads=None):
    from ..experiments.compression import run_factorization_track

    return {"rows": run_factorization_track(config, seed, store=None).to_dict("records")}


REPLAYERS: dict[str, Replayer] = {
    "RunConfig": Replayer(_first, _whole, ("sample_idx", "lr")),
    "GenerationConfig": Replayer(_first, _whole, ("train_indices",)),
    "WidthSweepConfig": Replayer(None, _completion_whole, ()),
    "CompressionRaceConfig": Replayer(None, _completion_whole, ()),
    "RandomVsCompressedConfig": Replayer(None, _completion_whole, ()),
    "SameErrorConfig": Replayer(None, _completion_whole, ()),
    "FactorizationTrackConfig": Replayer(None, _compression_whole, ()),
}
"""The replayer of every config class that the book's chapters store."""


def replayer_for(config: Any) -> Replayer:
    """The :class:`Replayer` of ``config``'s class; ``KeyError`` names the class when there is none."""
    name = type(config).__name__
    if name not in REPLAYERS:
        raise KeyError(f"no replayer for {name}; known config classes are {sorted(REPLAYERS)}")
    return REPLAYERS[name]


def replay_precision(config: Any, float32: bool, device: str = "cpu") -> str:
    """The precision a replay of ``config`` computes in on ``device``."""
    from .records import precision_of

    return precision_of(_float32(config, float32), {}, device)
