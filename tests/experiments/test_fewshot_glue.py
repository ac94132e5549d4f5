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
from compressible.experiments.glue_stats import DEEP, LORA
from compressible.reference import paper_value
from compressible.summaries import load_summary, save_summary

PLAN = dataclasses.replace(
    fg.PLANS["smoke"],
    table1=fg.Table1Plan(tasks=("stsb", "rte"), seeds=(0, 1), steps=2, steps_sst2=2, n=32),
    fig6=fg.Fig6Plan(n=(16, 64), seeds=(0, 1), steps=2),
    fig8=fg.Fig8Plan(ranks=(8, 32), seeds=(0, 1), steps=2, n=16),
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
                })
    return pd.DataFrame(rows)


def _spectra(ranks, norms):
    return {"spectra": {f"layer{i}": {"rank": r, "singular_values": [s]} for i, (r, s) in enumerate(zip(ranks, norms))}}


FIG7 = {LORA: _spectra([4, 4, 4, 3], [0.1, 0.2, 0.3, 0.05]), DEEP: _spectra([0, 0, 1, 4], [1e-4, 2e-4, 0.01, 0.5])}


def _results(runs=None, fig7=FIG7) -> fg.FewshotGlueResults:
    return fg.FewshotGlueResults("smoke", PLAN, _runs() if runs is None else runs, fig7, 4, {"stsb": 0.0, "rte": 60.0})


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
    with pytest.raises(ValueError, match="task"):
        fg.Table1Plan(tasks=("glue",), seeds=(0,), steps=1, steps_sst2=1, n=16)
    with pytest.raises(ValueError, match="scale must be one of"):
        fg.plan("huge")
    assert not math.isnan(fg.task_chance("stsb"))  # a correlation: 0 without loading any data


def test_paper_plan_runs_the_authors_protocol_ci_and_smoke_keep_theirs():
    """paper: random pooler (frozen unless adapted) and the authors' "all dense" targets in every run;
    ci and smoke: the checkpoint's pooler and the paper's 72-style targets, as before."""
    paper = fg.experiments(fg.PLANS["paper"])
    assert paper and all(e.config.pooler == "random" and e.config.adapter.targets == "all-dense" for e in paper)
    assert {e.config.adapter.init for e in paper} == {"lora", "compressed"}
    for scale in ("ci", "smoke"):
        runs = fg.experiments(fg.PLANS[scale])
        assert all(e.config.pooler == "pretrained" and e.config.adapter.targets == "attention-mlp" for e in runs)
        assert all(e.config.autocast == "off" for e in runs)
