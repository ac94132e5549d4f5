"""The generation chapter's tables: scores per method, the paired differences per seed, example sentences."""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from ...finetune.e2e import EvalSet
from .summary import GenerationSummary, metric_columns

__all__ = ["METRIC_NAMES", "summary_table", "paired_table", "examples_table"]

METRIC_NAMES = {"bleu": "BLEU", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "meteor": "METEOR",
                "final_loss": "final training loss"}
"""How tables and figures name each metric."""



def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean ± standard deviation over seeds of every metric, one row per method."""
    cols = metric_columns(frame) + ["final_loss"]
    grouped = frame.groupby("method", sort=False)[cols]
    mean, std = grouped.mean(), grouped.std(ddof=1).fillna(0.0)
    return pd.DataFrame({c: [f"{m:.2f} ± {s:.2f}" for m, s in zip(mean[c], std[c])] for c in cols}, index=mean.index)



def paired_table(summary: GenerationSummary) -> pd.DataFrame:
    """One row per seed: Deep LoRA - vanilla LoRA in every metric (points; the two share the few-shot set of a seed)."""
    seeds = sorted({s for p in summary.paired.values() for s in p.differences})
    table = {"seed": seeds}
    for metric, p in summary.paired.items():
        table[METRIC_NAMES.get(metric, metric)] = [p.differences.get(s) for s in seeds]
    return pd.DataFrame(table)


def examples_table(results: Mapping[str, Sequence[dict]], references: EvalSet | None = None, *,
                   seed: int = 0, n: int = 4) -> pd.DataFrame:
    """The first ``n`` evaluated MRs with each method's sentence (for ``seed``) and one reference."""
    runs = {label: next(r for r in runs if r["_seed"] == seed) for label, runs in results.items()}
    mrs = next(iter(runs.values()))["mrs"][:n]
    table: dict[str, list[str]] = {"MR": mrs}
    for label, r in runs.items():
        table[label] = r["predictions"][:n]
    if references is not None:
        lookup = dict(zip(references.mrs, references.references))
        table["a human reference"] = [lookup[mr][0] for mr in mrs]
    return pd.DataFrame(table)


# ------------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------------
