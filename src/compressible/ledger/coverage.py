"""Which runs each chapter shows, and how many of them a store (the ledger) holds.

:func:`planned_runs` lists a chapter's runs at a scale as :class:`PlannedRun` (the figure or table it
feeds, its method, its config and seed) from the chapter's own frozen plan; :func:`coverage` counts them
per figure and method against a store and says where the stored ones were computed. The chapters
show :func:`coverage` under their figures; the ledger's verification groups runs by the same
``(chapter, method)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..scales import check_scale
from ..store import ResultStore, config_key

__all__ = ["PlannedRun", "STORED_CHAPTERS", "planned_runs", "coverage", "coverage_table", "computed_on"]

STORED_CHAPTERS = ("compression", "completion", "deep_lora_subspaces", "fewshot_tuning", "fewshot_glue", "fewshot_evidence",
                   "generation")
"""The chapters whose runs go through the result store (and so into the ledger), in book order.
The other chapters (invariant subspaces, nonlinear) compute their few seconds of numbers in every build."""


_COMPLETION_PARTS = {"WidthSweepConfig": "Fig. 1", "CompressionRaceConfig": "Fig. 5",
                     "RandomVsCompressedConfig": "App. D.1", "SameErrorConfig": "speed-up against d"}


@dataclass(frozen=True)
class PlannedRun:
    """One ``(config, seed)`` that a chapter shows."""

    chapter: str
    part: str
    """The figure or table it feeds (the chapter's own part names, e.g. ``fig6``)."""
    method: str
    config: Any
    seed: int

    @property
    def key(self) -> str:
        return config_key(self.config)


def _glue(chapter: str, scale: str, store: ResultStore | None) -> list[PlannedRun]:
    from ..experiments import deep_lora_subspaces, fewshot_glue, fewshot_tuning

    if chapter == "fewshot_tuning":
        experiments = fewshot_tuning.grid_runs(fewshot_tuning.plan(scale))
    elif chapter == "fewshot_glue":  # at the rates the stored grid chose (the plan's own while it is incomplete)
        p = fewshot_glue.plan(scale)
        experiments = fewshot_glue.experiments(p, None if store is None else fewshot_tuning.chosen_rates(p.tuning, store))
    else:
        experiments = deep_lora_subspaces.planned(deep_lora_subspaces.plan(scale), store)
    return [PlannedRun(chapter, e.part, e.label, e.config, seed) for e in experiments for seed in e.seeds]


def _evidence(scale: str, store: ResultStore | None) -> list[PlannedRun]:
    """The evidence plan's grid, then Fig. 6, Fig. 8 and Table 1 at the rates the grid in ``store`` chose (a
    method and ``n`` whose grid is not complete yet: at its first grid point, so that the count is right before
    the choice; without a store, every run so). Table 1 counts every seed of a task until its stored screening
    runs leave it out."""
    from ..experiments import fewshot_evidence as fe
    from ..experiments.fewshot_evidence.run import load_frame, screen
    from ..experiments.glue_runs import task_chance

    p = fe.plan(scale)
    grid = fe.grid(p)
    rates: dict = {}
    for n in p.n:
        for method in p.methods_at(n):
            rates.setdefault(method, {})[n] = p.points(method)[0]
    kept = None
    if store is not None:
        for method, chosen in fe.choose(p, load_frame(grid, store)).items():
            rates[method].update(chosen)
        screening = load_frame(fe.table1(p, rates, {}), store)
        if len(screening):
            kept = {task: keep is not False for task, keep in screen(
                p, screening, {task: task_chance(task) for task in p.table1.tasks}).items()}
    experiments = grid + fe.fig6(p, rates) + fe.fig8(p, rates) + fe.table1(p, rates, kept)
    return [PlannedRun("fewshot_evidence", e.part, e.label, e.config, seed) for e in experiments for seed in e.seeds]


def _generation(scale: str) -> list[PlannedRun]:
    from ..experiments import generation

    p = generation.plan(scale)
    return [PlannedRun("generation", "App. C", label, config, seed)
            for label, config in p.configs.items() for seed in p.seeds]


def _completion(scale: str) -> list[PlannedRun]:
    from ..experiments import completion

    runs = []
    for config, seeds in completion.plan(scale).parts():
        name = type(config).__name__
        method = {"SameErrorConfig": "original and compressed", "CompressionRaceConfig": "original and compressed",
                  "RandomVsCompressedConfig": "random and compressed"}.get(name) or f"depth {config.depth}"
        if name == "SameErrorConfig":
            method = f"{method}, by d"
        runs.extend(PlannedRun("completion", _COMPLETION_PARTS[name], method, config, s) for s in seeds)
    return runs


def _compression(scale: str) -> list[PlannedRun]:
    from ..experiments import compression

    return [PlannedRun("compression", "Figs. 3-4", "factorization track", compression.plan(scale).config, 0)]


def planned_runs(chapter: str, scale: str, store: ResultStore | str | None = None) -> list[PlannedRun]:
    """Every run ``chapter`` shows at ``scale``, in its plan's order.

    The tuning chapter's runs are its grid; the Few-shot GLUE chapter's runs (its figures, float32 twins and
    diagnosis) are listed at the rates the grid chose when ``store`` holds it, otherwise at the plan's own rates
    (the same number of runs).
    """
    check_scale(scale)
    if chapter not in STORED_CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; chapters with stored runs are {STORED_CHAPTERS}")
    if isinstance(store, str):
        store = ResultStore(store)
    if chapter in ("deep_lora_subspaces", "fewshot_tuning", "fewshot_glue"):
        return _glue(chapter, scale, store)
    if chapter == "fewshot_evidence":
        return _evidence(scale, store)
    return {"generation": _generation, "completion": _completion, "compression": _compression}[chapter](scale)


def computed_on(provenance: dict) -> str:
    """``"GPU (NVIDIA H100), bfloat16"`` / ``"CPU (AVX512), float32"``: where a record was computed."""
    if provenance.get("device") == "cuda":
        where = f"GPU ({provenance.get('gpu') or 'cuda'})"
    else:
        where = f"CPU ({provenance.get('cpu_capability') or '?'})"
    return f"{where}, {provenance.get('precision') or '?'}"


def coverage(runs: list[PlannedRun], store: ResultStore) -> pd.DataFrame:
    """One row per (figure, method): runs planned, held by ``store``, the missing seeds (listed), where the
    held ones were computed and when (first and last date)."""
    rows: dict[tuple[str, str], dict] = {}
    seen: set[tuple[str, str, str, int]] = set()
    for run in runs:
        if (run.part, run.method, run.key, run.seed) in seen:
            continue
        seen.add((run.part, run.method, run.key, run.seed))
        row = rows.setdefault((run.part, run.method), {"figure": run.part, "method": run.method, "planned": 0, "held": 0,
                                                       "missing": [], "_where": set(), "_when": [],
                                                       "_source": set()})
        row["planned"] += 1
        if not store.has(run.config, run.seed):
            row["missing"].append(f"seed {run.seed}" + ("" if _unique_config(runs, run) else f" ({run.key[:8]})"))
            continue
        row["held"] += 1
        from_ledger = type(store).__name__ == "Ledger" or store.in_ledger(run.config, run.seed)
        row["_source"].add("ledger" if from_ledger else "this build")
        record = store.load(run.config, run.seed)
        prov = record.get("_provenance") or _provenance_of(record)
        row["_where"].add(computed_on(prov))
        if prov.get("time"):
            row["_when"].append(str(prov["time"])[:10])
    table = []
    for row in rows.values():
        when = sorted(row.pop("_when"))
        where = sorted(row.pop("_where"))
        row["computed on"] = "; ".join(where) if where else "—"
        row["when"] = "—" if not when else (when[0] if when[0] == when[-1] else f"{when[0]} – {when[-1]}")
        row["missing"] = ", ".join(row["missing"]) if row["missing"] else "none"
        row["from"] = " and ".join(sorted(row.pop("_source"))) or "—"
        table.append(row)
    return pd.DataFrame(table, columns=["figure", "method", "planned", "held", "missing", "from", "computed on", "when"])


def coverage_table(chapter: str, scale: str, store: ResultStore | None = None):
    """:func:`coverage` of ``chapter`` at ``scale`` against ``store`` (default: the results folder read through the
    ledger, as the chapters read it), styled for a page."""
    store = store if store is not None else ResultStore()
    table = coverage(planned_runs(chapter, scale, store), store)
    held, planned = int(table["held"].sum()), int(table["planned"].sum())
    return table.style.hide(axis="index").set_caption(
        f"Runs behind this chapter ({scale} scale): {held} of {planned} planned runs stored")


def _unique_config(runs: list[PlannedRun], run: PlannedRun) -> bool:
    return len({r.key for r in runs if (r.part, r.method) == (run.part, run.method)}) == 1


def _provenance_of(record: dict) -> dict:
    """What a record without ``_provenance`` (a local run, not in the ledger) says about where it ran."""
    from .records import provenance

    return provenance(None, record, record.get("_environment", {}))
