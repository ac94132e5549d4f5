"""Running the evidence plan: the tuning grid, the rates it chooses, then Fig. 6 at those rates.

:func:`run` is one linear script, shared by the book's chapter and ``python -m compressible.sweeps``:
compute what the store lacks of Fig. 6's grid, choose each method's rate at each ``n`` on the held-out
examples (:func:`choose`), compute Fig. 6 at the chosen rates, then do the same for PEFT's LoRA family,
and load every run the store holds. A
store that may not compute (a book built from the ledger alone, ``$COMPRESSIBLE_LEDGER_ONLY``) loads the
runs it holds and lists the others as missing: a partly filled ledger gives a page that says what is
missing instead of a failed build.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...store import ResultStore
from ..contract import Execution, resolve
from ..glue_runs import Experiment, as_store, run_and_load
from .plan import LABELS, METHODS, PEFT_METHODS, PLANS, EvidencePlan, Rate, fig6, grid

__all__ = ["EvidenceRuns", "load_frame", "choose", "run"]

_LABEL_METHOD = {label: m for m, label in LABELS.items()}


@dataclass(frozen=True, eq=False)
class EvidenceRuns:
    """What :func:`~compressible.experiments.fewshot_evidence.summary.summarise` needs: the stored runs."""

    scale: str
    plan: EvidencePlan
    runs: pd.DataFrame
    """One row per stored run of the grid and of Fig. 6 (:func:`load_frame`)."""
    rates: dict[str, dict[int, Rate]]
    """The chosen rate of every method at every ``n`` whose grid is complete."""
    missing: list[tuple[str, str, int, int]] = field(default_factory=list)
    """``(part, method, n, seed)`` of every planned run the store does not hold (Fig. 6 runs of a method and
    ``n`` whose grid is incomplete are counted at the seeds the plan gives them)."""


def _cpu_seconds(record: dict) -> float:
    """The processor time a run took: its training and evaluation CPU seconds plus the wall time of its short
    setup, compression and analysis phases (on a machine that other work shares, the wall time overstates
    what a run costs; a one-thread run's CPU seconds do not)."""
    t = record.get("timings") or {}
    if "train_cpu" not in t:
        return float(record["wall_time"])
    return float(t["train_cpu"] + t.get("eval_cpu", 0.0) + sum(t.get(k, 0.0) for k in ("setup", "compress", "analysis")))


def _platform(record: dict) -> str:
    """``"cuda (NVIDIA H100 ...)"`` or ``"cpu (AVX512)"``: where a run was computed, from its provenance."""
    prov = record.get("_provenance") or {}
    if prov.get("device") == "cuda" or str(record.get("device", "")).startswith("cuda"):
        return f"cuda ({prov.get('gpu') or '?'})"
    return f"cpu ({prov.get('cpu_capability') or '?'})"


def load_frame(experiments: list[Experiment], store: ResultStore) -> pd.DataFrame:
    """One row per stored ``(experiment, seed)``: ``part, method, n, lr, gamma, seed, holdout, value, trained,
    wall_time, cpu_time`` (``holdout``: the final metric on the held-out training examples; ``value``: on the
    validation set; ``cpu_time``: the training and evaluation processor seconds plus the short setup phases)."""
    rows = []
    for e in experiments:
        c = e.config
        for seed in e.seeds:
            if not store.has(c, seed):
                continue
            r = store.load(c, seed)
            metric = r["metric"]
            rows.append({
                "part": e.part, "method": _LABEL_METHOD[e.label], "n": c.n_train, "lr": c.lr,
                "gamma": c.adapter.gamma if c.adapter.init == "compressed" else None, "seed": seed,
                "holdout": (r.get("holdout") or {}).get(metric, np.nan), "value": r["final"][metric],
                "trained": bool(r["trained"]), "wall_time": r["wall_time"], "cpu_time": _cpu_seconds(r),
                "platform": _platform(r),
            })
    columns = ["part", "method", "n", "lr", "gamma", "seed", "holdout", "value", "trained", "wall_time", "cpu_time",
               "platform"]
    return pd.DataFrame(rows, columns=columns)


def choose(p: EvidencePlan, frame: pd.DataFrame) -> dict[str, dict[int, Rate]]:
    """``{method: {n: rate}}``: at every ``n`` whose grid of a method is complete (every point at every tuning
    seed), the point with the best mean held-out score (a NaN score counts as the worst; ties: the first point
    of the grid). Pure: reads only ``frame`` (:func:`load_frame` of the grid)."""
    chosen: dict[str, dict[int, Rate]] = {}
    tuning = frame[frame.part == "tuning"]
    for n in p.n:
        for method in p.methods_at(n):
            rows = tuning[(tuning.method == method) & (tuning.n == n)]
            scores = []
            for rate in p.points(method):
                lr, gamma = rate
                at = rows[(rows.lr == lr) & (rows.gamma.isna() if gamma is None else rows.gamma == gamma)]
                if sorted(at.seed) != sorted(p.tuning_seeds):
                    break
                h = at.holdout.to_numpy(dtype=float)
                scores.append(float(np.mean(h)) if np.all(np.isfinite(h)) else -np.inf)
            else:
                chosen.setdefault(method, {})[n] = p.points(method)[int(np.argmax(scores))]
    return chosen


def run(plan: EvidencePlan | str, store: ResultStore | str | None = None, device: str = "cpu", *,
        execution: Execution | None = None, scale: str | None = None) -> EvidenceRuns:
    """The grid, the rates it chooses and Fig. 6 at them: computes what ``store`` lacks (unless it may not
    compute: then only loads), then loads every stored run of the plan."""
    scale, p = resolve(PLANS, plan, scale)
    store = as_store(store)
    tuning: list[Experiment] = []
    chapter: list[Experiment] = []
    # the order the ledger fills in (issue #26): Fig. 6's grid, Fig. 6 at the rates it chose, then PEFT's family
    for part in (METHODS, PEFT_METHODS):
        part_grid = grid(p, part)
        if not part_grid:
            continue
        if store.compute_missing:
            run_and_load(part_grid, store, device, execution, p)
        tuning += part_grid
        rates = choose(p, load_frame(tuning, store))
        chapter = fig6(p, rates)
        if store.compute_missing:
            run_and_load([e for e in chapter if _LABEL_METHOD[e.label] in part], store, device, execution, p)
    frame = load_frame(tuning + chapter, store)
    missing = [(e.part, _LABEL_METHOD[e.label], e.config.n_train, s) for e in tuning + chapter for s in e.seeds
               if not store.has(e.config, s)]
    missing += [("peft" if m in PEFT_METHODS else "fig6", m, n, s) for n in p.n for m in p.methods_at(n)
                if n not in rates.get(m, {}) for s in p.seeds_of(m)]
    return EvidenceRuns(scale, p, frame, rates, missing)
