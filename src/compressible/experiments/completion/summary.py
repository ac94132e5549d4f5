"""The completion chapter's summary: Fig. 1, Fig. 5, App. D.1 and the speed-up against ``d`` as typed data.

Every number and decision the chapter shows is a field here (:class:`CompletionSummary`), computed by
:func:`~compressible.experiments.completion.stats.summarise` and read by the scorecard.
"""

from __future__ import annotations

from ...summaries import Frozen, Summary

__all__ = [
    "WidthSweepStats",
    "RaceMethod",
    "RaceStats",
    "RankEstimate",
    "RandomVsCompressedStats",
    "ScalingPoint",
    "ScalingStats",
    "CompletionSummary",
]


class WidthSweepStats(Frozen):
    """Fig. 1: depth and width."""

    d: int
    """Size of the ``(d, d)`` targets."""
    true_rank: int
    """``r*`` of the targets."""
    error_widest: dict[int, float | None]
    """Depth -> median recovery error over trials at the widest width (``None`` if not finite)."""
    narrowest_width: int | None
    """Smallest width of the depth-3 sweep."""
    widest_width: int | None
    """Largest width of the depth-3 sweep."""
    steps_narrowest: float | None
    """Depth 3: mean iterations to the tolerance at the smallest width (the cap if not reached)."""
    steps_widest: float | None
    """Depth 3: mean iterations to the tolerance at the widest width."""


class RaceMethod(Frozen):
    """One model of the Fig. 5 race (a row of :func:`~compressible.matrix.race.race_summary`)."""

    method: str
    """``original`` or ``compressed γ=<gamma>``."""
    steps: int
    """Last step of the run."""
    final_test_loss: float
    """Recovery error at the last step."""
    final_train_loss: float
    """Train loss at the last step."""
    step_to_target: float | None
    """First logged step within 1 % of the original's final recovery error (``None``: never)."""
    time_to_target: float | None
    """Wall time (s) at that step, compression setup included (``None``: never)."""
    total_time: float
    """Wall time (s) of the whole run."""
    speedup: float | None
    """Original's time to target / this method's (``None``: not reached)."""


class RaceStats(Frozen):
    """Fig. 5: original vs compressed with ``gamma = 0`` and ``gamma > 0``."""

    d: int
    """Size of the target."""
    gamma: float | None
    """The positive ``gamma`` compared with the original (``None`` if only ``gamma = 0`` ran)."""
    speedup: float | None
    """Original / compressed (``gamma > 0``) wall time to the original's final recovery error (+1 %)."""
    error_original: float | None
    """Final recovery error of the original."""
    error_compressed: float | None
    """Final recovery error of the compression with ``gamma > 0``."""
    error_gamma0: float | None
    """Final recovery error of the compression with ``gamma = 0`` (``None`` if it did not run)."""
    methods: list[RaceMethod]
    """Every model of the race, in run order."""

    def row(self, method: str) -> RaceMethod | None:
        """The race row of ``method`` (e.g. ``"original"``), or ``None``."""
        return next((m for m in self.methods if m.method == method), None)

    @property
    def compressed(self) -> RaceMethod | None:
        """The race row of the compression with the positive ``gamma`` (``None`` if it did not run)."""
        return None if self.gamma is None else self.row(f"compressed γ={self.gamma:g}")


class RankEstimate(Frozen):
    """App. D.1 at one rank estimate (a row of :func:`~compressible.matrix.race.random_vs_compressed_summary`, means over trials)."""

    rank: int
    """Rank estimate ``r^``; both models have width ``2 r^``."""
    steps_compressed: float
    """Mean iterations of the compression (the cap when not converged)."""
    steps_random: float
    """Mean iterations of the random narrow model."""
    time_compressed: float
    """Wall time (s) of the batch of trials, compression setup included."""
    time_random: float
    """Wall time (s) of the random narrow batch."""
    test_loss_compressed: float
    """Mean final recovery error of the compression."""
    test_loss_random: float
    """Mean final recovery error of the random narrow model."""
    converged_compressed: float
    """Fraction of trials of the compression that reached the tolerance."""
    converged_random: float
    """Fraction of trials of the random narrow model that reached the tolerance."""
    steps_ratio: float
    """``steps_random / steps_compressed``."""
    time_ratio: float
    """``time_random / time_compressed``."""
    ratio_is_lower_bound: bool
    """The random model hit the step cap while the compression converged: the ratios are lower bounds."""


