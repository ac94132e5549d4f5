"""Tests of compressible.experiments.fewshot_glue: every statistic of the summary on hand-made runs.

The runs below are small enough to work out by hand: two tasks (STS-B, Pearson; RTE, accuracy
with chance 60 points) and two seeds for Table 1, two n for Fig. 6, two r for Fig. 8, four
adapted weights for Fig. 7.
"""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from compressible.experiments import fewshot_glue as fg
from compressible.experiments import fewshot_tuning as ft
from compressible.experiments.glue_stats import DEEP, LORA
from compressible.reference import paper_value
from compressible.summaries import load_summary, save_summary

PLAN = dataclasses.replace(
    fg.PLANS["smoke"],
    table1=fg.Table1Plan(tasks=("stsb", "rte"), seeds=(0, 1), steps=2, steps_sst2=2, n=32),
    fig6=fg.Fig6Plan(n=(16, 64), seeds=(0, 1), steps=2),
    fig8=fg.Fig8Plan(ranks=(8, 32), seeds=(0, 1), steps=2, n=16),
    diagnosis=None,  # its summary has tests of its own (test_fewshot_tuning)
)

SCORES = {  # (part, key) -> {method: [seed 0, seed 1]}
    ("table1", "stsb"): {LORA: [0.50, 0.60], DEEP: [0.70, 0.50]},
    ("table1", "rte"): {LORA: [0.60, 0.62], DEEP: [0.62, 0.64]},
    ("fig6", 16): {LORA: [0.10, 0.20], DEEP: [0.30, 0.10]},
    ("fig6", 64): {LORA: [0.40, 0.40], DEEP: [0.50, 0.60]},
    ("fig8", 8): {LORA: [0.50, 0.50], DEEP: [0.40, 0.40]},
    ("fig8", 32): {LORA: [0.20, 0.30], DEEP: [0.40, 0.50]},
}


def _runs(scores=SCORES) -> pd.DataFrame:
    rows = []
    for (part, key), by_method in scores.items():
        for method, values in by_method.items():
            for seed, value in enumerate(values):
                rows.append({
                    "part": part, "method": method, "seed": seed, "value": value,
                    "task": key if part == "table1" else "stsb",
                    "n_train": key if part == "fig6" else 16,
                    "rank": key if part == "fig8" else 8,
                    "key": f"{part}-{key}-{method}", "final_train_loss": 0.1, "loss_baseline": 1.0, "trained": True,
                })
    return pd.DataFrame(rows)


def _spectra(ranks, norms):
    return {"spectra": {f"layer{i}": {"rank": r, "singular_values": [s]} for i, (r, s) in enumerate(zip(ranks, norms))}}


FIG7 = {LORA: _spectra([4, 4, 4, 3], [0.1, 0.2, 0.3, 0.05]), DEEP: _spectra([0, 0, 1, 4], [1e-4, 2e-4, 0.01, 0.5])}


def _results(runs=None, fig7=FIG7, plan=PLAN) -> fg.FewshotGlueResults:
    return fg.FewshotGlueResults("smoke", plan, _runs() if runs is None else runs, fig7, 4, {"stsb": 0.0, "rte": 60.0})


@pytest.fixture(scope="module")
def summary():
    return fg.summarise(_results())


def test_table1_per_task_means_gains_and_wins(summary):
    stsb, rte = summary.table1.by_task["stsb"], summary.table1.by_task["rte"]
    # STS-B: LoRA (50 + 60) / 2, Deep (70 + 50) / 2, paired differences +20 and -10 points
    assert (stsb.lora, stsb.deep, stsb.gain) == pytest.approx((55.0, 60.0, 5.0))
    assert stsb.differences == pytest.approx({0: 20.0, 1: -10.0}) and stsb.deep_wins == 1 and stsb.seeds == 2
    assert stsb.gain_std == pytest.approx(np.std([20.0, -10.0], ddof=1))
    assert (rte.lora, rte.deep, rte.gain, rte.deep_wins) == pytest.approx((61.0, 63.0, 2.0, 2))
    assert (stsb.metric, rte.metric) == ("pearson", "accuracy")


