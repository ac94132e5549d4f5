"""The runs of the Few-shot GLUE chapter: every configuration of its plan at given rates (pure), and the
ones that do not depend on the rates."""

from __future__ import annotations

from dataclasses import replace

from ...finetune.classify import RunConfig
from ...store import ResultStore
from ..fewshot_tuning import Rate, Rates, chosen_rates, grid_runs, stsb_fields
from ..glue_methods import GlueMethods
from ..glue_runs import METHOD_LABELS, Experiment, as_store
from .diagnosis import diagnosis_experiments
from .plan import SCALED, FewshotGluePlan

__all__ = ["experiments", "rate_free_runs", "planned"]

_METHODS = ("lora", "compressed")


def experiments(p: FewshotGluePlan, rates: Rates | None = None) -> list[Experiment]:
    """The runs of plan ``p`` at ``rates`` (``None``: the methods' own rates; else the rates a tuning chose,
    :func:`~compressible.experiments.fewshot_tuning.run.chosen_rates`), tagged with the part they feed, in build
    order. The tuning grid is not included (:func:`~compressible.experiments.fewshot_tuning.plan.grid_runs`)."""
    def at(n: int) -> GlueMethods:
        return p.methods if rates is None else rates.methods(p.methods, n)

    out = []
    for task in p.table1.tasks if p.table1 is not None else ():
        m = at(p.table1.n)
        for method in _METHODS:
            config = RunConfig(task, n_train=p.table1.n, steps=p.table1.steps_for(task), backbone=m.backbone,
                               eval_limit=m.eval_limit, **m.method(method))
            out.append(Experiment("table1", METHOD_LABELS[method], config, p.table1.seeds))
    for n in p.fig6.n:
        m = at(n)
        for method in _METHODS:
            config = RunConfig(n_train=n, steps=p.fig6.steps, **stsb_fields(p.tuning, n), **m.method(method))
            out.append(Experiment("fig6", METHOD_LABELS[method], config, p.fig6.seeds_for(n)))
        if n in p.fig6.full_n:
            full = {"targets": p.fig6.full_targets} if p.fig6.full_targets else {}
            config = RunConfig(n_train=n, steps=p.fig6.steps, **stsb_fields(p.tuning, n), **m.method("full", **full))
            out.append(Experiment("fig6", METHOD_LABELS["full"], config, p.fig6.full_seeds))
    m = at(p.fig7.n)
    for method in _METHODS:  # identical to a fig6 run when fig7.n is one of fig6.n: computed once
        config = RunConfig(n_train=p.fig7.n, steps=p.fig7.steps, **stsb_fields(p.tuning, p.fig7.n), **m.method(method))
        out.append(Experiment("fig7", METHOD_LABELS[method], config, (0,)))
    for rank in p.fig8.ranks if p.fig8 is not None else ():
        m = at(p.fig8.n)
        for method in _METHODS:
            config = RunConfig(n_train=p.fig8.n, steps=p.fig8.steps, **stsb_fields(p.tuning, p.fig8.n),
                               **m.method(method, rank=rank))
            out.append(Experiment("fig8", METHOD_LABELS[method], config, p.fig8.seeds))
            if method == "compressed" and p.fig8.scaled_seeds and rank != p.fig8.rate_rank:
                out.append(Experiment("fig8", SCALED, config.replace(lr=p.fig8.scaled_lr(config.lr, rank)),
                                      p.fig8.scaled_seeds))
    if p.precision is not None:
        m = at(p.precision.n)
        config = RunConfig(n_train=p.precision.n, steps=p.fig6.steps, **stsb_fields(p.tuning, p.precision.n),
                           **m.method(p.precision.method))
        out.append(Experiment("precision", METHOD_LABELS[p.precision.method], config.replace(autocast="off"),
                              p.precision.seeds))
    if p.diagnosis is not None:
        out.extend(diagnosis_experiments(p.diagnosis, at(p.diagnosis.n), stsb_fields(p.tuning, p.diagnosis.n), p.fig6.steps))
    return _holdout_scored_where_tuned(out, p)


def _holdout_scored_where_tuned(out: list[Experiment], p: FewshotGluePlan) -> list[Experiment]:
    """Every run holds the tuning examples out of its sample; only Fig. 6's LoRA and compressed runs at the
    tuning ``n`` (the grid's chosen points are among them) and their float32 twins (which differ from them
    in ``autocast`` alone) are scored on them. The others skip that evaluation
    (``RunConfig.holdout_eval=False``): no part of the chapter reads it."""
    if p.tuning.grid is None:
        return out
    scored = [e.config for e in out
              if e.part == "fig6" and e.config.adapter.init in _METHODS and e.config.n_train in p.tuning.grid.n]

    def keep(e: Experiment) -> bool:
        return e.config in scored or (e.part == "precision" and e.config.replace(autocast=p.methods.autocast) in scored)

    return [e if keep(e) else replace(e, config=e.config.replace(holdout_eval=False)) for e in out]


def rate_free_runs(p: FewshotGluePlan) -> list[Experiment]:
    """The chapter's runs whose configuration does not depend on the rates a tuning chooses (e.g. the full-width
    adapter at its fixed rate; empty without a tuning grid): they can run beside the grid instead of after it.
    Found by listing the experiments at two made-up sets of rates that differ in every rate."""
    if p.tuning.grid is None:
        return []
    one, other = (experiments(p, Rates(default={"lora": Rate(lr=lora), "compressed": Rate(lr=deep, gamma=gamma)}))
                  for lora, deep, gamma in ((1.1e-4, 1.3e-2, 0.17), (2.3e-4, 2.9e-2, 0.31)))
    fixed = {e.config for e in other}
    return [e for e in one if e.config in fixed]


def planned(p: FewshotGluePlan, store: ResultStore | str | None = None) -> list[Experiment]:
    """Every run a sweep of the chapter computes: the tuning grid, then the chapter's runs at the rates it chose.

    Without a ``store`` (counting runs) the chapter's runs are listed at the plan's own rates (the same number
    of runs). With one, they are listed only once the grid is stored (before: the grid and
    :func:`rate_free_runs`, which a sweep runs first); without a grid, simply :func:`experiments`.
    """
    grid = grid_runs(p.tuning)
    if not grid or store is None:
        return grid + experiments(p)
    rates = chosen_rates(p.tuning, as_store(store))
    return grid + (rate_free_runs(p) if rates is None else experiments(p, rates))
