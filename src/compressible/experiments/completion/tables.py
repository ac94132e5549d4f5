"""The completion chapter's tables: one row per model, rank estimate or size, taken from its summary."""

from __future__ import annotations

import pandas as pd

from .summary import CompletionSummary

__all__ = ["race_table", "d1_table", "scaling_table"]


def _g(value, fmt: str = ".3g") -> str:
    return "–" if value is None else format(value, fmt)


def race_table(summary: CompletionSummary) -> pd.DataFrame:
    """Fig. 5 per model: steps, errors, time to the original's final recovery error and speed-up."""
    return pd.DataFrame([
        {"method": m.method, "steps": m.steps, "final recovery error": _g(m.final_test_loss),
         "final train loss": _g(m.final_train_loss), "step to target": _g(m.step_to_target, ".0f"),
         "time to target (s)": _g(m.time_to_target), "total time (s)": _g(m.total_time), "speed-up": _g(m.speedup)}
        for m in summary.fig5.methods
    ])


def d1_table(summary: CompletionSummary) -> pd.DataFrame:
    """App. D.1 per rank estimate (means over trials); ``≥`` marks a time ratio that is a lower bound."""
    return pd.DataFrame([
        {"r̂": r.rank, "iterations compressed": _g(r.steps_compressed, ".0f"), "iterations random": _g(r.steps_random, ".0f"),
         "time compressed (s)": _g(r.time_compressed), "time random (s)": _g(r.time_random),
         "recovery error compressed": _g(r.test_loss_compressed), "recovery error random": _g(r.test_loss_random),
         "converged compressed": f"{r.converged_compressed:.0%}", "converged random": f"{r.converged_random:.0%}",
         "time ratio": ("≥ " if r.ratio_is_lower_bound else "") + _g(r.time_ratio)}
        for r in summary.d1.ranks
    ])


def scaling_table(summary: CompletionSummary) -> pd.DataFrame:
    """Speed-up against ``d``, one row per size: steps, wall time to the same recovery error, the
    ratio, seconds per step and the original's FLOP/s against the matmul rate."""
    if summary.scaling is None:
        raise ValueError("this summary has no speed-up-against-d part (summary.scaling is None)")
    return pd.DataFrame([
        {"d": p.d, "compared at": p.comparison, "steps original": p.steps_original,
         "steps compressed": p.steps_compressed, "time original (s)": _g(p.time_original),
         "time compressed (s)": _g(p.time_compressed), "speed-up": _g(p.speedup),
         "ms/step original": _g(p.step_time_original * 1e3), "ms/step compressed": _g(p.step_time_compressed * 1e3),
         "per-step ratio": _g(p.step_speedup), "original GFLOP/s": _g(p.achieved_flops / 1e9),
         "matmul GFLOP/s": _g(p.matmul_flops / 1e9), "of matmul rate": f"{p.flops_fraction:.0%}"}
        for p in summary.scaling.points
    ])