def test_table1_chance_rule(summary):
    stsb, rte = summary.table1.by_task["stsb"], summary.table1.by_task["rte"]
    # RTE: the better method (63) is 3 points above the 60-point majority class: below the 5-point margin
    assert (rte.chance, rte.distance_from_chance, rte.above_chance) == (60.0, pytest.approx(3.0), False)
    assert (stsb.distance_from_chance, stsb.above_chance) == (pytest.approx(60.0), True)
    assert summary.table1.tasks_above_chance == ["stsb"]


def test_table1_averages_are_over_tasks_per_seed_then_over_seeds(summary):
    t = summary.table1
    # seed 0: LoRA (50 + 60) / 2 = 55, Deep (70 + 62) / 2 = 66; seed 1: LoRA 61, Deep 57
    assert (t.lora_average, t.deep_average, t.average_gain) == pytest.approx((58.0, 61.5, 3.5))
    assert t.average.differences == pytest.approx({0: 11.0, 1: -4.0}) and t.average.deep_wins == 1
    assert (t.n, t.tasks, t.seeds) == (32, ["stsb", "rte"], 2)
    paper = {m: paper_value("table1_glue_1024", m) for m in ("vanilla", "deep")}
    same_tasks = np.mean([paper["deep"][k] - paper["vanilla"][k] for k in ("stsb", "rte")])
    assert t.paper_average_gain_same_tasks == pytest.approx(same_tasks)


def test_table1_average_only_over_seeds_with_every_task():
    extra = dict(SCORES)
    extra[("table1", "stsb")] = {LORA: [0.50, 0.60, 0.0], DEEP: [0.70, 0.50, 0.9]}  # seed 2 has no RTE run
    t = fg.summarise(_results(_runs(extra))).table1
    assert t.seeds == 2 and t.lora_average == pytest.approx(58.0)
    assert t.by_task["stsb"].seeds == 3 and t.by_task["stsb"].lora == pytest.approx(110 / 3)


def test_fig6_keyed_by_n(summary):
    f6 = summary.fig6
    assert f6.n == [16, 64] and f6.seeds == 2
    assert (f6.by_n[16].gain, f6.by_n[16].deep_wins) == (pytest.approx(0.05), 1)
    assert (f6.by_n[64].lora, f6.by_n[64].deep, f6.by_n[64].gain, f6.by_n[64].deep_wins) == pytest.approx((0.4, 0.55, 0.15, 2))
    assert f6.best_mean == pytest.approx(0.55) and not f6.at_chance


def test_figures_at_chance_when_no_mean_pearson_leaves_zero_by_the_margin():
    low = {k: ({m: [v * 0.1 for v in vals] for m, vals in s.items()} if k[0] != "table1" else s) for k, s in SCORES.items()}
    s = fg.summarise(_results(_runs(low)))
    assert s.fig6.best_mean == pytest.approx(0.055) and not s.fig6.at_chance  # 5.5 points: just above
    assert s.fig8.best_mean == pytest.approx(0.05) and not s.fig8.at_chance  # exactly the margin counts as above
    lower = {k: ({m: [v * 0.05 for v in vals] for m, vals in s.items()} if k[0] != "table1" else s) for k, s in SCORES.items()}
    s = fg.summarise(_results(_runs(lower)))
    assert s.fig6.at_chance and s.fig8.at_chance


def test_fig7_rank_histogram_and_fractions(summary):
    f7 = summary.fig7
    assert (f7.n_updates, f7.rank_cap) == (4, 4)
    assert f7.lora_rank_counts == [0, 0, 0, 1, 3] and f7.deep_rank_counts == [2, 1, 0, 0, 1]
    assert (f7.deep_fraction_rank0, f7.deep_median_rank, f7.deep_fraction_rank_le4) == (0.5, 0.5, 1.0)
    assert (f7.lora_fraction_full_rank, f7.lora_median_rank) == (0.75, 4.0)
    assert (f7.deep_max_norm, f7.lora_max_norm) == (0.5, 0.3)


