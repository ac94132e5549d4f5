"""Tests of compressible.experiments.fewshot_glue's summary: every statistic and decision on hand-made runs.

The runs below are small enough to work out by hand: two tasks (STS-B, Pearson; RTE, accuracy
with chance 60 points) and two seeds for Table 1, two n for Fig. 6, two r for Fig. 8, four
adapted weights for Fig. 7.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from compressible.experiments import fewshot_glue as fg
from compressible.experiments.fewshot_glue import figures, tables
from compressible.experiments.fewshot_glue.summary import ProbedRun, UntrainedRuns
from compressible.experiments.fewshot_glue.plan import Fig6Plan, Fig8Plan, Table1Plan
from compressible.experiments.glue_runs import METHOD_LABELS
from compressible.experiments.glue_stats import DEEP, LORA
from compressible.reference import paper_value
from compressible.summaries import load_summary, save_summary

PLAN = dataclasses.replace(
    fg.PLANS["smoke"],
    table1=Table1Plan(tasks=("stsb", "rte"), seeds=(0, 1), steps=2, steps_sst2=2, n=32),
    fig6=Fig6Plan(n=(16, 64), seeds=(0, 1), steps=2),
    fig8=Fig8Plan(ranks=(8, 32), seeds=(0, 1), steps=2, n=16),
    diagnosis=None,  # its summary has tests of its own (test_fewshot_glue_checks)
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
                    "wall_time": 1.0, "trainable_params": 100,
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
    assert summary.table1.tasks_above_chance == ["stsb"] and summary.table1.tasks_near_chance == ["rte"]


def test_table1_best_and_worst_task(summary):
    # gains: STS-B +5 points, RTE +2: Deep LoRA ahead on both, most on STS-B
    t = summary.table1
    assert (t.tasks_deep_ahead, t.best_task, t.worst_task) == (2, "stsb", "rte")


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
    assert not f7.deep_mostly_rank0  # half at rank 0 is not a majority
    mostly = {**FIG7, DEEP: _spectra([0, 0, 0, 4], [1e-4, 2e-4, 3e-4, 0.5])}
    assert fg.summarise(_results(fig7=mostly)).fig7.deep_mostly_rank0


def test_run_totals_and_the_mirror_are_data(summary):
    runs = _runs().assign(wall_time=30.0, trainable_params=100)
    s = fg.summarise(dataclasses.replace(_results(runs), mirror=True))
    assert s.mirror and not summary.mirror
    assert (s.totals.rows, s.totals.configs, s.totals.minutes) == (len(runs), runs.key.nunique(), pytest.approx(len(runs) * 0.5))
    assert {(t.method, t.rank, t.params) for t in s.totals.trainable} == {(m, r, 100) for m in (LORA, DEEP) for r in (8, 32)}


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
    table = tables.table1_table(summary)
    assert table["task"].tolist() == ["stsb", "rte", "average (2 tasks)"]
    ours = tables.ours_label("smoke")
    assert table[f"Deep ahead — {ours}"].tolist() == ["1/2", "2/2", "1/2"]
    assert table[f"LoRA — {ours}"].iloc[-1].startswith("58.00 ±")
    assert tables.fig6_table(summary)["n"].tolist() == [16, 64]
    per_seed = tables.per_seed_table(summary)
    assert per_seed["experiment"].tolist() == ["Table 1, stsb", "Table 1, rte", "Fig. 6, n = 16", "Fig. 6, n = 64",
                                               "Fig. 8, r = 8", "Fig. 8, r = 32"]
    assert per_seed["seed 0"].iloc[0] == "20.000"


def test_paired_intervals_and_wilcoxon(summary):
    from scipy import stats

    s = summary.fig6.by_n[64]  # differences +0.10 and +0.20
    half = stats.t.ppf(0.975, 1) * np.std([0.1, 0.2], ddof=1) / np.sqrt(2)
    assert (s.low, s.high) == pytest.approx((0.15 - half, 0.15 + half))
    assert s.wilcoxon_p == pytest.approx(stats.wilcoxon([0.1, 0.2]).pvalue)


def test_full_width_is_paired_with_lora_on_its_seeds():
    full = METHOD_LABELS["full"]
    scores = dict(SCORES)
    scores[("fig6", 16)] = {LORA: [0.10, 0.20], DEEP: [0.30, 0.10], full: [0.40, 0.25]}
    s = fg.summarise(_results(_runs(scores))).fig6
    assert list(s.full_by_n) == [16]
    assert s.full_by_n[16].differences == pytest.approx({0: 0.30, 1: 0.05}) and s.full_by_n[16].deep == pytest.approx(0.325)
    assert s.by_n[16].gain == pytest.approx(0.05)  # compressed vs LoRA is unchanged by the third method
    assert s.best_mean == pytest.approx(0.55)
    assert tables.fig6_table(fg.summarise(_results(_runs(scores))))["full width − LoRA — ours, 95 % CI"].iloc[1] == "—"
    assert (s.full_by_n[16].deep, s.full_by_n[16].lora) == pytest.approx((0.325, 0.15))
    # +0.30 and +0.05: the t interval on 1 degree of freedom reaches below the compressed gain (+0.05)
    assert s.full_beats_compressed == {16: False}
    from compressible.reproduction.scorecard import chapter_verdicts

    assert chapter_verdicts(fg.summarise(_results(_runs(scores))))["fig6full"][0] == "inconclusive"
    # a full-width adapter well ahead on every seed: its interval's lower end is above the compressed gain
    scores[("fig6", 16)] = {LORA: [0.10, 0.20], DEEP: [0.30, 0.10], full: [0.60, 0.71]}
    assert fg.summarise(_results(_runs(scores))).fig6.full_beats_compressed == {16: True}


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
    assert s.table1 is None and figures.plot_table1(_results(runs, plan=plan), s) is None
    with pytest.raises(ValueError, match="must say why in table1_note"):
        dataclasses.replace(PLAN, table1=None)
    no8 = dataclasses.replace(PLAN, fig8=None, fig8_note="not this one")
    s8 = fg.summarise(_results(runs[runs.part != "fig8"], plan=no8))
    assert s8.fig8 is None and figures.plot_fig8(_results(runs[runs.part != "fig8"], plan=no8), s8) is None
    assert not any(name.startswith("Fig. 8") for name in tables.per_seed_table(s8)["experiment"])


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
    assert len(tables.fig8_table(s)) == 2 and figures.plot_fig8(results, s) is not None
    assert [u for u in s.training.untrained if u.startswith("fig8")] == [
        "fig8 stsb Deep LoRA n=16 r=32 seed 0", "fig8 stsb Deep LoRA n=16 r=32 seed 1"]
    assert s.fig8.untrained == {DEEP: {32: [0, 1]}}
    assert s.fig8.untrained_runs() == [UntrainedRuns(method=DEEP, key=32, seeds=[0, 1], of=2)]
    assert fg.summarise(_results()).fig8.untrained == {} and fg.summarise(_results()).fig8.untrained_runs() == []
    # the chapter's last cells: every paired difference, the scorecard's verdict and the finding
    from compressible.reproduction.scorecard import chapter_verdicts

    assert any(row.startswith("Fig. 8, r = 32") for row in tables.per_seed_table(s)["experiment"])
    verdicts = chapter_verdicts(s)
    assert verdicts["fig8"][0] == "did not train" and "Deep LoRA at r = 32 (2 of 2 seeds)" in verdicts["fig8"][1]


def test_fig6_names_the_runs_that_did_not_train():
    runs = _runs()
    bad = (runs.part == "fig6") & (runs.n_train == 64) & (runs.method == DEEP) & (runs.seed == 1)
    runs.loc[bad, ["final_train_loss", "trained"]] = [1.0, False]
    s = fg.summarise(_results(runs))
    assert s.fig6.untrained == {DEEP: {64: [1]}} and s.fig8.untrained == {}
    assert s.fig6.untrained_runs() == [UntrainedRuns(method=DEEP, key=64, seeds=[1], of=2)]
    assert s.fig6.untrained_runs(keys=[16]) == [] and (s.fig6.by_n[64].gain, s.fig6.by_n[64].deep_wins) == (pytest.approx(0.15), 2)
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
    found = s.fig8.probe_findings
    stalled = [ProbedRun(method=DEEP, rank=32, seed=0), ProbedRun(method=DEEP, rank=32, seed=1)]
    assert (found.trained, found.trained_collapsed, found.untrained, found.collapsed) == (6, 0, stalled, stalled)
    assert found.saturated == stalled[:1] and found.collapse_marks_stall
    table = tables.fig8_probe_table(s)
    row = table[(table.method == DEEP) & (table.r == 32)].iloc[0]
    assert (row["trained"], row["final spread / start"], row["saturated pooler units at the end"]) == ("0 of 2", "0.010 / 0.050", "80% / 10%")
    assert figures.plot_fig8_probes(results, s) is not None
    # a trained run that also collapsed: the text no longer concludes that collapse marks the stalled runs
    probes[LORA][8][1] = _probes(0.1, 0.001, 0.0)
    s2 = fg.summarise(dataclasses.replace(results, probes=probes))
    assert s2.fig8.probe_findings.trained_collapsed == 1 and not s2.fig8.probe_findings.collapse_marks_stall
    # runs stored before the probes existed: said, not guessed
    old = fg.summarise(_results(runs))
    assert old.fig8.probes == {} and old.fig8.probe_findings is None
    assert figures.plot_fig8_probes(_results(runs), old) is None and tables.fig8_probe_table(old).empty


def test_fig8_scaled_rate_variant_is_paired_with_lora_and_named_where_it_rescues_a_rank():
    # one rate: Deep LoRA does not train at r = 32; scaled: it does (seed 0, 1 at 0.45, 0.55)
    plan = dataclasses.replace(PLAN, fig8=Fig8Plan(ranks=(8, 32), seeds=(0, 1), steps=2, n=16, scaled_seeds=(0, 1)))
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
    table = tables.fig8_table(s)
    assert list(table[f"{fg.SCALED} — ours"]) == ["0.400 ± 0.000", "0.500 ± 0.071"]
    assert table["rate ∝ 1/r − LoRA — ours, 95 % CI"].iloc[1].startswith("+0.250")
    assert any(row == "Fig. 8, r = 32, rate ∝ 1/r − LoRA" for row in tables.per_seed_table(s)["experiment"])
    assert figures.plot_fig8(results, s) is not None
    from compressible.reproduction.claims import CLAIMS
    from compressible.reproduction.scorecard import chapter_verdicts, judge

    verdicts = chapter_verdicts(s)
    ours = judge(next(c for c in CLAIMS if c.key == "fig8"), s)[0]
    assert verdicts["fig8"][0] == "did not train" and "inner rate ∝ 1/r (not judged): drop -0.100" in ours
    assert (f8.scaled_rescued, f8.scaled_untrained) == ([32], [])
    # where the scaled runs fail too, the finding says the rate does not explain it
    runs.loc[(runs.part == "fig8") & (runs.method == fg.SCALED), "trained"] = False
    s2 = fg.summarise(_results(runs, plan=plan))
    assert s2.fig8.untrained[fg.SCALED] == {32: [0, 1]}
    assert (s2.fig8.scaled_rescued, s2.fig8.scaled_untrained) == ([], [32])
    # counted against the scaled variant's own seeds (here one), not the figure's
    one = dataclasses.replace(plan, fig8=dataclasses.replace(plan.fig8, scaled_seeds=(0,)))
    s3 = fg.summarise(_results(runs[~((runs.method == fg.SCALED) & (runs.seed == 1))], plan=one))
    assert s3.fig8.untrained_runs(methods=[fg.SCALED], scaled=True) == [UntrainedRuns(method=fg.SCALED, key=32, seeds=[0], of=1)]
