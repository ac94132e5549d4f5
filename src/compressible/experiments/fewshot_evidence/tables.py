"""The chapter's tables, from its summary."""

from __future__ import annotations

import pandas as pd

from ..style import PAPER_LABEL
from .plan import LABELS
from .summary import EvidenceSummary, RankScores, Training

__all__ = ["rates_table", "comparison_table", "family_table", "rank_table", "glue_table", "missing_table", "cost_table",
           "part_cost_table"]


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


def _mean_std(mean: float | None, std: float | None, seeds: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.3f}" + ("" if std is None else f" ± {std:.3f}") + f" ({seeds})"


UNTRAINED_MARK = {Training.UNTRAINED: "no seed trained", Training.PARTLY: "some seeds did not train"}
"""What a Fig. 8 cell adds when runs in it left the constant predictor's training loss nowhere."""


def rank_table(summary: EvidenceSummary) -> pd.DataFrame:
    """Fig. 8: each method's validation Pearson (mean ± std, seeds; :data:`UNTRAINED_MARK` where runs did not train)
    at every rank beside the authors' logged mean; the full-width adapter, which has no rank, on every row. Empty
    without Fig. 8 in the plan."""
    f = summary.fig8
    if f is None:
        return pd.DataFrame()
    at = {(p.method, p.rank): p for p in f.points}

    def cell(x: RankScores) -> str:
        mark = UNTRAINED_MARK.get(x.training)
        return _mean_std(x.mean, x.std, x.seeds) + ("" if mark is None or x.mean is None else f"; {mark}")

    rows = []
    for r in f.ranks:
        lora, comp, full = at["lora", r], at["compressed", r], at["full", None]
        rows.append({"r": r, "LoRA": cell(lora), f"LoRA, {PAPER_LABEL}": _fmt(lora.paper),
                     LABELS["compressed"]: cell(comp), f"Deep LoRA (width r), {PAPER_LABEL}": _fmt(comp.paper),
                     LABELS["full"] + " (no r)": cell(full)})
    return pd.DataFrame(rows)


def glue_table(summary: EvidenceSummary) -> pd.DataFrame:
    """Table 1: each method's mean (points, seeds) per task beside the authors', the task's chance level and
    whether the screen kept it. Empty without Table 1 in the plan."""
    t = summary.table1
    if t is None:
        return pd.DataFrame()
    screen = {True: "kept", False: "left out: at chance", None: "not screened yet"}
    rows = []
    for x in t.tasks:
        row = {"task": x.task, "metric": x.metric, "chance": _fmt(x.chance, 1), "screen": screen[x.kept]}
        for method in ("lora", "compressed", "full"):
            mean = x.means.get(method)
            row[LABELS[method]] = "—" if mean is None else f"{mean:.1f} ({x.seeds[method]})"
        row[f"LoRA, {PAPER_LABEL}"] = f"{x.paper['vanilla']:.1f}"
        row[f"Deep LoRA, {PAPER_LABEL}"] = f"{x.paper['deep']:.1f}"
        rows.append(row)
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
    """Per method: runs planned and held, runs per core-hour measured on the held CPU runs of the plan's steps, and
    the core-hours the missing runs would take at that rate (``—`` while a method has no run to measure); runs
    per GPU-hour too once the ledger holds runs computed on a GPU."""
    rows = []
    for method, planned in summary.planned_by_method.items():
        rate, left = summary.runs_per_core_hour.get(method), summary.core_hours_left.get(method)
        rows.append({"method": LABELS[method], "planned": planned, "held": summary.held_by_method.get(method, 0),
                     f"runs per core-hour ({summary.steps} steps)": "—" if rate is None else f"{rate:.1f}",
                     "core-hours left": "—" if left is None else f"{left:.1f}"})
        if summary.runs_per_gpu_hour:
            gpu = summary.runs_per_gpu_hour.get(method)
            rows[-1][f"runs per GPU-hour ({summary.steps} steps)"] = "—" if gpu is None else f"{gpu:.0f}"
    return pd.DataFrame(rows)


PARTS = {"tuning": "tuning grid", "fig6": "Fig. 6", "peft": "PEFT family", "fig8": "Fig. 8", "table1": "Table 1"}
"""The plan's parts, as the cost table names them."""


def part_cost_table(summary: EvidenceSummary) -> pd.DataFrame:
    """Per part of the plan and method, what one held CPU run cost: mean core-seconds and runs per core-hour (a part
    runs its own steps, ``n`` and tasks, so its cost is measured on its own runs)."""
    steps = {"fig8": summary.fig8.steps if summary.fig8 else None,
             "table1": summary.table1.steps if summary.table1 else None}
    rows = [{"part": PARTS.get(part, part), "method": LABELS[method], "steps": steps.get(part) or summary.steps,
             "core-seconds per run": f"{seconds:.0f}", "runs per core-hour": f"{3600.0 / seconds:.1f}"}
            for part in PARTS if part in summary.core_seconds_by_part
            for method, seconds in summary.core_seconds_by_part[part].items()]
    return pd.DataFrame(rows)