def test_fig8_keyed_by_rank_and_the_drop(summary):
    f8 = summary.fig8
    assert f8.ranks == [8, 32]
    assert (f8.by_rank[8].lora, f8.by_rank[32].lora) == pytest.approx((0.5, 0.25))
    # drop = mean at the smallest r minus mean at the largest: LoRA loses 0.25, Deep LoRA gains 0.05
    assert f8.lora_drop_smallest_to_largest_r == pytest.approx(0.25)
    assert f8.deep_drop_smallest_to_largest_r == pytest.approx(-0.05)


def test_undefined_metric_is_none_not_nan():
    nan = dict(SCORES)
    nan[("fig6", 16)] = {LORA: [float("nan"), float("nan")], DEEP: [0.3, 0.1]}
    s = fg.summarise(_results(_runs(nan))).fig6.by_n[16]
    assert s.lora is None and s.gain is None and s.deep == pytest.approx(0.2)
    assert s.differences == {0: None, 1: None} and s.deep_wins == 0


def test_summary_round_trips_through_json(summary, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSIBLE_RESULTS", str(tmp_path))
    save_summary(summary)
    back = load_summary(fg.FewshotGlueSummary)
    assert back == summary and back.fig6.by_n[16].differences[0] == summary.fig6.by_n[16].differences[0]


def test_tables_have_the_paper_beside_ours(summary):
    table = fg.table1_table(summary)
    assert table["task"].tolist() == ["stsb", "rte", "average (2 tasks)"]
    ours = fg.ours_label("smoke")
    assert table[f"Deep ahead — {ours}"].tolist() == ["1/2", "2/2", "1/2"]
    assert table[f"LoRA — {ours}"].iloc[-1].startswith("58.00 ±")
    assert fg.fig6_table(summary)["n"].tolist() == [16, 64]
    per_seed = fg.per_seed_table(summary)
    assert per_seed["experiment"].tolist() == ["Table 1, stsb", "Table 1, rte", "Fig. 6, n = 16", "Fig. 6, n = 64",
                                               "Fig. 8, r = 8", "Fig. 8, r = 32"]
    assert per_seed["seed 0"].iloc[0] == "20.000"


def test_plans():
    paper = fg.PLANS["paper"]
    assert paper.table1.steps_for("sst2") == 600 and paper.table1.steps_for("rte") == 1000
    assert paper.notes == () and fg.PLANS["ci"].notes[: len(fg.PLANS["ci"].methods.notes)] == fg.PLANS["ci"].methods.notes
    with pytest.raises(ValueError, match="Fig6Plan.seeds must not be empty"):
        fg.Fig6Plan(n=(16,), seeds=(), steps=2)
    with pytest.raises(ValueError, match=r"full_n=\(32,\) must be among n=\(16,\)"):
        fg.Fig6Plan(n=(16,), seeds=(0,), steps=2, full_n=(32,), full_seeds=(0,))
    with pytest.raises(ValueError, match="task"):
        fg.Table1Plan(tasks=("glue",), seeds=(0,), steps=1, steps_sst2=1, n=16)
    with pytest.raises(ValueError, match="scale must be one of"):
        fg.plan("huge")
    assert not math.isnan(fg.task_chance("stsb"))  # a correlation: 0 without loading any data


def test_every_plan_runs_the_authors_protocol():
    """Every scale: random pooler (frozen unless adapted), frozen random head and the authors' "all dense"
    targets for LoRA and compressed Deep LoRA; paper: the paper's rates, float32 and full-width Deep LoRA
    in Fig. 6 (what the authors' logs ran); ci: bf16 autocast, held-out tuning examples, rates from the grid."""
    for scale in ("paper", "ci", "smoke"):
        p = fg.PLANS[scale]
        runs = fg.experiments(p) + fg.tuning_runs(p)
        assert runs and all(e.config.pooler == "random" and not e.config.train_head for e in runs)
        assert all(e.config.adapter.targets == "all-dense" for e in runs if e.config.adapter.init != "full")
    paper = fg.experiments(fg.PLANS["paper"])
    assert {e.config.adapter.init for e in paper} == {"lora", "compressed", "full"}
    assert all(e.config.autocast == "off" and e.config.holdout == 0 for e in paper)
    rates = {e.config.adapter.init: (e.config.lr, e.config.adapter.gamma) for e in paper if e.part != "diagnosis"}
    assert rates == {"lora": (1e-4, 1e-2), "compressed": (1e-2, 1e-2), "full": (1e-4, 1e-2)}
    assert fg.PLANS["paper"].tuning is None and fg.PLANS["paper"].table1 is not None
    ci = fg.PLANS["ci"]
    assert ci.methods.autocast == "auto" and ci.methods.holdout > 0 and ci.table1 is None and ci.table1_note
    assert len(ci.fig6.seeds_for(16)) >= 5 and ci.fig6.steps >= 200 and ci.fig6.n == (16, 64, 256)
    # Fig. 8 at the paper's length and ranks; its r = 8 runs are Fig. 6's n = 16 runs (computed once)
    assert ci.fig8 == fg.Fig8Plan(ranks=(8, 16, 32, 64), seeds=(0,), steps=200, n=16)
    ci_runs = fg.experiments(ci)
    fig6_keys = {(e.label, e.config) for e in ci_runs if e.part == "fig6"}
    r8 = [(e.label, e.config) for e in ci_runs if e.part == "fig8" and e.config.adapter.rank == 8]
    assert len(r8) == 2 and set(r8) <= fig6_keys
    assert len(ci.tuning.lora) == len(ci.tuning.compressed)


def test_tuned_rates_reach_the_runs_and_the_chosen_grid_points_are_the_figure_runs():
    from compressible.experiments.fewshot_tuning import TuningSummary
    from compressible.store import config_key

    p = fg.PLANS["ci"]
    chosen = TuningSummary(n=[16], seeds=2, steps=200, holdout=400, points=[], lora_lr=3e-4, deep_lr=1e-2, deep_gamma=0.1)
    runs = fg.experiments(p, fg.tuned_methods(p, chosen))
    fig6 = [e for e in runs if e.part == "fig6"]
    assert {(e.config.adapter.init, e.config.lr) for e in fig6} == {("lora", 3e-4), ("compressed", 1e-2), ("full", 1e-4)}
    assert {e.config.adapter.gamma for e in fig6 if e.config.adapter.init == "compressed"} == {0.1}
    grid = {config_key(e.config) for e in fg.tuning_runs(p)}
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

    tuned = {"ci": fg.PLANS["ci"].methods.with_rates(1e-4, 1e-2, 0.1)}  # the ci build's choice
    for scale in ("paper", "ci", "smoke"):
        p = fg.PLANS[scale]
        runs = fg.experiments(p, tuned.get(scale))
        d = p.diagnosis
        base = next(e for e in runs if e.part == "fig6" and e.config.n_train == d.n and e.config.adapter.init == "compressed")
        variants = {e.label: e for e in runs if e.part == "diagnosis"}
        longer = None if d.longer_steps is None else ft.longer_label(d.longer_steps)
        slow = None if d.lr_factor is None else ft.inner_rate_label(base.config.lr * d.lr_factor)
        whole = ft.WHOLE_SAMPLE if d.whole_sample else None
        free_label = None if d.gamma is None else ft.free_outer_label(d.gamma)
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
        ft.free_outer_label(0.01)]
    assert fg.PLANS["paper"].diagnosis == ft.DiagnosisPlan(n=256, seeds=tuple(range(5)), longer_steps=1500)
    assert fg.PLANS["ci"].diagnosis.n == 256 and fg.PLANS["ci"].diagnosis.seeds
    with pytest.raises(ValueError, match="diagnosis runs .* must change Fig. 6 runs"):
        dataclasses.replace(fg.PLANS["ci"], diagnosis=ft.DiagnosisPlan(n=128, seeds=(0,)))
    with pytest.raises(ValueError, match="longer_steps=200 must be more than Fig. 6's 200 steps"):
        dataclasses.replace(fg.PLANS["ci"], diagnosis=ft.DiagnosisPlan(n=256, seeds=(0,), longer_steps=200))
    with pytest.raises(ValueError, match="longer_steps must be a positive int or None, got 0"):
        ft.DiagnosisPlan(n=256, seeds=(0,), longer_steps=0)
    # a tuning that chose the diagnosis gamma leaves that variant out; a fixed plan with it is refused
    chose = fg.experiments(fg.PLANS["ci"], fg.PLANS["ci"].methods.with_rates(1e-4, 1e-2, 0.01))
    assert [e.label for e in chose if e.part == "diagnosis"] == []
    with pytest.raises(ValueError, match=r"DiagnosisPlan.gamma=0.01 is the compressed runs' gamma itself"):
        dataclasses.replace(fg.PLANS["paper"], diagnosis=ft.DiagnosisPlan(n=256, seeds=(0,), gamma=0.01))


