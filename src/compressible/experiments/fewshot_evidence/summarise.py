"""Summarising the evidence plan's runs (:func:`summarise`, pure: it reads only its argument) into an
:class:`~compressible.experiments.fewshot_evidence.summary.EvidenceSummary`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...finetune.metrics import primary_metric
from ...reference import paper_value
from ...summaries import finite
from ..glue_stats import above_chance, distance_from_chance, paired_power, paired_seeds
from ..paired import PairedScores, paired_scores
from .plan import METHODS, PEFT_METHODS
from .run import EvidenceRuns
from .summary import (Answer, Comparison, EvidenceSummary, GlueTable, GridPoint, MethodScores, RankScores, RankSweep,
                      TaskScores, Training)

__all__ = ["on_edge", "across_n", "summarise"]


def _grid(runs: EvidenceRuns) -> list[GridPoint]:
    t = runs.runs[runs.runs.part == "tuning"]
    points = []
    for n in runs.plan.n:
        for method in runs.plan.methods_at(n):
            for lr, gamma in runs.plan.points(method):
                at = t[(t.method == method) & (t.n == n) & (t.lr == lr)
                       & (t.gamma.isna() if gamma is None else t.gamma == gamma)]
                h = at.holdout.to_numpy(dtype=float)
                h = h[np.isfinite(h)]
                points.append(GridPoint(
                    method=method, n=n, lr=lr, gamma=gamma, runs=len(at), trained=int(at.trained.sum()),
                    holdout_mean=finite(h.mean()) if len(h) else None,
                    holdout_std=finite(h.std(ddof=1)) if len(h) > 1 else None,
                    chosen=runs.rates.get(method, {}).get(n) == (lr, gamma)))
    return points


def _training(frame: pd.DataFrame) -> Training:
    if frame.empty:
        return Training.NOT_RUN
    if frame.trained.all():
        return Training.TRAINED
    return Training.PARTLY if frame.trained.any() else Training.UNTRAINED


def _answer(scores: PairedScores | None) -> Answer:
    if scores is None or scores.seeds == 0:
        return Answer.NOT_RUN
    if scores.low is None or scores.high is None:
        return Answer.TOO_FEW
    if scores.low > 0:
        return Answer.BETTER
    return Answer.WORSE if scores.high < 0 else Answer.UNDECIDED


def _by_seed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby("seed").agg(value=("value", "mean"), trained=("trained", "all"))


def _compare(base: pd.DataFrame, other: pd.DataFrame, *, method: str, baseline: str, n: int, seeds_planned: int,
             paper: float | None, at_chance: bool | None = None) -> Comparison:
    """``other`` against ``base`` (each indexed by seed, with ``value`` and ``trained``), paired over the seeds
    where both are stored and trained; ``at_chance`` (``None``: from the two means, chance 0)."""
    both = sorted(set(base.index) & set(other.index))
    untrained = [s for s in both if not (base.trained[s] and other.trained[s])]
    kept = [s for s in both if s not in untrained]
    scores = None
    if kept:
        g = pd.DataFrame({"seed": kept, "base": base.value[kept].to_numpy(), "other": other.value[kept].to_numpy()})
        g["diff"] = g["other"] - g["base"]
        scores = paired_scores(g, method="other", baseline="base")
    sd = scores.gain_std if scores is not None else None
    power = seeds_for = None
    if sd and paper is not None and scores.seeds >= 2:
        power = paired_power(scores.seeds, paper, sd)
        try:
            seeds_for = paired_seeds(paper, sd)
        except ValueError:  # more than the helper's cap: report none
            seeds_for = None
    answer = Answer.UNTRAINED if both and not kept else _answer(scores)
    if at_chance is None:
        at_chance = scores is not None and not above_chance(
            distance_from_chance([x for x in (scores.lora, scores.deep) if x is not None]))
    return Comparison(method=method, baseline=baseline, n=n, seeds_planned=seeds_planned, untrained_seeds=untrained,
                      scores=scores, answer=answer, at_chance=at_chance, paper_gain=paper,
                      power=power, seeds_for_power=seeds_for)


def _comparison(f6: pd.DataFrame, method: str, n: int, seeds_planned: int, baseline: str = "lora") -> Comparison:
    base = f6[(f6.method == baseline) & (f6.n == n)].set_index("seed")
    other = f6[(f6.method == method) & (f6.n == n)].set_index("seed")
    # the authors' logs compare Deep LoRA with their LoRA: a PEFT variant against that LoRA has no paper gain
    paper = float(paper_value("figure6_stsb_fewshot", "paired_difference", str(n), "mean")) if str(n) in (
        "16", "64", "256") and baseline == "lora" and method in METHODS else None
    return _compare(base, other, method=method, baseline=baseline, n=n, seeds_planned=seeds_planned, paper=paper)


def _fig8(runs: EvidenceRuns) -> RankSweep | None:
    f = runs.plan.fig8
    if f is None:
        return None
    frame = runs.runs[runs.runs.part == "fig8"]
    points = []
    for method in METHODS:
        for rank in ((None,) if method == "full" else f.ranks):
            at = frame[(frame.method == method) & (frame["rank"].isna() if rank is None else frame["rank"] == rank)]
            v = at.value.to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            paper = {"lora": "vanilla", "compressed": "deep"}.get(method)
            points.append(RankScores(
                method=method, rank=rank, mean=finite(v.mean()) if len(v) else None,
                std=finite(v.std(ddof=1)) if len(v) > 1 else None, seeds=len(at), training=_training(at),
                paper=None if paper is None or rank is None else finite(paper_value("figure8_rank_sweep_stsb16", paper, str(rank)))))
    small, large = min(f.ranks), max(f.ranks)

    def at(method: str, rank: int) -> pd.DataFrame:
        rows = frame[frame.method == method]
        return (rows if method == "full" else rows[rows["rank"] == rank]).set_index("seed")[["value", "trained"]]

    def gain(method: str, rank: int) -> pd.DataFrame:
        m, lora = at(method, rank), at("lora", rank)
        seeds = sorted(set(m.index) & set(lora.index))
        return pd.DataFrame({"value": m.value[seeds] - lora.value[seeds],
                             "trained": m.trained[seeds] & lora.trained[seeds]}, index=pd.Index(seeds, name="seed"))

    def paper_gain(r: int) -> float:
        return paper_value("figure8_rank_sweep_stsb16", "deep", str(r)) - paper_value("figure8_rank_sweep_stsb16", "vanilla", str(r))

    best = [p.mean for p in points if p.mean is not None]
    at_chance = not above_chance(distance_from_chance(best)) if best else False
    change = [_compare(gain(m, small), gain(m, large), method=m, baseline="lora", n=f.n, seeds_planned=len(f.seeds),
                       paper=finite(paper_gain(large) - paper_gain(small)), at_chance=at_chance)
              for m in ("compressed", "full")]
    return RankSweep(n=f.n, steps=f.steps, ranks=list(f.ranks), seeds_planned=len(f.seeds), points=points, change=change)


def _table1(runs: EvidenceRuns) -> GlueTable | None:
    t = runs.plan.table1
    if t is None:
        return None
    frame = runs.runs[runs.runs.part == "table1"]
    tasks = []
    for task in t.tasks:
        at = frame[frame.task == task]
        means = {m: finite(at[at.method == m].value.astype(float).mean() * 100) if (at.method == m).any() else None
                 for m in METHODS}
        tasks.append(TaskScores(task=task, metric=primary_metric(task), chance=runs.chance.get(task), kept=runs.kept.get(task),
                                means=means, seeds={m: int((at.method == m).sum()) for m in METHODS},
                                paper={k: float(paper_value("table1_glue_1024", k, task)) for k in ("vanilla", "deep")}))
    kept = [x.task for x in tasks if x.kept]
    rows = frame[frame.task.isin(kept)]
    complete = rows.groupby(["method", "seed"]).task.nunique() == len(kept)

    def average(method: str) -> pd.DataFrame:  # per seed, the mean over the kept tasks, where every kept task is stored
        m = rows[rows.method == method]
        seeds = [s for s in sorted(set(m.seed)) if complete.get((method, s), False)]
        return _by_seed(m[m.seed.isin(seeds)].assign(value=lambda d: d.value.astype(float) * 100))

    paper = (float(np.mean([paper_value("table1_glue_1024", "deep", k) for k in kept]))
             - float(np.mean([paper_value("table1_glue_1024", "vanilla", k) for k in kept]))) if kept else None
    comparisons = [_compare(average("lora"), average(m), method=m, baseline="lora", n=t.n, seeds_planned=len(t.seeds),
                            paper=paper, at_chance=not kept) for m in ("compressed", "full")]
    return GlueTable(n=t.n, steps=t.steps, steps_sst2=t.steps_sst2, seeds_planned=len(t.seeds), tasks=tasks, kept=kept,
                     left_out=[x.task for x in tasks if x.kept is False],
                     unscreened=[x.task for x in tasks if x.kept is None], average=comparisons)


def on_edge(points: tuple, rate: tuple) -> bool:
    """Whether ``rate`` (``(lr, gamma)``) is the lowest or highest learning rate of the grid ``points``, or its lowest
    or highest gamma."""
    lrs = [lr for lr, _ in points]
    gammas = [g for _, g in points if g is not None]
    lr, gamma = rate
    return lr in (min(lrs), max(lrs)) or (gamma is not None and gamma in (min(gammas), max(gammas)))


def across_n(answers: list[Answer]) -> Answer:
    """One method's answers against LoRA at every ``n``, as one (:attr:`~compressible.experiments.fewshot_evidence.summary.EvidenceSummary.across_n`)."""
    if not answers:
        return Answer.NOT_RUN
    open_ = [a for a in answers if a not in (Answer.BETTER, Answer.WORSE, Answer.UNDECIDED)]
    if open_:
        return open_[0]
    return answers[0] if len(set(answers)) == 1 else Answer.UNDECIDED


