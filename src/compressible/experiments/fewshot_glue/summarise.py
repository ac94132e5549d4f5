"""Every statistic and conclusion of the chapter from its runs: :func:`summarise` (pure: no data is loaded)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...finetune.metrics import primary_metric
from ...reference import paper_value
from ..fewshot_tuning.summary import summarise_tuning
from ..glue_runs import METHOD_LABELS
from ...summaries import finite
from ..glue_stats import DEEP, LORA, above_chance, distance_from_chance, paired_frame
from ..paired import PairedScores, paired_scores
from .checks import summarise_precision, training_check
from .diagnosis import summarise_diagnosis
from .plan import SCALED
from .probes import RunProbe
from .run import FewshotGlueResults
from .summary import (
    FewshotGlueSummary,
    Fig6Summary,
    Fig7Summary,
    Fig8Summary,
    ProbedRun,
    ProbeFindings,
    RunTotals,
    Table1Summary,
    Table1Task,
    TrainableParams,
)

__all__ = ["summarise"]


def _best_mean(frame: pd.DataFrame, key: str) -> float:
    return float(frame.groupby(key)[[LORA, DEEP]].mean().max().max())


def summarise(results: FewshotGlueResults) -> FewshotGlueSummary:
    """Every statistic of the chapter from its runs (pure: no data is loaded)."""
    p, runs = results.plan, results.runs
    tuning = (summarise_tuning(results.grid, p.tuning.grid, p.methods.holdout)
              if p.tuning.grid is not None and results.grid is not None else None)
    precision = None
    if p.precision is not None and results.twins is not None:
        precision = summarise_precision(*results.twins, METHOD_LABELS[p.precision.method], p.precision.n)
    return FewshotGlueSummary(
        scale=results.scale, backbone=p.backbone, table1=_table1(results) if p.table1 is not None else None,
        fig6=_fig6(runs, len(p.fig6.seeds)), fig7=_fig7(results), fig8=_fig8(results) if p.fig8 is not None else None,
        tuning=tuning, precision=precision, training=training_check(runs[runs.part != "precision"]),
        diagnosis=summarise_diagnosis(results.diagnosis, p.diagnosis) if p.diagnosis is not None else None,
        mirror=results.mirror, totals=_totals(runs),
    )


def _totals(runs: pd.DataFrame) -> RunTotals:
    trainable = runs.groupby(["method", "rank"])["trainable_params"].first()
    return RunTotals(rows=len(runs), configs=int(runs["key"].nunique()),
                     minutes=float(runs.drop_duplicates(["key", "seed"])["wall_time"].sum() / 60),
                     trainable=[TrainableParams(method=m, rank=int(r), params=int(t)) for (m, r), t in trainable.items()])


def _table1(results: FewshotGlueResults) -> Table1Summary:
    p, runs = results.plan, results.runs
    t1 = paired_frame(runs[runs.part == "table1"], ["task"])
    tasks = [t for t in p.table1.tasks if t in set(t1.task)]
    complete = t1.dropna(subset=[LORA, DEEP]).groupby("seed")["task"].nunique() == len(tasks)
    per_seed_avg = (t1[t1.seed.isin(complete[complete].index)]  # seeds with every task stored for both methods
                    .groupby("seed")[[LORA, DEEP, "diff"]].mean())  # average over tasks, per seed
    lora_avg, deep_avg = float(per_seed_avg[LORA].mean() * 100), float(per_seed_avg[DEEP].mean() * 100)
    pv = {m: paper_value("table1_glue_1024", m) for m in ("vanilla", "deep")}
    paper_avg = {m: float(np.mean([pv[m][t] for t in tasks])) for m in ("vanilla", "deep")}
    by_task = {}
    for task in tasks:
        g = t1[t1.task == task]
        chance = results.chance[task]
        distance = max(g[m].mean() * 100 - chance for m in (LORA, DEEP))
        by_task[task] = paired_scores(g, 100, cls=Table1Task, metric=primary_metric(task), chance=chance,
                                      distance_from_chance=finite(distance), above_chance=above_chance(distance))
    gains = {task: s.gain for task, s in by_task.items() if s.gain is not None}
    avg = per_seed_avg.reset_index()
    average = paired_scores(avg, 100).model_copy(
        update={"lora": finite(lora_avg), "deep": finite(deep_avg), "gain": finite(deep_avg - lora_avg)})
    return Table1Summary(
        n=int(p.table1.n), tasks=list(tasks), seeds=int(len(per_seed_avg)), by_task=by_task,
        lora_average=finite(lora_avg), deep_average=finite(deep_avg), average_gain=finite(deep_avg - lora_avg),
        average=average, paper_average_gain_same_tasks=paper_avg["deep"] - paper_avg["vanilla"],
        tasks_above_chance=[t for t in tasks if by_task[t].above_chance],
        tasks_near_chance=[t for t in tasks if not by_task[t].above_chance],
        tasks_deep_ahead=sum(v > 0 for v in gains.values()),
        best_task=max(gains, key=gains.get) if gains else None, worst_task=min(gains, key=gains.get) if gains else None,
    )


def _fig6(runs: pd.DataFrame, seeds: int) -> Fig6Summary:
    fig6_runs = runs[runs.part == "fig6"]
    f6 = paired_frame(fig6_runs, ["n_train"])
    f6_n = sorted(int(n) for n in f6.n_train.unique())
    best6 = _best_mean(f6, "n_train")
    by_n = {n: paired_scores(f6[f6.n_train == n]) for n in f6_n}
    full_label = METHOD_LABELS["full"]
    full_by_n: dict[int, PairedScores] = {}
    if full_label in set(fig6_runs.method):
        fw = paired_frame(fig6_runs, ["n_train"], method=full_label).rename(columns={full_label: DEEP})
        fw = fw.dropna(subset=[LORA, DEEP])
        full_by_n = {int(n): paired_scores(fw[fw.n_train == n]) for n in sorted(fw.n_train.unique())}
        best6 = max(best6, float(fw[DEEP].mean()))
    worse = {n: bool(s.gain is not None and by_n[n].gain is not None and s.low is not None and s.low > by_n[n].gain)
             for n, s in full_by_n.items()}
    return Fig6Summary(n=f6_n, seeds=seeds, by_n=by_n, full_by_n=full_by_n, best_mean=finite(best6),
                       at_chance=not above_chance(distance_from_chance([best6])),
                       untrained=_untrained_by(fig6_runs, "n_train"), full_beats_compressed=worse)


def _fig7(results: FewshotGlueResults) -> Fig7Summary:
    r7 = results.fig7_rank
    ranks7 = {m: np.array([v["rank"] for v in results.fig7[m]["spectra"].values()]) for m in (LORA, DEEP)}
    norms7 = {m: np.array([v["singular_values"][0] for v in results.fig7[m]["spectra"].values()]) for m in (LORA, DEEP)}
    counts = {m: np.bincount(ranks7[m], minlength=r7 + 1)[: r7 + 1] for m in (LORA, DEEP)}
    zero = float(np.mean(ranks7[DEEP] == 0))
    return Fig7Summary(
        n_updates=int(len(ranks7[DEEP])), rank_cap=int(r7),
        lora_rank_counts=[int(c) for c in counts[LORA]], deep_rank_counts=[int(c) for c in counts[DEEP]],
        deep_fraction_rank0=zero, deep_fraction_rank_le4=float(np.mean(ranks7[DEEP] <= 4)),
        deep_median_rank=float(np.median(ranks7[DEEP])), lora_fraction_full_rank=float(np.mean(ranks7[LORA] == r7)),
        lora_median_rank=float(np.median(ranks7[LORA])),
        deep_max_norm=float(norms7[DEEP].max()), lora_max_norm=float(norms7[LORA].max()), deep_mostly_rank0=zero > 0.5,
    )


def _fig8(results: FewshotGlueResults) -> Fig8Summary:
    p, runs = results.plan, results.runs
    f8 = paired_frame(runs[runs.part == "fig8"], ["rank"])
    f8_r = sorted(int(r) for r in f8["rank"].unique())
    f8_mean = {m: {r: float(f8[f8["rank"] == r][m].mean()) for r in f8_r} for m in (LORA, DEEP)}
    lo, hi = f8_r[0], f8_r[-1]
    best8 = _best_mean(f8, "rank")
    scaled, scaled_drop = {}, None
    sf = _scaled_frame(results)
    if sf is not None:
        scaled = {int(r): paired_scores(sf[sf["rank"] == r]) for r in sorted(sf["rank"].unique())}
        if lo in scaled and hi in scaled and scaled[lo].deep is not None and scaled[hi].deep is not None:
            scaled_drop = scaled[lo].deep - scaled[hi].deep
        best8 = max(best8, float(sf[DEEP].mean()))
    untrained = _untrained_by(runs[runs.part == "fig8"], "rank")
    deep_failed, scaled_failed = untrained.get(DEEP, {}), untrained.get(SCALED, {})
    probes = _run_probes(results.probes, runs[runs.part == "fig8"])
    return Fig8Summary(
        ranks=f8_r, seeds=len(p.fig8.seeds), by_rank={r: paired_scores(f8[f8["rank"] == r]) for r in f8_r},
        lora_drop_smallest_to_largest_r=finite(f8_mean[LORA][lo] - f8_mean[LORA][hi]),
        deep_drop_smallest_to_largest_r=finite(f8_mean[DEEP][lo] - f8_mean[DEEP][hi]),
        best_mean=finite(best8), at_chance=not above_chance(distance_from_chance([best8])), untrained=untrained,
        scaled_by_rank=scaled, scaled_drop_smallest_to_largest_r=finite(scaled_drop) if scaled_drop is not None else None,
        rate_rank=p.fig8.rate_rank if scaled else None,
        scaled_rescued=[r for r in scaled if r in deep_failed and r not in scaled_failed and r != p.fig8.rate_rank],
        scaled_untrained=sorted(scaled_failed) if scaled else [],
        probes=probes, probe_findings=_probe_findings(probes),
    )


def _scaled_frame(results: FewshotGlueResults) -> pd.DataFrame | None:
    """Fig. 8's rate-scaled compressed runs paired with LoRA (the scaled scores in the ``DEEP`` column), the
    compressed runs at ``rate_rank`` standing for the scaled ones there (the same runs); ``None`` when not run."""
    p, runs = results.plan, results.runs
    f8 = runs[runs.part == "fig8"]
    if not p.fig8.scaled_seeds or SCALED not in set(f8.method):
        return None
    at_rate_rank = f8[(f8.method == DEEP) & (f8["rank"] == p.fig8.rate_rank) & f8.seed.isin(p.fig8.scaled_seeds)]
    frame = pd.concat([f8[f8.method.isin((LORA, SCALED))], at_rate_rank.assign(method=SCALED)])
    sf = paired_frame(frame, ["rank"], method=SCALED).rename(columns={SCALED: DEEP})
    return sf[sf.seed.isin(p.fig8.scaled_seeds)]


def _run_probes(probes: dict[str, dict[int, dict[int, list[dict]]]], runs: pd.DataFrame) -> dict[str, dict[int, list[RunProbe]]]:
    trained = {(m, int(r), int(s)): bool(t) for m, r, s, t in zip(runs.method, runs["rank"], runs.seed, runs.trained)}
    return {m: {rank: [RunProbe(seed=seed, trained=trained[(m, rank, seed)], start_spread=ps[0]["spread"],
                                final_spread=ps[-1]["spread"], final_saturated=ps[-1]["saturated"])
                       for seed, ps in sorted(by_seed.items())]
                for rank, by_seed in sorted(by_rank.items())}
            for m, by_rank in sorted(probes.items())}


def _probe_findings(probes: dict[str, dict[int, list[RunProbe]]]) -> ProbeFindings | None:
    runs = [(ProbedRun(method=m, rank=r, seed=x.seed), x) for m, by_rank in probes.items() for r, xs in by_rank.items()
            for x in xs]
    if not runs:
        return None
    failed = [(name, x) for name, x in runs if not x.trained]
    ok = [x for _, x in runs if x.trained]
    collapsed = [name for name, x in failed if x.collapsed]
    return ProbeFindings(trained=len(ok), trained_collapsed=sum(x.collapsed for x in ok), untrained=[n for n, _ in failed],
                         collapsed=collapsed, saturated=[name for name, x in failed if x.saturated],
                         collapse_marks_stall=bool(failed) and len(collapsed) == len(failed) and not any(x.collapsed for x in ok))


def _untrained_by(runs: pd.DataFrame, key: str) -> dict[str, dict[int, list[int]]]:
    """``{method: {value of key: seeds of the runs that did not train}}`` of ``runs`` (``key``: ``"rank"`` or
    ``"n_train"``; methods and values without any left out)."""
    failed = runs[~runs["trained"].astype(bool)]
    return {m: {int(v): sorted(int(x) for x in gv["seed"]) for v, gv in g.groupby(key)}
            for m, g in failed.groupby("method")}
