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
from ..glue_runs import Experiment, as_store, run_and_load, task_chance
from ..glue_stats import above_chance, distance_from_chance
from .plan import LABELS, METHODS, PEFT_METHODS, PLANS, EvidencePlan, Rate, fig6, fig8, grid, table1

__all__ = ["EvidenceRuns", "FRAME_COLUMNS", "load_frame", "choose", "screen", "run"]

_LABEL_METHOD = {label: m for m, label in LABELS.items()}


@dataclass(frozen=True, eq=False)
class EvidenceRuns:
    """What :func:`~compressible.experiments.fewshot_evidence.summarise.summarise` needs: the stored runs."""

    scale: str
    plan: EvidencePlan
    runs: pd.DataFrame
    """One row per stored run of the plan (:func:`load_frame`)."""
    rates: dict[str, dict[int, Rate]]
    """The chosen rate of every method at every ``n`` whose grid is complete."""
    missing: list[tuple[str, str, int, int]] = field(default_factory=list)
    """``(part, method, n, seed)`` of every planned run the store does not hold (runs that wait for a rate are
    counted at the seeds the plan gives them; Table 1's are counted per task, at every seed of a task not
    screened yet)."""
    chance: dict[str, float] = field(default_factory=dict)
    """Chance level (points) of every Table 1 task (:func:`~compressible.experiments.glue_runs.task_chance`)."""
    kept: dict[str, bool | None] = field(default_factory=dict)
    """Table 1's screen (:func:`screen`): per task, whether it left chance at the screening seed (``None``: not
    every method's screening run is stored yet)."""


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


FRAME_COLUMNS = ["part", "method", "task", "n", "steps", "rank", "lr", "gamma", "seed", "holdout", "value", "trained",
                 "wall_time", "cpu_time", "platform"]
"""The columns of :func:`load_frame`."""


def load_frame(experiments: list[Experiment], store: ResultStore) -> pd.DataFrame:
    """One row per stored ``(experiment, seed)``: ``part, method, task, n, steps, rank, lr, gamma, seed, holdout,
    value, trained, wall_time, cpu_time, platform`` (``rank``: ``None`` for adapters without one; ``holdout``: the final metric on the held-out training examples; ``value``: on the
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
                "part": e.part, "method": _LABEL_METHOD[e.label], "task": c.task, "n": c.n_train, "steps": c.steps,
                "rank": c.adapter.rank if c.adapter.init in ("lora", "compressed") else None, "lr": c.lr,
                "gamma": c.adapter.gamma if c.adapter.init == "compressed" else None, "seed": seed,
                "holdout": (r.get("holdout") or {}).get(metric, np.nan), "value": r["final"][metric],
                "trained": bool(r["trained"]), "wall_time": r["wall_time"], "cpu_time": _cpu_seconds(r),
                "platform": _platform(r),
            })
    return pd.DataFrame(rows, columns=FRAME_COLUMNS)


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


def screen(p: EvidencePlan, frame: pd.DataFrame, chance: dict[str, float]) -> dict[str, bool | None]:
    """Table 1's screen: per task, whether the best method's run at the screening seed (the first) is
    :data:`~compressible.experiments.glue_stats.CHANCE_MARGIN` points above the task's chance level (``None``
    until every method with a rate has its screening run stored). Pure."""
    t = p.table1
    if t is None:
        return {}
    at = frame[(frame.part == "table1") & (frame.seed == t.seeds[0])]
    out: dict[str, bool | None] = {}
    for task in t.tasks:
        runs = at[at.task == task]
        if len(runs) < len(METHODS):
            out[task] = None
        else:
            out[task] = above_chance(distance_from_chance(runs.value.astype(float), chance[task]))
    return out


def run(plan: EvidencePlan | str, store: ResultStore | str | None = None, device: str = "cpu", *,
        execution: Execution | None = None, scale: str | None = None) -> EvidenceRuns:
    """The plan in the issue's order, computing what ``store`` lacks (unless it may not compute: then only
    loading): Fig. 6's grid, Fig. 6 at the rates it chose, PEFT's family the same way, Fig. 8 at the rates chosen
    at its ``n``, Table 1's screening seed at the rates chosen at its ``rates_n``, then Table 1's other seeds of
    the tasks the screen keeps. Then loads every stored run of the plan."""
    scale, p = resolve(PLANS, plan, scale)
    store = as_store(store)

    def compute(experiments: list[Experiment]) -> None:
        if store.compute_missing and experiments:
            run_and_load(experiments, store, device, execution, p)

    tuning: list[Experiment] = []
    for part in (METHODS, PEFT_METHODS):
        part_grid = grid(p, part)
        compute(part_grid)
        tuning += part_grid
        rates = choose(p, load_frame(tuning, store))
        compute([e for e in fig6(p, rates) if _LABEL_METHOD[e.label] in part])
    compute(fig8(p, rates))
    chance = {task: task_chance(task) for task in (p.table1.tasks if p.table1 else ())}
    compute(table1(p, rates, {}))  # the screening seed of every task
    kept = screen(p, load_frame(table1(p, rates, {}), store), chance)
    compute(table1(p, rates, kept))
    planned = tuning + fig6(p, rates) + fig8(p, rates) + table1(p, rates, kept)
    frame = load_frame(planned, store)
    missing = [(e.part, _LABEL_METHOD[e.label], e.config.n_train, s) for e in planned for s in e.seeds
               if not store.has(e.config, s)]
    missing += [("peft" if m in PEFT_METHODS else "fig6", m, n, s) for n in p.n for m in p.methods_at(n)
                if n not in rates.get(m, {}) for s in p.seeds_of(m)]
    if p.fig8 is not None:
        missing += [("fig8", m, p.fig8.n, s) for m in METHODS if p.fig8.n not in rates.get(m, {})
                    for _ in ((None,) if m == "full" else p.fig8.ranks) for s in p.fig8.seeds]
    if p.table1 is not None:
        t = p.table1
        missing += [("table1", m, t.n, s) for m in METHODS if t.rates_n not in rates.get(m, {})
                    for _ in t.tasks for s in t.seeds]
        missing += [("table1", m, t.n, s) for m in METHODS if t.rates_n in rates.get(m, {})
                    for task in t.tasks if kept.get(task) is None for s in t.seeds[1:]]
    return EvidenceRuns(scale, p, frame, rates, missing, chance, kept)