def test_runs_that_no_rate_choice_changes_run_beside_the_grid(tmp_path):
    """The full-width runs (a fixed rate) are the ci plan's runs that do not wait for the tuning: they are
    the same at any chosen rates, and a sweep with nothing stored lists them with the grid."""
    from compressible.experiments.fewshot_tuning import TuningSummary
    from compressible.store import ResultStore

    p = fg.PLANS["ci"]
    free = fg.rate_free_runs(p)
    assert [(e.part, e.label) for e in free] == [("fig6", fg.METHOD_LABELS["full"])] and free[0].seeds == tuple(range(5))
    for lora, deep, gamma in ((1e-4, 1e-2, 0.1), (3e-4, 1e-2, 0.01)):
        chosen = TuningSummary(n=[16], seeds=2, steps=200, holdout=400, points=[], lora_lr=lora, deep_lr=deep, deep_gamma=gamma)
        assert all(e in fg.experiments(p, fg.tuned_methods(p, chosen)) for e in free)
    assert fg.rate_free_runs(fg.PLANS["paper"]) == []  # no tuning: nothing waits for one
    assert fg.planned(p, ResultStore(tmp_path)) == fg.tuning_runs(p) + free


def test_longest_runs_go_first_to_the_workers():
    from compressible.experiments.glue_runs import longest_first
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


