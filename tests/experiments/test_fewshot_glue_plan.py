"""Tests of compressible.experiments.fewshot_glue's plans and the runs they list (pure: nothing runs)."""

import dataclasses
import math

import pytest

from compressible.experiments import fewshot_glue as fg
from compressible.experiments.fewshot_glue import diagnosis as dg
from compressible.experiments.fewshot_glue.plan import Fig6Plan, Fig8Plan, Table1Plan
from compressible.experiments.glue_runs import task_chance
from compressible.experiments.fewshot_tuning import Rates, chosen_rates, grid_runs
from compressible.experiments.glue_runs import METHOD_LABELS
from compressible.experiments.glue_stats import DEEP


def _rates(lora: float, deep: float, gamma: float) -> Rates:
    return Rates(default={"lora": {"lr": lora}, "compressed": {"lr": deep, "gamma": gamma}})


def test_plans():
    paper = fg.PLANS["paper"]
    assert paper.table1.steps_for("sst2") == 600 and paper.table1.steps_for("rte") == 1000
    assert paper.notes == () and fg.PLANS["ci"].notes[: len(fg.PLANS["ci"].methods.notes)] == fg.PLANS["ci"].methods.notes
    with pytest.raises(ValueError, match="Fig6Plan.seeds must not be empty"):
        Fig6Plan(n=(16,), seeds=(), steps=2)
    with pytest.raises(ValueError, match=r"full_n=\(32,\) must be among n=\(16,\)"):
        Fig6Plan(n=(16,), seeds=(0,), steps=2, full_n=(32,), full_seeds=(0,))
    with pytest.raises(ValueError, match="task"):
        Table1Plan(tasks=("glue",), seeds=(0,), steps=1, steps_sst2=1, n=16)
    with pytest.raises(ValueError, match="scale must be one of"):
        fg.plan("huge")
    assert not math.isnan(task_chance("stsb"))  # a correlation: 0 without loading any data


def test_every_plan_runs_the_authors_protocol():
    """Every scale: random pooler (frozen unless adapted), frozen random head and the authors' "all dense"
    targets for LoRA and compressed Deep LoRA; paper: the paper's rates, float32 and full-width Deep LoRA
    in Fig. 6 (what the authors' logs ran); ci: bf16 autocast, held-out tuning examples, rates from the grid."""
    for scale in ("paper", "ci", "smoke"):
        p = fg.PLANS[scale]
        runs = fg.experiments(p) + grid_runs(p.tuning)
        assert runs and all(e.config.pooler == "random" and not e.config.train_head for e in runs)
        assert all(e.config.adapter.targets == "all-dense" for e in runs if e.config.adapter.init != "full")
    paper = fg.experiments(fg.PLANS["paper"])
    assert {e.config.adapter.init for e in paper} == {"lora", "compressed", "full"}
    assert all(e.config.autocast == "off" and e.config.holdout == 0 for e in paper)
    rates = {e.config.adapter.init: (e.config.lr, e.config.adapter.gamma) for e in paper if e.part != "diagnosis"}
    assert rates == {"lora": (1e-4, 1e-2), "compressed": (1e-2, 1e-2), "full": (1e-4, 1e-2)}
    assert fg.PLANS["paper"].tuning.grid is None and fg.PLANS["paper"].table1 is not None
    ci = fg.PLANS["ci"]
    assert ci.methods.autocast == "auto" and ci.methods.holdout > 0 and ci.table1 is None and ci.table1_note
    assert len(ci.fig6.seeds_for(16)) >= 5 and ci.fig6.steps >= 200 and ci.fig6.n == (16, 64, 256)
    # Fig. 8 at the paper's length and ranks; its r = 8 runs are Fig. 6's n = 16 runs (computed once)
    assert ci.fig8 == Fig8Plan(ranks=(8, 16, 32, 64), seeds=(0,), steps=200, n=16)
    ci_runs = fg.experiments(ci)
    fig6_keys = {(e.label, e.config) for e in ci_runs if e.part == "fig6"}
    r8 = [(e.label, e.config) for e in ci_runs if e.part == "fig8" and e.config.adapter.rank == 8]
    assert len(r8) == 2 and set(r8) <= fig6_keys
    assert len(ci.tuning.grid.lora) == len(ci.tuning.grid.compressed)