class RandomVsCompressedStats(Frozen):
    """App. D.1: compression vs random narrow factorisation of the same width."""

    d: int
    """Size of the targets."""
    max_steps: int
    """Step cap of every run."""
    trials: int
    """Problems per rank estimate (trained as one batch)."""
    tol: float
    """Train loss at which a run counts as converged."""
    speedup: float | None
    """Geometric mean over rank estimates of ``time_random / time_compressed``."""
    steps_ratio: float | None
    """Geometric mean over rank estimates of ``steps_random / steps_compressed``."""
    ratio_is_lower_bound: bool
    """True when at some rank estimate the random model hit the cap and the compression converged:
    the ratios are then lower bounds."""
    converged_random: float
    """Fraction of random narrow runs that reached the tolerance (mean over rank estimates)."""
    converged_compressed: float
    """Fraction of compressed runs that reached the tolerance."""
    ranks: list[RankEstimate]
    """Per rank estimate."""


class ScalingPoint(Frozen):
    """One size of the speed-up against ``d`` (a record of :func:`~compressible.matrix.scaling.race_to_same_error`)."""

    d: int
    """Size of the target."""
    lr: float
    """Step at this size."""
    comparison: str
    """``same error`` (times to the original's final recovery error within 1 %) or ``equal steps``
    (the original never left its initial plateau)."""
    steps_original: int
    """Steps of the original (to its tolerance or the cap)."""
    steps_compressed: int
    """Steps of the compression (to the target error, or as many as the original)."""
    time_original: float
    """Seconds of the original to ``e*`` (``same error``) or of all its steps (``equal steps``)."""
    time_compressed: float
    """Seconds of the compression to the same point, building the compression included."""
    setup_time: float
    """Seconds to build the compression (one gradient and one SVD)."""
    reached: bool
    """The compression reached the target error (always true for ``equal steps``)."""
    speedup: float | None
    """``time_original / time_compressed`` (``None`` if the compression did not reach the target)."""
    error_original: float
    """``e*``: the original's final recovery error."""
    error_compressed: float
    """The compression's recovery error where it stopped."""
    step_time_original: float
    """Seconds per step of the original (its training time / its steps)."""
    step_time_compressed: float
    """Seconds per step of the compression (its training time / its steps, set-up excluded)."""
    achieved_flops: float
    """FLOP/s of the original's training: ``3 (L - 1)`` dense ``(d, d)`` products per step."""
    matmul_flops: float
    """This machine's ``(d, d)`` matmul FLOP/s (the larger of before and after the original's training)."""

    @property
    def flops_fraction(self) -> float:
        """``achieved_flops / matmul_flops``: how close the original ran to the machine's matmul rate."""
        return self.achieved_flops / self.matmul_flops

    @property
    def step_speedup(self) -> float:
        """Seconds per step of the original / of the compression."""
        return self.step_time_original / self.step_time_compressed


class ScalingStats(Frozen):
    """Speed-up against ``d``: wall time of the original and of the compression to the same
    recovery error, with the log-log slopes against ``d``."""

    threads: int
    """Torch intra-op threads of the measurement."""
    dtype: str
    """Floating-point type."""
    points: list[ScalingPoint]
    """Per size, increasing ``d``."""
    slope_speedup: float | None
    """Slope of ``log speedup`` against ``log d`` (expected ≈ 1; ``None``: fewer than two speed-ups)."""
    slope_step_original: float
    """Slope of the original's seconds per step against ``d`` on log-log axes (expected ≈ 3)."""
    slope_step_compressed: float
    """Slope of the compression's seconds per step against ``d`` (expected ≈ 2)."""
    flops_fraction: float
    """Smallest ``achieved / matmul`` FLOP/s of the original over the sizes."""


class CompletionSummary(Summary):
    """Sec. 3: Fig. 1, Fig. 5 and App. D.1 measured at one scale."""

    chapter = "completion"

    fig1: WidthSweepStats
    """Fig. 1: depth and width."""
    fig5: RaceStats
    """Fig. 5: original vs compressed."""
    d1: RandomVsCompressedStats
    """App. D.1: compressed vs random narrow."""
    scaling: ScalingStats | None = None
    """Speed-up against ``d`` (not in the paper; ``None`` in summaries without it)."""