def test_paired_intervals_and_wilcoxon(summary):
    from scipy import stats

    s = summary.fig6.by_n[64]  # differences +0.10 and +0.20
    half = stats.t.ppf(0.975, 1) * np.std([0.1, 0.2], ddof=1) / np.sqrt(2)
    assert (s.low, s.high) == pytest.approx((0.15 - half, 0.15 + half))
    assert s.wilcoxon_p == pytest.approx(stats.wilcoxon([0.1, 0.2]).pvalue)


def test_full_width_is_paired_with_lora_on_its_seeds():
    full = fg.METHOD_LABELS["full"]
    scores = dict(SCORES)
    scores[("fig6", 16)] = {LORA: [0.10, 0.20], DEEP: [0.30, 0.10], full: [0.40, 0.25]}
    s = fg.summarise(_results(_runs(scores))).fig6
    assert list(s.full_by_n) == [16]
    assert s.full_by_n[16].differences == pytest.approx({0: 0.30, 1: 0.05}) and s.full_by_n[16].deep == pytest.approx(0.325)
    assert s.by_n[16].gain == pytest.approx(0.05)  # compressed vs LoRA is unchanged by the third method
    assert s.best_mean == pytest.approx(0.55)
    assert fg.fig6_table(fg.summarise(_results(_runs(scores))))["full width − LoRA — ours, 95 % CI"].iloc[1] == "—"
    # the finding gives the scorecard's verdict on the full-width adapter beside its numbers
    from compressible.reproduction.scorecard import chapter_verdicts

    summary = fg.summarise(_results(_runs(scores)))
    verdicts = chapter_verdicts(summary)
    assert verdicts["fig6full"][0] == "inconclusive"  # +0.30 and +0.05: a t interval on 1 degree of freedom spans 0
    assert ("(what the authors' logged runs used) at n = 16: Pearson 0.325 against LoRA's 0.150 on the same seeds"
            in fg.finding_text(summary, PLAN, verdicts))
    assert "Verdict on the full-width adapter against LoRA: **inconclusive**." in fg.finding_text(summary, PLAN, verdicts)
    assert "Verdict on the full-width adapter" not in fg.finding_text(summary, PLAN, {})