def test_tuned_rates_reach_the_runs_and_the_chosen_grid_points_are_the_figure_runs():
    from compressible.store import config_key

    p = fg.PLANS["ci"]
    runs = fg.experiments(p, _rates(3e-4, 1e-2, 0.1))
    fig6 = [e for e in runs if e.part == "fig6"]
    assert {(e.config.adapter.init, e.config.lr) for e in fig6} == {("lora", 3e-4), ("compressed", 1e-2), ("full", 1e-4)}
    assert {e.config.adapter.gamma for e in fig6 if e.config.adapter.init == "compressed"} == {0.1}
    grid = {config_key(e.config) for e in grid_runs(p.tuning)}
    figure = {config_key(e.config) for e in fig6 if e.config.n_train == 16 and e.config.adapter.init != "full"}
    assert figure <= grid  # the chosen points' runs are the Fig. 6 runs at n = 16
    precision = [e for e in runs if e.part == "precision"]
    assert len(precision) == 1 and precision[0].config.autocast == "off"
    assert precision[0].config.replace(autocast=p.methods.autocast) in [e.config for e in fig6]
    # only the tuning-n Fig. 6 runs of LoRA and compressed Deep LoRA, and the twins of one, score the held-out pairs
    scored = {(e.part, e.config.adapter.init, e.config.n_train) for e in runs if e.config.holdout_eval}
    assert scored == {("fig6", "lora", 16), ("fig6", "compressed", 16), ("fig8", "lora", 16), ("fig8", "compressed", 16),
                      ("precision", "lora", 16)}
    assert all(e.config.adapter.rank == 8 for e in runs if e.part == "fig8" and e.config.holdout_eval)
    assert all(e.config.holdout == 400 for e in runs)  # every run still holds them out of its sample
    assert all(e.config.holdout_eval for e in fg.experiments(fg.PLANS["paper"]))  # no tuning: nothing changes


def test_diagnosis_runs_change_one_thing_of_the_figure_runs():
    """Each diagnosis run is a Fig. 6 compressed run (chosen rates, same n and seeds) with one field changed."""
    import dataclasses

    tuned = {"ci": _rates(1e-4, 1e-2, 0.1)}  # the ci build's choice
    for scale in ("paper", "ci", "smoke"):
        p = fg.PLANS[scale]
        runs = fg.experiments(p, tuned.get(scale))
        d = p.diagnosis
        base = next(e for e in runs if e.part == "fig6" and e.config.n_train == d.n and e.config.adapter.init == "compressed")
        variants = {e.label: e for e in runs if e.part == "diagnosis"}
        longer = None if d.longer_steps is None else dg.longer_label(d.longer_steps)
        slow = None if d.lr_factor is None else dg.inner_rate_label(base.config.lr * d.lr_factor)
        whole = dg.WHOLE_SAMPLE if d.whole_sample else None
        free_label = None if d.gamma is None else dg.free_outer_label(d.gamma)
        assert set(variants) == {whole, free_label, longer, slow} - {None}
        if longer is not None:
            assert variants[longer].config == base.config.replace(steps=d.longer_steps) and d.longer_steps > p.fig6.steps
        assert all(set(e.seeds) == set(d.seeds) <= set(base.seeds) for e in variants.values())
        if whole is not None:
            assert variants[whole].config == base.config.replace(compress_from="sample")
        if free_label is not None:
            free = variants[free_label].config
            assert free == base.config.replace(adapter=dataclasses.replace(base.config.adapter, gamma=d.gamma), lr=base.config.lr)
        if slow is not None:
            assert variants[slow].config == base.config.replace(lr=base.config.lr * d.lr_factor)
    # ci: the change of the outer factors' rate alone (App. D.2's gamma); paper: all four
    assert [e.label for e in fg.experiments(fg.PLANS["ci"], tuned["ci"]) if e.part == "diagnosis"] == [
        dg.free_outer_label(0.01)]
    assert fg.PLANS["paper"].diagnosis == dg.DiagnosisPlan(n=256, seeds=tuple(range(5)), longer_steps=1500)
    assert fg.PLANS["ci"].diagnosis.n == 256 and fg.PLANS["ci"].diagnosis.seeds
    with pytest.raises(ValueError, match="diagnosis runs .* must change Fig. 6 runs"):
        dataclasses.replace(fg.PLANS["ci"], diagnosis=dg.DiagnosisPlan(n=128, seeds=(0,)))
    with pytest.raises(ValueError, match="longer_steps=200 must be more than Fig. 6's 200 steps"):
        dataclasses.replace(fg.PLANS["ci"], diagnosis=dg.DiagnosisPlan(n=256, seeds=(0,), longer_steps=200))
    with pytest.raises(ValueError, match="longer_steps must be a positive int or None, got 0"):
        dg.DiagnosisPlan(n=256, seeds=(0,), longer_steps=0)
    # a tuning that chose the diagnosis gamma leaves that variant out; a fixed plan with it is refused
    chose = fg.experiments(fg.PLANS["ci"], _rates(1e-4, 1e-2, 0.01))
    assert [e.label for e in chose if e.part == "diagnosis"] == []
    with pytest.raises(ValueError, match=r"DiagnosisPlan.gamma=0.01 is the compressed runs' gamma itself"):
        dataclasses.replace(fg.PLANS["paper"], diagnosis=dg.DiagnosisPlan(n=256, seeds=(0,), gamma=0.01))


