"""The chapter's tables, from its summary."""

from __future__ import annotations

import pandas as pd

from ..style import PAPER_LABEL
from .plan import LABELS
from .summary import EvidenceSummary

__all__ = ["rates_table", "comparison_table", "family_table", "missing_table", "cost_table"]


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def rates_table(summary: EvidenceSummary) -> pd.DataFrame:
    """The chosen rate of every method at every ``n`` with its held-out score (``—``: the grid is not complete)."""
    rows = []
    for n in summary.n:
        for method in dict.fromkeys(g.method for g in summary.grid if g.n == n):
            label = LABELS[method]
            point = next((g for g in summary.grid if g.method == method and g.n == n and g.chosen), None)
            rows.append({
                "n": n, "method": label,
                "learning rate": "—" if point is None else f"{point.lr:g}",
                "γ": "" if point is None or point.gamma is None else f"{point.gamma:g}",
                "held-out Pearson": "—" if point is None else f"{_fmt(point.holdout_mean)} ± {_fmt(point.holdout_std)}",
                "grid runs held": sum(g.runs for g in summary.grid if g.method == method and g.n == n),
            })
    return pd.DataFrame(rows)


def comparison_table(summary: EvidenceSummary, baseline: str = "lora") -> pd.DataFrame:
    """Each method against ``baseline`` (a method key; default the authors' LoRA) at every ``n``: the paired gain
    with its 95 % interval, the answer, the authors' logged gain, and the power these seeds had against it."""
    rows = []
    for c in (c for c in summary.comparisons if c.baseline == baseline):
        s = c.scores
        rows.append({
            "n": c.n, "method": LABELS[c.method], "against": LABELS[c.baseline],
            "seeds (both trained / planned)": f"{0 if s is None else s.seeds} / {c.seeds_planned}",
            "gain (Pearson)": "—" if s is None else _fmt(s.gain),
            "95 % interval": "—" if s is None or s.low is None else f"[{s.low:+.3f}, {s.high:+.3f}]",
            "answer": str(c.answer),
            f"gain, {PAPER_LABEL}": "—" if c.paper_gain is None else f"{c.paper_gain:+.3f}",
            "power against it": "—" if c.power is None else f"{c.power:.0%}",
            "seeds for 80 %": "—" if c.seeds_for_power is None else str(c.seeds_for_power),
        })
    return pd.DataFrame(rows)


def missing_table(summary: EvidenceSummary) -> pd.DataFrame:
    """The planned runs not held yet, per part, method and ``n``."""
    return pd.DataFrame([{"runs": what, "missing": k} for what, k in summary.missing.items()],
                        columns=["runs", "missing"])


def family_table(summary: EvidenceSummary) -> pd.DataFrame:
    """Compressed and full-width Deep LoRA against each of PEFT's LoRA family where it ran: the paired gain with
    its 95 % interval and the answer, one row per variant and ``n``."""
    rows = []
    for c in (c for c in summary.comparisons if c.baseline != "lora"):
        s = c.scores
        row = next((r for r in rows if r["n"] == c.n and r["against"] == LABELS[c.baseline]), None)
        if row is None:
            row = {"n": c.n, "against": LABELS[c.baseline], "seeds": 0 if s is None else s.seeds}
            rows.append(row)
        gain = "—" if s is None or s.gain is None else f"{s.gain:+.3f}"
        interval = "" if s is None or s.low is None else f" [{s.low:+.3f}, {s.high:+.3f}]"
        row[f"{LABELS[c.method]} − it"] = f"{gain}{interval} ({c.answer})"
    return pd.DataFrame(rows)


def cost_table(summary: EvidenceSummary) -> pd.DataFrame:
    """Per method: runs planned and held, runs per core-hour measured on the held ones, and the core-hours the
    missing runs would take at that rate (``—`` while a method has no run to measure)."""
    rows = []
    for method, planned in summary.planned_by_method.items():
        rate = summary.runs_per_core_hour.get(method)
        left = planned - summary.held_by_method.get(method, 0)
        rows.append({"method": LABELS[method], "planned": planned, "held": summary.held_by_method.get(method, 0),
                     "runs per core-hour": "—" if rate is None else f"{rate:.1f}",
                     "core-hours left": "—" if rate is None else f"{left / rate:.1f}"})
    return pd.DataFrame(rows)