def test_training_check_names_the_runs_that_did_not_train():
    runs = _runs()
    runs.loc[(runs.part == "fig6") & (runs.method == DEEP) & (runs.seed == 1), "trained"] = False
    check = fg.summarise(_results(runs)).training
    assert check.untrained == ["fig6 stsb Deep LoRA n=16 r=8 seed 1", "fig6 stsb Deep LoRA n=64 r=8 seed 1"]
    assert len(check.runs) == len(runs)


def test_table1_not_run_at_a_scale():
    plan = dataclasses.replace(PLAN, table1=None, table1_note="not here")
    runs = _runs()
    s = fg.summarise(_results(runs[runs.part != "table1"], plan=plan))
    assert s.table1 is None and fg.table1_text(s, plan) == "" and fg.plot_table1(_results(runs, plan=plan), s) is None
    assert "not here" in fg.table1_display(s, plan).data
    with pytest.raises(ValueError, match="must say why in table1_note"):
        dataclasses.replace(PLAN, table1=None)
    no8 = dataclasses.replace(PLAN, fig8=None, fig8_note="not this one")
    s8 = fg.summarise(_results(runs[runs.part != "fig8"], plan=no8))
    assert s8.fig8 is None and fg.fig8_text(s8) == "" and "not this one" in fg.fig8_display(s8, no8).data
    assert not any(name.startswith("Fig. 8") for name in fg.per_seed_table(s8)["experiment"])


def test_fig6_seeds_per_n():
    plan = fg.Fig6Plan(n=(16, 64), seeds=(0, 1, 2), steps=2, seeds_by_n=((64, (0,)),))
    assert plan.seeds_for(16) == (0, 1, 2) and plan.seeds_for(64) == (0,)
    with pytest.raises(ValueError, match=r"seeds_by_n names n=\[32\]"):
        fg.Fig6Plan(n=(16,), seeds=(0,), steps=2, seeds_by_n=((32, (0,)),))


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


def test_fig8_with_a_rank_where_deep_lora_predicts_a_constant():
    # Pearson is undefined (NaN) for a run that predicts one value for every pair: that rank has no Deep LoRA
    # mean, the change from the smallest to the largest r is n/a, and the table, text and plot still render
    scores = {**SCORES, ("fig8", 32): {LORA: [0.20, 0.30], DEEP: [float("nan"), float("nan")]}}
    runs = _runs(scores)
    runs.loc[runs.value.isna(), ["final_train_loss", "trained"]] = [1.0, False]
    results = _results(runs)
    s = fg.summarise(results)
    assert s.fig8.by_rank[32].deep is None and s.fig8.by_rank[32].lora == pytest.approx(0.25)
    assert s.fig8.deep_drop_smallest_to_largest_r is None
    assert s.fig8.lora_drop_smallest_to_largest_r == pytest.approx(0.25)
    assert "Deep LoRA's by n/a" in fg.fig8_text(s) and "LoRA's mean Pearson changes by -0.250" in fg.fig8_text(s)
    assert len(fg.fig8_table(s)) == 2 and fg.plot_fig8(results, s) is not None
    assert [u for u in s.training.untrained if u.startswith("fig8")] == [
        "fig8 stsb Deep LoRA n=16 r=32 seed 0", "fig8 stsb Deep LoRA n=16 r=32 seed 1"]
    assert s.fig8.untrained == {DEEP: {32: [0, 1]}} and "Deep LoRA at r = 32 (2 of 2 seeds)" in fg.fig8_text(s)
    assert fg.summarise(_results()).fig8.untrained == {} and "did not train" not in fg.fig8_text(fg.summarise(_results()))
    # the chapter's last cells: every paired difference, the scorecard's verdict and the finding
    from compressible.reproduction.scorecard import chapter_verdicts

    assert any(row.startswith("Fig. 8, r = 32") for row in fg.per_seed_table(s)["experiment"])
    verdicts = chapter_verdicts(s)
    assert verdicts["fig8"][0] == "did not train" and "Deep LoRA at r = 32 (2 of 2 seeds)" in verdicts["fig8"][1]
    assert "Fig. 8 (r = 8, 32, 2 seed(s)): **did not train**" in fg.finding_text(s, PLAN, verdicts)