def test_runs_that_no_rate_choice_changes_run_beside_the_grid(tmp_path):
    """The full-width runs (a fixed rate) are the ci plan's runs that do not wait for the tuning: they are
    the same at any chosen rates, and a sweep with nothing stored lists them with the grid."""
    from compressible.store import ResultStore

    p = fg.PLANS["ci"]
    free = fg.rate_free_runs(p)
    assert [(e.part, e.label) for e in free] == [("fig6", METHOD_LABELS["full"])] and free[0].seeds == tuple(range(5))
    for lora, deep, gamma in ((1e-4, 1e-2, 0.1), (3e-4, 1e-2, 0.01)):
        assert all(e in fg.experiments(p, _rates(lora, deep, gamma)) for e in free)
    assert fg.rate_free_runs(fg.PLANS["paper"]) == []  # no tuning: nothing waits for one
    assert fg.planned(p, ResultStore(tmp_path)) == grid_runs(p.tuning) + free
    assert chosen_rates(p.tuning, ResultStore(tmp_path)) is None  # nothing stored: no choice yet


def test_longest_runs_go_first_to_the_workers():
    from compressible.experiments.glue_costs import longest_first
    from compressible.finetune.classify import RunConfig

    short, long_, fp32 = (RunConfig("stsb", steps=200, autocast="auto"), RunConfig("stsb", steps=500, autocast="auto"),
                          RunConfig("stsb", steps=200))
    order = longest_first([(short, (0,)), (fp32, (0,)), (long_, (0,)), (short.replace(n_train=64), (1,))])
    assert [c for c, _ in order] == [long_, fp32, short, short.replace(n_train=64)]
    # at one length: the full-width adapter, then a sample larger than a batch, then compressed, then LoRA
    from compressible.deeplora import DeepLoRAConfig

    lora, compressed, full = (short.replace(n_train=16, adapter=DeepLoRAConfig(init=init))
                              for init in ("lora", "compressed", "full"))
    larger = compressed.replace(n_train=64)
    order = longest_first([(c, (0,)) for c in (lora, compressed, larger, full)])
    assert [c for c, _ in order] == [full, larger, compressed, lora]
    # seed by seed: a sweep stopped after k runs holds whole seeds, every configuration of each
    order = longest_first([(lora, (3, 2)), (full, (2, 3))])
    assert order == [(full, (2,)), (lora, (2,)), (full, (3,)), (lora, (3,))]


def test_fig6_seeds_per_n():
    plan = Fig6Plan(n=(16, 64), seeds=(0, 1, 2), steps=2, seeds_by_n=((64, (0,)),))
    assert plan.seeds_for(16) == (0, 1, 2) and plan.seeds_for(64) == (0,)
    with pytest.raises(ValueError, match=r"seeds_by_n names n=\[32\]"):
        Fig6Plan(n=(16,), seeds=(0,), steps=2, seeds_by_n=((32, (0,)),))


def test_cpu_execution_of_the_plans():
    """ci (and smoke) compute one thread per run, one run per core; paper and GPUs keep one process."""
    import os

    from compressible.experiments.glue_runs import cpu_execution

    cores = max(1, min(8, os.cpu_count() or 1))
    assert cpu_execution(fg.PLANS["ci"], "cpu") == (1, cores)
    assert cpu_execution(fg.PLANS["ci"], "cpu", threads=2, workers=3) == (2, 3)
    assert cpu_execution(fg.PLANS["ci"], "cuda") == (None, 1)
    assert cpu_execution(fg.PLANS["paper"], "cpu", threads=4) == (4, 1)
    from compressible.experiments.contract import Execution

    with pytest.raises(ValueError, match="Execution.workers must be None or an int >= 1, got 0"):
        Execution(workers=0)


def test_fig8_scaled_rate_runs_change_only_the_rate():
    """The rate-scaled variant: compressed Deep LoRA at every rank but the rate's, inner rate (and so the outer
    ones, at gamma of it) times rate_rank / r, nothing else changed; the ci and paper plans keep one rate at every rank."""
    ci = dataclasses.replace(fg.PLANS["ci"], fig8=dataclasses.replace(fg.PLANS["ci"].fig8, scaled_seeds=(0,)))
    runs = [e for e in fg.experiments(ci) if e.part == "fig8"]
    one_rate = {e.config.adapter.rank: e.config for e in runs if e.label == DEEP}
    scaled = {e.config.adapter.rank: e for e in runs if e.label == fg.SCALED}
    assert sorted(scaled) == [16, 32, 64]
    for rank, e in scaled.items():
        assert e.seeds == (0,)
        assert e.config.lr == pytest.approx(one_rate[rank].lr * 8 / rank)
        assert e.config.adapter == one_rate[rank].adapter and e.config.adapter.gamma == one_rate[rank].adapter.gamma
        assert e.config.replace(lr=one_rate[rank].lr) == one_rate[rank]
    assert not any(e.label == fg.SCALED for name in ("ci", "paper") for e in fg.experiments(fg.PLANS[name]))
    assert ci.fig8.scaled_lr(1e-2, 32) == pytest.approx(2.5e-3)
    with pytest.raises(ValueError, match=r"scaled_seeds=\(2,\) must be among seeds=\(0, 1\)"):
        Fig8Plan(ranks=(8, 16), seeds=(0, 1), steps=2, n=16, scaled_seeds=(2,))
    with pytest.raises(ValueError, match=r"rate_rank=4 must be one of ranks=\(8, 16\)"):
        Fig8Plan(ranks=(8, 16), seeds=(0, 1), steps=2, n=16, scaled_seeds=(0,), rate_rank=4)
