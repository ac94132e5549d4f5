"""Reducing the completion chapter's runs to its summary: :func:`summarise` and the statistics of each part."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...matrix.race import RandomVsCompressedConfig, race_summary, random_vs_compressed_summary
from ...matrix.scaling import ScalingConfig, loglog_slope
from ...summaries import finite
from .run import CompletionRuns
from .summary import (
    CompletionSummary,
    RaceMethod,
    RaceStats,
    RandomVsCompressedStats,
    RankEstimate,
    ScalingPoint,
    ScalingStats,
    WidthSweepStats,
)

__all__ = ["summarise", "width_sweep_stats", "race_stats", "d1_stats", "scaling_point", "scaling_stats"]


def scaling_point(record: dict) -> ScalingPoint:
    """A :class:`~compressible.experiments.completion.summary.ScalingPoint` from a
    :func:`~compressible.matrix.scaling.race_to_same_error` record."""
    reached = bool(record["reached_target"])
    steps_o, steps_c = int(record["steps_original"]), int(record["steps_compressed"])
    return ScalingPoint(
        d=int(record["d"]), lr=float(record["lr"]), comparison=str(record["comparison"]),
        steps_original=steps_o, steps_compressed=steps_c,
        time_original=float(record["time_original"]), time_compressed=float(record["time_compressed"]),
        setup_time=float(record["setup_time"]), reached=reached,
        speedup=finite(record["time_original"] / record["time_compressed"]) if reached else None,
        error_original=float(record["error_original"]), error_compressed=float(record["error_compressed"]),
        step_time_original=float(record["train_time_original"]) / max(steps_o, 1),
        step_time_compressed=float(record["train_time_compressed"]) / max(steps_c, 1),
        achieved_flops=record["flops_per_step_original"] * steps_o / record["train_time_original"],
        matmul_flops=max(float(record["matmul_flops_before"]), float(record["matmul_flops_after"])),
    )


def scaling_stats(results: pd.DataFrame, config: ScalingConfig) -> ScalingStats:
    """Speed-up statistics of the records of the speed-up against ``d`` (one row per size, any order)."""
    points = sorted((scaling_point(r) for r in results.to_dict("records")), key=lambda p: p.d)
    with_speedup = [p for p in points if p.speedup is not None]
    d = [p.d for p in points]
    return ScalingStats(
        threads=int(results.threads.iloc[0]), dtype=config.race.dtype, points=points,
        slope_speedup=loglog_slope([p.d for p in with_speedup], [p.speedup for p in with_speedup])
        if len(with_speedup) >= 2 else None,
        slope_step_original=loglog_slope(d, [p.step_time_original for p in points]),
        slope_step_compressed=loglog_slope(d, [p.step_time_compressed for p in points]),
        flops_fraction=min(p.flops_fraction for p in points),
    )


def width_sweep_stats(sweep: pd.DataFrame, d: int, true_rank: int) -> WidthSweepStats:
    """Fig. 1 statistics of :func:`~compressible.matrix.width.width_sweep` frames (both depths stacked)."""
    widest = sweep[sweep.width == sweep.width.max()].groupby("depth").test_loss.median()
    steps_by_width = sweep[sweep.depth == 3].groupby("width").steps.mean()
    empty = steps_by_width.empty
    return WidthSweepStats(
        d=d, true_rank=true_rank,
        error_widest={int(L): finite(e) for L, e in widest.items()},
        narrowest_width=None if empty else int(steps_by_width.index[0]),
        widest_width=None if empty else int(steps_by_width.index[-1]),
        steps_narrowest=None if empty else finite(steps_by_width.iloc[0]),
        steps_widest=None if empty else finite(steps_by_width.iloc[-1]),
    )


def race_stats(history: pd.DataFrame, d: int) -> RaceStats:
    """Fig. 5 statistics of a :func:`~compressible.matrix.race.compression_race` history."""
    table = race_summary(history)
    gamma_pos = [m for m in table.method if m.startswith("compressed") and not m.endswith("γ=0")]
    g0 = table[table.method.str.endswith("γ=0")]
    row_gp = table[table.method == gamma_pos[0]].iloc[0] if gamma_pos else None
    orig_row = table[table.method == "original"].iloc[0]
    gammas = history.drop_duplicates("method").set_index("method").gamma
    return RaceStats(
        d=d,
        gamma=float(gammas[gamma_pos[0]]) if gamma_pos else None,
        speedup=finite(float(row_gp.speedup) if row_gp is not None else float("nan")),
        error_original=finite(orig_row.final_test_loss),
        error_compressed=finite(row_gp.final_test_loss) if row_gp is not None else None,
        error_gamma0=finite(g0.iloc[0].final_test_loss) if len(g0) else None,
        methods=[
            RaceMethod(
                method=r.method, steps=int(r.steps), final_test_loss=float(r.final_test_loss),
                final_train_loss=float(r.final_train_loss), step_to_target=finite(r.step_to_target),
                time_to_target=finite(r.time_to_target), total_time=float(r.total_time),
                speedup=finite(r.speedup),
            )
            for r in table.itertuples()
        ],
    )


def d1_stats(results: pd.DataFrame, config: RandomVsCompressedConfig) -> RandomVsCompressedStats:
    """App. D.1 statistics of a :func:`~compressible.matrix.race.random_vs_compressed` frame."""
    per_rank = random_vs_compressed_summary(results)
    return RandomVsCompressedStats(
        d=config.d, max_steps=config.max_steps, trials=config.trials, tol=config.tol,
        speedup=finite(float(np.exp(np.log(per_rank.time_ratio).mean()))),
        steps_ratio=finite(float(np.exp(np.log(per_rank.steps_ratio).mean()))),
        ratio_is_lower_bound=bool(per_rank.ratio_is_lower_bound.any()),
        converged_random=float(per_rank.converged_random.mean()),
        converged_compressed=float(per_rank.converged_compressed.mean()),
        ranks=[RankEstimate(**{k: v.item() if hasattr(v, "item") else v for k, v in row.items()})
               for row in per_rank.to_dict("records")],
    )


def summarise(runs: CompletionRuns) -> CompletionSummary:
    """The chapter's numbers and decisions from :func:`~compressible.experiments.completion.run`'s results
    (pure: reads nothing but ``runs``)."""
    p = runs.plan
    c3 = p.fig1[-1]
    return CompletionSummary(
        scale=runs.scale,
        fig1=width_sweep_stats(runs.sweep, c3.d, c3.true_rank),
        fig5=race_stats(runs.race, p.race.d),
        d1=d1_stats(runs.d1, p.d1),
        scaling=scaling_stats(runs.scaling, p.scaling),
    )