def test_fig6_names_the_runs_that_did_not_train():
    runs = _runs()
    bad = (runs.part == "fig6") & (runs.n_train == 64) & (runs.method == DEEP) & (runs.seed == 1)
    runs.loc[bad, ["final_train_loss", "trained"]] = [1.0, False]
    s = fg.summarise(_results(runs))
    assert s.fig6.untrained == {DEEP: {64: [1]}} and s.fig8.untrained == {}
    assert "Deep LoRA at n = 64 (1 of 2 seeds)" in fg.fig6_text(s)
    assert "n = 64: +0.150 (2/2 seeds ahead" in fg.finding_text(s, PLAN, {}) and "[Deep LoRA: 1 of 2 runs did not train]" in fg.finding_text(s, PLAN, {})
    from compressible.reproduction.scorecard import chapter_verdicts

    # n = 64 is judged on seed 0 alone (+0.10): one seed gives no interval
    assert "n = 64: mean difference +0.1 from 1 seed(s), no interval" in chapter_verdicts(s)["fig6"][1]


def _probes(start: float, end: float, saturated: float | None) -> list[dict]:
    return [{"step": 0, "spread": start, "saturated": 0.0 if saturated is not None else None},
            {"step": 1, "spread": (start + end) / 2, "saturated": saturated},
            {"step": 2, "spread": end, "saturated": saturated}]


def test_fig8_probes_name_collapsed_and_saturated_runs():
    """Deep LoRA at r = 32 did not train on both seeds: seed 0's spread fell to 1/100 of its start with 80 %
    of the pooler saturated, seed 1's to 1/20 with 10 %; every trained run kept half its spread."""
    runs = _runs()
    bad = (runs.part == "fig8") & (runs["rank"] == 32) & (runs.method == DEEP)
    runs.loc[bad, ["final_train_loss", "trained"]] = [1.0, False]
    probes = {m: {r: {s: _probes(0.1, 0.05, 0.0) for s in (0, 1)} for r in (8, 32)} for m in (LORA, DEEP)}
    probes[DEEP][32] = {0: _probes(0.1, 0.001, 0.8), 1: _probes(0.1, 0.005, 0.1)}
    results = dataclasses.replace(_results(runs), probes=probes)
    s = fg.summarise(results)
    deep32 = s.fig8.probes[DEEP][32]
    assert [(x.seed, x.trained, x.collapsed, x.final_saturated) for x in deep32] == [(0, False, True, 0.8), (1, False, True, 0.1)]
    assert not any(x.collapsed for x in s.fig8.probes[LORA][8])
    text = fg.fig8_probe_text(s)
    assert "Of the 6 runs that trained, 0 ended collapsed" in text
    assert "Of the 2 runs that did not train, 2 ended collapsed (Deep LoRA r = 32 seed 0, Deep LoRA r = 32 seed 1)" in text
    assert "1 ended with over half of the pooler's units saturated (Deep LoRA r = 32 seed 0)" in text
    assert "these runs stalled in training" in text
    table = fg.fig8_probe_table(s)
    row = table[(table.method == DEEP) & (table.r == 32)].iloc[0]
    assert (row["trained"], row["final spread / start"], row["saturated pooler units at the end"]) == ("0 of 2", "0.010 / 0.050", "80% / 10%")
    assert fg.plot_fig8_probes(results, s) is not None
    # a trained run that also collapsed: the text no longer concludes that collapse marks the stalled runs
    probes[LORA][8][1] = _probes(0.1, 0.001, 0.0)
    s2 = fg.summarise(dataclasses.replace(results, probes=probes))
    assert "Of the 6 runs that trained, 1 ended collapsed" in fg.fig8_probe_text(s2)
    assert "stalled in training" not in fg.fig8_probe_text(s2)
    # runs stored before the probes existed: said, not guessed
    old = fg.summarise(_results(runs))
    assert old.fig8.probes == {} and "stored without probes" in fg.fig8_probe_text(old)
    assert fg.plot_fig8_probes(_results(runs), old) is None and fg.fig8_probe_table(old).empty


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
        fg.Fig8Plan(ranks=(8, 16), seeds=(0, 1), steps=2, n=16, scaled_seeds=(2,))
    with pytest.raises(ValueError, match=r"rate_rank=4 must be one of ranks=\(8, 16\)"):
        fg.Fig8Plan(ranks=(8, 16), seeds=(0, 1), steps=2, n=16, scaled_seeds=(0,), rate_rank=4)