def summarise(runs: EvidenceRuns) -> EvidenceSummary:
    """Every number and conclusion of the chapter from its runs (pure)."""
    p, frame = runs.plan, runs.runs
    f6 = frame[frame.part.isin(("fig6", "peft"))]
    methods, training = [], {}
    for n in p.n:
        for method in p.methods_at(n):
            at = f6[(f6.method == method) & (f6.n == n)]
            v = at.value.to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            methods.append(MethodScores(method=method, n=n, mean=finite(v.mean()) if len(v) else None,
                                        std=finite(v.std(ddof=1)) if len(v) > 1 else None, seeds=len(at),
                                        training=_training(at)))
            if method == "compressed":
                training[n] = _training(at)
    comparisons = [_comparison(f6, m, n, len(p.seeds_of(m))) for n in p.n for m in p.methods_at(n) if m != "lora"]
    comparisons += [_comparison(f6, m, n, len(p.peft_seeds), baseline) for n in p.peft_n for baseline in PEFT_METHODS
                    for m in ("compressed", "full")]
    missing: dict[str, int] = {}
    for part, method, n, _ in runs.missing:
        key = f"{part} {method} n={n}"
        missing[key] = missing.get(key, 0) + 1
    planned = len(runs.runs) + len(runs.missing)
    # Fig. 6's kind of run (STS-B, the plan's steps): every other kind costs about its steps at this rate
    on_gpu = frame.platform.astype(str).str.startswith("cuda")
    full_length = (frame.steps == p.steps) & frame.part.isin(["tuning", "fig6", "peft"])
    per_hour = {m: 3600.0 / float(g.cpu_time.mean()) for m, g in frame[full_length & ~on_gpu].groupby("method") if len(g)}
    per_gpu_hour = {m: 3600.0 / float(g.wall_time.mean()) for m, g in frame[full_length & on_gpu].groupby("method") if len(g)}
    by_part: dict[str, dict[str, float]] = {}  # mean processor seconds of a held CPU run, per part and method
    for (part, method), g in frame[~on_gpu].groupby(["part", "method"]):
        by_part.setdefault(str(part), {})[str(method)] = float(g.cpu_time.mean())
    steps = {"fig8": p.fig8.steps if p.fig8 else p.steps, "table1": p.table1.steps if p.table1 else p.steps}
    left: dict[str, float] = {}  # core-hours: at the part's measured cost, else at the method's scaled by steps
    unmeasured: set[str] = set()
    for part, method, _, _ in runs.missing:
        seconds = by_part.get(part, {}).get(method)
        if seconds is None and method in per_hour:
            seconds = 3600.0 / per_hour[method] * steps.get(part, p.steps) / p.steps
        if seconds is None:
            unmeasured.add(method)
        else:
            left[method] = left.get(method, 0.0) + seconds / 3600.0
    held_by = {m: int(len(g)) for m, g in frame.groupby("method")}
    planned_by = dict(held_by)
    for _, method, _, _ in runs.missing:
        planned_by[method] = planned_by.get(method, 0) + 1
    return EvidenceSummary(
        scale=runs.scale, backbone=p.backbone, steps=p.steps, n=list(p.n), holdout=p.methods.holdout,
        tuning_seeds=len(p.tuning_seeds), seeds_planned=len(p.seeds), grid=_grid(runs),
        rates={m: dict(r) for m, r in runs.rates.items()}, methods=methods, comparisons=comparisons,
        compressed_training=training, runs_planned=planned, runs_held=len(runs.runs), missing=missing,
        runs_per_core_hour=per_hour, runs_per_gpu_hour=per_gpu_hour, planned_by_method=planned_by,
        core_hours_left={m: None if m in unmeasured else finite(left.get(m, 0.0)) for m in planned_by},
        core_seconds_by_part=by_part,
        held_by_method={m: held_by.get(m, 0) for m in planned_by},
        platforms=sorted(set(frame.platform.dropna())) if "platform" in frame else [],
        at_edge={m: [n for n, rate in chosen.items() if on_edge(p.points(m), rate)] for m, chosen in runs.rates.items()},
        across_n={m: across_n([c.answer for c in comparisons if c.method == m and c.baseline == "lora"])
                  for m in dict.fromkeys(c.method for c in comparisons)},
        fig8=_fig8(runs), table1=_table1(runs),
    )
