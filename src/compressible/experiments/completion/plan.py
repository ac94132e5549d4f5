"""The completion chapter's frozen plan at each scale: every knob of Fig. 1, Fig. 5, App. D.1 and the
speed-up against ``d``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...matrix.completion import rescale_lr
from ...matrix.problems import check_int
from ...matrix.race import CompressionRaceConfig, RandomVsCompressedConfig
from ...matrix.scaling import SameErrorConfig, ScalingConfig
from ...matrix.width import WidthSweepConfig
from ..contract import resolve

__all__ = ["CHAPTER", "LR_FIG1", "CompletionPlan", "PLANS", "plan"]

CHAPTER = "completion"
"""The chapter's file name in ``book/``."""

LR_FIG1 = {2: 100.0, 3: 300.0}
"""Fig. 1 step sizes at the paper's ``d = 100`` (``paper_numbers.json``, ``matrix_completion/figure1``)."""


@dataclass(frozen=True)
class CompletionPlan:
    """What the chapter runs at one scale.

    Attributes:
        fig1: the Fig. 1 width sweeps, depth 2 then depth 3.
        race: the Fig. 5 run.
        d1: the App. D.1 comparison.
        scaling: the speed-up against ``d`` (not in the paper).
        notes: how this scale departs from the paper's protocol (shown in the chapter).
        workers: processes that compute the parts side by side, one torch thread each (``1``: one after
            another in this process, with each part's own thread setting).
    """

    fig1: tuple[WidthSweepConfig, WidthSweepConfig]
    race: CompressionRaceConfig
    d1: RandomVsCompressedConfig
    scaling: ScalingConfig
    notes: str
    workers: int = 1

    def __post_init__(self):
        if [c.depth for c in self.fig1] != [2, 3]:
            raise ValueError(f"fig1 must hold the depth-2 and the depth-3 sweep, got depths {[c.depth for c in self.fig1]}")
        check_int("workers", self.workers, 1)

    def parts(self) -> list[tuple[Any, tuple[int]]]:
        """Every part as ``(config, (seed 0,))``: the speed-up against ``d`` one size at a time, largest first
        (its original model costs most, ``O(d^3)`` a step), then the Fig. 5 race, App. D.1, the smaller sizes
        and Fig. 1, so that a pool of workers ends together."""
        largest, *smaller = [self.scaling.at(d) for d in reversed(self.scaling.sizes)]
        return [(largest, (0,)), (self.race, (0,)), (self.d1, (0,)), *((c, (0,)) for c in smaller),
                *((c, (0,)) for c in self.fig1)]


#: The frozen plan of the completion chapter at each scale (``smoke``, ``ci``, ``paper``).
PLANS: dict[str, CompletionPlan] = {
    "paper": CompletionPlan(
        fig1=tuple(WidthSweepConfig(depth=L, lr=LR_FIG1[L]) for L in (2, 3)),
        race=CompressionRaceConfig(),
        d1=RandomVsCompressedConfig(),
        scaling=ScalingConfig(race=SameErrorConfig(threads=None)),
        notes="the paper's protocol (Fig. 5 and App. D.1 in float32); the speed-up against d, ours, with torch's thread count",
    ),
    # Fig. 1: d 100 -> 50 (r* 10 -> 5, widths scaled), 2 trials, at most 20 000 steps, tol 1e-10.
    # Fig. 5 and D.1: d 1000 -> 200, steps rescaled by rescale_lr; D.1 with 3 rank estimates, 2 trials.
    "ci": CompletionPlan(
        fig1=tuple(
            WidthSweepConfig(d=50, true_rank=5, depth=L, lr=rescale_lr(LR_FIG1[L], 50, 100), widths=(5, 10, 20, 30, 50),
                             max_steps=20_000, trials=2)
            for L in (2, 3)
        ),
        race=CompressionRaceConfig(d=200, lr=rescale_lr(5e3, 200, 1000), max_steps=40_000, log_every=100, threads=1),
        d1=RandomVsCompressedConfig(d=200, lr=rescale_lr(5e3, 200, 1000), ranks=(5, 10, 15), trials=2,
                                    max_steps=20_000, threads=1),
        scaling=ScalingConfig(sizes=(100, 200, 400), race=SameErrorConfig(max_steps=40_000)),
        notes="d = 50 for Fig. 1 and d = 200 for Fig. 5 / App. D.1, step sizes rescaled, fewer trials and widths; "
              "the speed-up against d only up to d = 400; the parts run in two processes side by side, one torch "
              "thread each (every time is measured within one process, original and compressed alike)",
        workers=2,
    ),
    # smoke: tiny problems, larger init so that learning starts quickly
    "smoke": CompletionPlan(
        fig1=tuple(
            WidthSweepConfig(d=16, true_rank=2, depth=L, lr=20.0, epsilon=0.1, widths=(2, 8, 16), max_steps=300,
                             tol=1e-8, trials=2)
            for L in (2, 3)
        ),
        race=CompressionRaceConfig(d=24, true_rank=2, observed_fraction=0.5, lr=20.0, epsilon=0.1, max_steps=400,
                                   tol_original=1e-8, tol_compressed=1e-10, log_every=10, dtype="float64", threads=1),
        d1=RandomVsCompressedConfig(d=24, true_rank=2, observed_fraction=0.5, lr=20.0, epsilon=0.1, ranks=(2, 4),
                                    trials=2, max_steps=300, tol=1e-8, dtype="float64", threads=1),
        scaling=ScalingConfig(sizes=(16, 24, 32), race=SameErrorConfig(
            d=24, true_rank=2, observed_fraction=0.5, epsilon=0.1, lr=20.0, tol_original=1e-6, max_steps=2000,
            log_every=10, dtype="float64")),
        notes="tiny problems for a smoke test",
        workers=2,  # so that the test suite's smoke build computes the ci scale's way
    ),
}


def plan(scale: str) -> CompletionPlan:
    """The plan of ``scale`` (``smoke``, ``ci`` or ``paper``)."""
    return resolve(PLANS, scale)[1]