def test_fig8_scaled_rate_variant_is_paired_with_lora_and_named_where_it_rescues_a_rank():
    # one rate: Deep LoRA does not train at r = 32; scaled: it does (seed 0, 1 at 0.45, 0.55)
    plan = dataclasses.replace(PLAN, fig8=fg.Fig8Plan(ranks=(8, 32), seeds=(0, 1), steps=2, n=16, scaled_seeds=(0, 1)))
    scores = {**SCORES, ("fig8", 32): {LORA: [0.20, 0.30], DEEP: [0.0, 0.02], fg.SCALED: [0.45, 0.55]}}
    runs = _runs(scores)
    runs.loc[(runs.part == "fig8") & (runs.method == DEEP) & (runs["rank"] == 32), "trained"] = False
    results = _results(runs, plan=plan)
    s = fg.summarise(results)
    f8 = s.fig8
    # at r = 8 the scaled variant is the compressed run itself; at 32 its own runs
    assert f8.scaled_by_rank[8].deep == pytest.approx(0.40) and f8.scaled_by_rank[8].differences == pytest.approx({0: -0.1, 1: -0.1})
    assert f8.scaled_by_rank[32].deep == pytest.approx(0.50) and f8.scaled_by_rank[32].differences == pytest.approx({0: 0.25, 1: 0.25})
    assert f8.scaled_drop_smallest_to_largest_r == pytest.approx(-0.10) and f8.rate_rank == 8
    assert f8.by_rank[32].deep == pytest.approx(0.01)  # the one-rate comparison is unchanged by the third method
    assert f8.best_mean == pytest.approx(0.50)
    table = fg.fig8_table(s)
    assert list(table[f"{fg.SCALED} — ours"]) == ["0.400 ± 0.000", "0.500 ± 0.071"]
    assert table["rate ∝ 1/r − LoRA — ours, 95 % CI"].iloc[1].startswith("+0.250")
    assert "from r = 8 to 32 it changes by +0.100" in fg.fig8_text(s)
    assert any(row == "Fig. 8, r = 32, rate ∝ 1/r − LoRA" for row in fg.per_seed_table(s)["experiment"])
    assert fg.plot_fig8(results, s) is not None
    from compressible.reproduction.scorecard import CLAIMS, chapter_verdicts, judge

    verdicts = chapter_verdicts(s)
    ours = judge(next(c for c in CLAIMS if c.key == "fig8"), s)[0]
    assert verdicts["fig8"][0] == "did not train" and "inner rate ∝ 1/r (not judged): drop -0.100" in ours
    finding = fg.finding_text(s, plan, verdicts)
    assert "trained at r = 32 (every run: 2 seed(s) per rank), where at one rate it did not" in finding
    # where the scaled runs fail too, the finding says the rate does not explain it
    runs.loc[(runs.part == "fig8") & (runs.method == fg.SCALED), "trained"] = False
    s2 = fg.summarise(_results(runs, plan=plan))
    assert s2.fig8.untrained[fg.SCALED] == {32: [0, 1]}
    finding2 = fg.finding_text(s2, plan, chapter_verdicts(s2))
    assert "At r = 32 runs at the scaled rate did not train either" in finding2 and "where at one rate" not in finding2
    # counted against the scaled variant's own seeds (here one), not the figure's
    one = dataclasses.replace(plan, fig8=dataclasses.replace(plan.fig8, scaled_seeds=(0,)))
    s3 = fg.summarise(_results(runs[~((runs.method == fg.SCALED) & (runs.seed == 1))], plan=one))
    assert f"{fg.SCALED} at r = 32 (1 of 1 seeds)" in fg.finding_text(s3, one, chapter_verdicts(s3))
    assert fg.SCALED not in fg.fig8_text(s3).split("Runs that did not train")[1]
