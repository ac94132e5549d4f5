"""The evidence plan of the few-shot claim: its checks, the rate choice, the decisions, and partial ledgers."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from compressible.experiments import fewshot_evidence as fe
from compressible.experiments.fewshot_evidence.run import FRAME_COLUMNS, EvidenceRuns, choose
from compressible.experiments.fewshot_evidence.summarise import summarise
from compressible.experiments.fewshot_evidence.summary import Answer, Training
from compressible.store import ResultStore, config_key

ROOT = Path(__file__).resolve().parents[2]


def test_plans_give_every_method_the_same_grid_a_decade_wide_and_disjoint_seeds():
    for p in fe.PLANS.values():
        sizes = {len(p.points(m)) for m in fe.METHODS}
        assert len(sizes) == 1
        assert not set(p.tuning_seeds) & set(p.seeds)
    ci = fe.plan("ci")
    assert ci.steps == 500 and ci.n == (16, 64, 256) and len(ci.seeds) >= 10


@pytest.mark.parametrize("change, message", [
    ({"lora": (1e-4, 2e-4, 4e-4, 6e-4, 8e-4, 9e-4)}, r"span a factor >= 10 in every rate; \{'lora': 9.0\} do not"),
    ({"full": (1e-4, 1e-3)}, r"grids of \{'lora': 6, 'compressed': 6, 'full': 2, 'peft': 6\} points"),
    ({"seeds": (1, 2, 3)}, r"share \[1\]"),
    ({"compressed": ((1e-4, 1e-2), (3e-4, 1e-2), (1e-3, 1e-2), (1e-3, 2e-2), (1e-2, 1e-2), (1e-2, 2e-2))},
     r"'compressed gamma': 2.0"),
])
def test_a_plan_that_would_not_compare_fairly_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(fe.plan("ci"), **change)


def test_a_plan_without_held_out_examples_cannot_tune():
    p = fe.plan("ci")
    with pytest.raises(ValueError, match="holdout >= 1"):
        dataclasses.replace(p, methods=dataclasses.replace(p.methods, holdout=0))


def test_the_ledgers_500_step_stsb_runs_are_the_ci_plans_grid_or_fig6_runs():
    """Every 500-step STS-B run in the committed ledger is one the ci evidence plan lists (its keys are
    the plan's), so a ledger grown by an older script still counts."""
    p = fe.plan("ci")
    keys = {config_key(e.config) for e in fe.grid(p)}
    for method in fe.METHODS:  # Fig. 6 at every grid point: whatever the grid chooses
        for n in p.n:
            keys |= {config_key(p.config(method, n, rate)) for rate in p.points(method)}
    files = sorted((ROOT / "ledger" / "RunConfig").glob("*/seed-*.json"))
    evidence = [f.parent.name for f in files
                if (c := json.loads(f.read_text())["_config"])["steps"] == 500 and c["task"] == "stsb"]
    assert evidence and set(evidence) <= keys


def _grid_frame(p, scores: dict) -> pd.DataFrame:
    rows = []
    for (method, n, rate), values in scores.items():
        for seed, h in zip(p.tuning_seeds, values):
            rows.append({"part": "tuning", "method": method, "n": n, "lr": rate[0], "gamma": rate[1], "seed": seed,
                         "holdout": h, "value": h, "trained": True, "wall_time": 1.0, "cpu_time": 1.0})
    return pd.DataFrame(rows)


def test_choose_takes_the_best_held_out_mean_and_waits_for_a_complete_grid():
    p = fe.plan("smoke")  # one tuning seed, two points per method
    lora, comp = p.points("lora"), p.points("compressed")
    frame = _grid_frame(p, {("lora", 16, lora[0]): [0.2], ("lora", 16, lora[1]): [0.5],
                            ("compressed", 16, comp[0]): [np.nan], ("compressed", 16, comp[1]): [-0.1],
                            ("lora", 32, lora[0]): [0.3]})  # n = 32: LoRA's grid incomplete
    assert choose(p, frame) == {"lora": {16: lora[1]}, "compressed": {16: comp[1]}}


def _runs(p, fig6: dict) -> EvidenceRuns:
    rows = []
    for (method, n), values in fig6.items():
        for seed, (v, trained) in zip(p.seeds, values):
            rows.append({"part": "fig6", "method": method, "task": "stsb", "n": n, "steps": p.steps,
                         "rank": None if method == "full" else 8, "lr": 1e-4, "gamma": None, "seed": seed,
                         "holdout": np.nan, "value": v, "trained": trained, "wall_time": 2.0, "cpu_time": 1.0})
    return EvidenceRuns("smoke", p, pd.DataFrame(rows, columns=FRAME_COLUMNS), {})


def test_the_answers_follow_the_paired_interval_and_leave_out_untrained_seeds():
    p = dataclasses.replace(fe.plan("smoke"), seeds=(1, 2, 3, 4))
    s = summarise(_runs(p, {
        ("lora", 16): [(0.1, True), (0.2, True), (0.3, True), (0.4, True)],
        ("compressed", 16): [(0.3, True), (0.41, True), (0.49, True), (0.0, False)],  # +0.2 on the 3 trained seeds
        ("full", 16): [(0.0, True), (0.1, True), (0.2, True), (0.31, True)],         # about -0.1 everywhere
        ("lora", 32): [(0.1, True), (0.2, True), (0.3, True), (0.4, True)],
        ("compressed", 32): [(0.0, False)] * 4,
    }))
    by = {(c.method, c.n): c for c in s.comparisons if c.baseline == "lora"}
    assert by["compressed", 16].answer == Answer.BETTER and by["compressed", 16].untrained_seeds == [4]
    assert by["compressed", 16].scores.seeds == 3 and by["compressed", 16].scores.gain == pytest.approx(0.2, abs=1e-12)
    assert by["full", 16].answer == Answer.WORSE
    assert by["compressed", 32].answer == Answer.UNTRAINED and by["full", 32].answer == Answer.NOT_RUN
    assert s.compressed_training == {16: Training.PARTLY, 32: Training.UNTRAINED}
    assert s.across_n["compressed"] == Answer.UNTRAINED and s.across_n["full"] == Answer.NOT_RUN  # n = 32 not run
    assert s.runs_per_core_hour == {m: 3600.0 for m in ("compressed", "full", "lora")}
    assert s.runs_per_gpu_hour == {}


def test_runs_computed_on_a_gpu_are_costed_per_gpu_hour_not_per_core_hour():
    p = dataclasses.replace(fe.plan("smoke"), seeds=(1, 2))
    runs = _runs(p, {("lora", 16): [(0.1, True), (0.2, True)], ("full", 16): [(0.2, True), (0.3, True)]})
    gpu = runs.runs.iloc[[0]].assign(seed=9, cpu_time=100.0, wall_time=10.0, platform="cuda (NVIDIA H100)")
    s = summarise(dataclasses.replace(runs, runs=pd.concat([runs.runs, gpu], ignore_index=True)))
    assert s.runs_per_core_hour == {"lora": 3600.0, "full": 3600.0}  # the GPU run's processor time is left out
    assert s.runs_per_gpu_hour == {"lora": 360.0}


def test_the_power_against_the_authors_gain_uses_the_measured_spread():
    from compressible.experiments.glue_stats import paired_power, paired_seeds

    p = dataclasses.replace(fe.plan("smoke"), n=(16,), seeds=(1, 2, 3), table1=None)
    s = summarise(_runs(p, {("lora", 16): [(0.1, True), (0.2, True), (0.3, True)],
                            ("full", 16): [(0.2, True), (0.25, True), (0.45, True)]}))
    c = next(c for c in s.comparisons if c.method == "full" and c.baseline == "lora")
    assert c.paper_gain == 0.069
    assert c.power == paired_power(3, 0.069, c.scores.gain_std)
    assert c.seeds_for_power == paired_seeds(0.069, c.scores.gain_std)


def test_a_store_that_may_not_compute_lists_the_missing_runs_instead_of_failing(tmp_path):
    store = ResultStore(tmp_path, ledger=None, compute_missing=False)
    runs = fe.run("smoke", store)
    p = fe.plan("smoke")
    grid_runs = sum(len(e.seeds) for e in fe.grid(p))
    assert runs.runs.empty and runs.rates == {}
    fig6_runs = sum(len(p.seeds_of(m)) for n in p.n for m in p.methods_at(n))
    fig8_runs = (2 * len(p.fig8.ranks) + 1) * len(p.fig8.seeds)  # LoRA and compressed at every rank, full width once
    table1_runs = len(fe.METHODS) * len(p.table1.tasks) * len(p.table1.seeds)
    assert len(runs.missing) == grid_runs + fig6_runs + fig8_runs + table1_runs
    s = summarise(runs)
    assert s.runs_held == 0 and s.runs_planned == len(runs.missing)
    assert all(c.answer == Answer.NOT_RUN for c in s.comparisons)


def test_the_scorecard_judges_fig6_from_the_evidence_at_every_n_and_leaves_missing_n_open():
    from compressible.reproduction.claims import CLAIMS
    from compressible.reproduction.scorecard import judge
    from compressible.reproduction.verdicts import Verdict

    p = dataclasses.replace(fe.plan("smoke"), seeds=(1, 2, 3, 4))
    lora = [(0.3, True), (0.4, True), (0.5, True), (0.6, True)]
    better = [(0.5, True), (0.61, True), (0.69, True), (0.8, True)]  # +0.2 +- 0.01
    claim = next(c for c in CLAIMS if c.key == "fig6tuned")
    whole = summarise(_runs(p, {("lora", 16): lora, ("compressed", 16): better, ("lora", 32): lora, ("compressed", 32): better}))
    ours, verdict_, why = judge(claim, whole)
    assert verdict_ == Verdict.TREND and "n = 16: +0.200 over 4 seed(s)" in ours
    half = summarise(_runs(p, {("lora", 16): lora, ("compressed", 16): better}))
    assert judge(claim, half)[1] == Verdict.INCONCLUSIVE
    nothing = summarise(_runs(p, {}))
    assert judge(claim, nothing)[1] == Verdict.NOT_RUN
    untrained = summarise(_runs(p, {("lora", 16): lora, ("compressed", 16): [(0.0, False)] * 4,
                                    ("lora", 32): lora, ("compressed", 32): better}))
    assert judge(claim, untrained)[1] == Verdict.UNTRAINED


def test_peft_family_runs_where_the_plan_says_and_is_compared_with_both_deep_lora_variants():
    p = fe.plan("ci")
    peft = [e for e in fe.grid(p) if e.config.adapter.init.startswith("peft-")]
    assert {e.config.n_train for e in peft} == {64} and len(peft) == 5 * len(p.peft)
    assert {e.config.adapter.variant for e in peft} == {"lora", "rslora", "dora", "pissa", "loraga"}
    assert all(e.config.adapter.targets == "all-dense" and e.config.spectrum_top == 0 for e in peft)
    small = dataclasses.replace(fe.plan("smoke"), seeds=(1, 2, 3))
    s = summarise(_runs(small, {("lora", 16): [(0.1, True), (0.2, True), (0.3, True)]}))
    against = {(c.method, c.baseline) for c in s.comparisons if c.n == 16 and c.baseline != "lora"}
    assert against == {(m, b) for m in ("compressed", "full") for b in fe.PEFT_METHODS}
    assert all(c.paper_gain is None for c in s.comparisons if c.baseline != "lora")
    # against the authors' LoRA, the paper's gain (and the power against it) is Deep LoRA's, not a PEFT variant's
    gains = {c.method: c.paper_gain for c in s.comparisons if c.n == 16 and c.baseline == "lora"}
    assert set(gains) == {"compressed", "full", *fe.PEFT_METHODS}
    assert gains["compressed"] == gains["full"] == 0.069
    assert all(gains[m] is None for m in fe.PEFT_METHODS)
    assert all(c.power is None and c.seeds_for_power is None for c in s.comparisons if c.method in fe.PEFT_METHODS)
    with pytest.raises(ValueError, match="peft_n=\\(64,\\) must be among n"):
        dataclasses.replace(p, peft_seeds=(99,))


def test_the_ledger_fills_in_the_issues_order(tmp_path, monkeypatch):
    """The order of issue #26: Fig. 6's grid, Fig. 6 at the rates it chose, PEFT's grid and its runs, Fig. 8,
    then Table 1's screening seed (and no other seed of a task not screened yet)."""
    import importlib

    run_module = importlib.import_module("compressible.experiments.fewshot_evidence.run")

    p = fe.plan("smoke")
    calls, seeds = [], []
    monkeypatch.setattr(run_module, "run_and_load", lambda exps, *a, **k: (
        calls.append({(e.part, run_module._LABEL_METHOD[e.label]) for e in exps}), seeds.append({s for e in exps for s in e.seeds})))
    # every grid that has run chooses its first point
    monkeypatch.setattr(run_module, "choose", lambda plan, frame: {
        m: {n: plan.points(m)[0] for n in plan.n if m in plan.methods_at(n)}
        for c in calls for part, m in c if part == "tuning"})
    fe.run("smoke", ResultStore(tmp_path, ledger=None))
    parts = [{part for part, _ in c} for c in calls]
    methods = [{m for _, m in c} for c in calls]
    assert parts == [{"tuning"}, {"fig6"}, {"tuning"}, {"peft"}, {"fig8"}, {"table1"}, {"table1"}]
    assert seeds[-2] == seeds[-1] == {p.table1.seeds[0]}
    assert methods[0] == methods[1] == set(fe.METHODS)
    assert methods[2] == methods[3] == set(fe.PEFT_METHODS) & set(p.methods_at(16))


def _part_runs(p, part: str, rows: list[tuple], chance=None, kept=None) -> EvidenceRuns:
    """``rows``: ``(method, task, rank, seed, value)``, all trained."""
    frame = pd.DataFrame([{"part": part, "method": m, "task": task, "n": 16, "steps": 2, "rank": rank, "lr": 1e-4,
                           "gamma": None, "seed": seed, "holdout": np.nan, "value": v, "trained": True,
                           "wall_time": 1.0, "cpu_time": 1.0} for m, task, rank, seed, v in rows], columns=FRAME_COLUMNS)
    return EvidenceRuns("smoke", p, frame, {}, chance=chance or {}, kept=kept or {})


def test_fig8_compares_each_deep_variants_gain_at_the_largest_and_smallest_rank_per_seed():
    p = dataclasses.replace(fe.plan("smoke"), fig8=dataclasses.replace(fe.plan("smoke").fig8, seeds=(1, 2, 3)))
    lora = {2: [0.5, 0.5, 0.5], 4: [0.3, 0.25, 0.28]}
    rows = [("lora", "stsb", r, s, v) for r, vs in lora.items() for s, v in zip((1, 2, 3), vs)]
    rows += [("compressed", "stsb", r, s, v) for r in (2, 4) for s, v in zip((1, 2, 3), (0.5, 0.6, 0.5))]
    rows += [("full", "stsb", None, s, 0.4) for s in (1, 2, 3)]
    f = summarise(_part_runs(p, "fig8", rows)).fig8
    by = {c.method: c for c in f.change}
    # (Deep - LoRA at r = 4) - (Deep - LoRA at r = 2) = LoRA's drop when Deep LoRA's score does not move
    for method in ("compressed", "full"):
        assert by[method].scores.differences == pytest.approx({1: 0.2, 2: 0.25, 3: 0.22}, abs=1e-12)
        assert by[method].answer == Answer.BETTER
    from compressible.reference import paper_value

    gain = {r: paper_value("figure8_rank_sweep_stsb16", "deep", r) - paper_value("figure8_rank_sweep_stsb16", "vanilla", r)
            for r in ("2", "4")}
    assert by["compressed"].paper_gain == pytest.approx(gain["4"] - gain["2"])
    points = {(x.method, x.rank): x for x in f.points}
    assert points["full", None].seeds == 3 and points["lora", 4].mean == pytest.approx(np.mean(lora[4]))

    # a run that did not train: its seed leaves the change, and its cell in the table says so
    runs = _part_runs(p, "fig8", rows)
    runs.runs.loc[(runs.runs.method == "lora") & (runs.runs["rank"] == 2) & (runs.runs.seed == 1), "trained"] = False
    s = summarise(runs)
    assert {c.method: sorted(c.scores.differences) for c in s.fig8.change} == {"compressed": [2, 3], "full": [2, 3]}
    from compressible.experiments.fewshot_evidence.tables import UNTRAINED_MARK, rank_table

    table = rank_table(s).set_index("r")
    assert table.loc[2, "LoRA"].endswith("; " + UNTRAINED_MARK[Training.PARTLY])
    assert not any(mark in cell for mark in UNTRAINED_MARK.values() for cell in table.loc[4])


def test_table1_keeps_the_tasks_that_leave_chance_and_averages_over_them_per_seed():
    p = fe.plan("smoke")  # Table 1: stsb and rte, seeds 1 (the screen) and 2
    chance = {"stsb": 0.0, "rte": 52.7}
    screened = [(m, "stsb", None, 1, v) for m, v in zip(fe.METHODS, (0.30, 0.40, 0.20))]
    screened += [(m, "rte", None, 1, v) for m, v in zip(fe.METHODS, (0.53, 0.55, 0.50))]  # at most 2.3 points above
    from compressible.experiments.fewshot_evidence.run import screen

    kept = screen(p, _part_runs(p, "table1", screened).runs, chance)
    assert kept == {"stsb": True, "rte": False}
    assert screen(p, _part_runs(p, "table1", screened[:2]).runs, chance)["stsb"] is None  # not every method yet
    second = [(m, "stsb", None, 2, v) for m, v in zip(fe.METHODS, (0.35, 0.50, 0.30))]
    t = summarise(_part_runs(p, "table1", screened + second, chance, kept)).table1
    assert (t.kept, t.left_out, t.unscreened) == (["stsb"], ["rte"], [])
    c = next(c for c in t.average if c.method == "compressed")
    assert c.scores.seeds == 2 and c.scores.gain == pytest.approx(12.5)  # (10 + 15) / 2 points, rte left out
    assert fe.table1(p, {m: {32: p.points(m)[0]} for m in fe.METHODS}, kept)[0].seeds == p.table1.seeds


@pytest.mark.parametrize("change, message", [
    ({"fig8": fe.Fig8Evidence(ranks=(8,), n=48, steps=2, seeds=(1,))}, r"fig8.n=48 must be one of n=\(16, 32\)"),
    ({"table1": fe.Table1Evidence(tasks=("stsb",), n=32, steps=2, steps_sst2=2, seeds=(0, 1), rates_n=32)},
     r"table1.seeds=\(0, 1\) must be given and disjoint from tuning_seeds=\(0,\)"),
    ({"table1": fe.Table1Evidence(tasks=("sts",), n=32, steps=2, steps_sst2=2, seeds=(1,), rates_n=32)},
     r"names \['sts'\]; valid tasks are"),
])
def test_fig8_and_table1_plans_are_checked(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(fe.plan("smoke"), **change)


def test_the_full_width_adapter_has_no_rank():
    p = fe.plan("smoke")
    with pytest.raises(ValueError, match="full-width adapter has no rank"):
        p.config("full", 16, p.points("full")[0], rank=8)


def test_the_scorecard_reads_fig8_and_table1_from_the_evidence():
    from compressible.reproduction.claims import CLAIMS
    from compressible.reproduction.scorecard import judge
    from compressible.reproduction.verdicts import Verdict

    claims = {c.key: c for c in CLAIMS}
    p = dataclasses.replace(fe.plan("smoke"), fig8=dataclasses.replace(fe.plan("smoke").fig8, seeds=(1, 2, 3)))
    rows = [("lora", "stsb", 2, s, 0.5) for s in (1, 2, 3)]
    rows += [("lora", "stsb", 4, s, v) for s, v in zip((1, 2, 3), (0.3, 0.25, 0.28))]
    rows += [("compressed", "stsb", r, s, 0.5) for r in (2, 4) for s in (1, 2, 3)]
    assert judge(claims["fig8tuned"], summarise(_part_runs(p, "fig8", rows)))[1] == Verdict.TREND
    no_lora = [x for x in rows if x[0] == "compressed"]  # nothing to pair with yet: open, not "not run"
    assert judge(claims["fig8tuned"], summarise(_part_runs(p, "fig8", no_lora)))[1] == Verdict.INCONCLUSIVE
    untrained = _part_runs(p, "fig8", rows)
    untrained.runs.loc[(untrained.runs["rank"] == 2) & (untrained.runs.method == "lora"), "trained"] = False
    assert judge(claims["fig8tuned"], summarise(untrained))[1] == Verdict.UNTRAINED
    no_plan = dataclasses.replace(p, fig8=None, table1=None)
    assert {judge(claims[k], summarise(_part_runs(no_plan, "fig8", [])))[1] for k in ("fig8tuned", "table1tuned")} == {
        Verdict.NOT_RUN}
    waiting = dataclasses.replace(_part_runs(p, "table1", []), missing=[("table1", m, 32, 1) for m in fe.METHODS]
                                  + [("fig8", "lora", 16, 1)])
    assert judge(claims["table1tuned"], summarise(waiting))[1] == Verdict.INCONCLUSIVE  # planned, not computed yet
    from compressible.reproduction.claims import _missing

    assert (_missing(summarise(waiting), "table1"), _missing(summarise(waiting), "fig8")) == (3, 1)


@pytest.mark.parametrize("answers, expected", [
    ([Answer.BETTER] * 3, Answer.BETTER),
    ([Answer.WORSE] * 2, Answer.WORSE),
    ([Answer.BETTER, Answer.UNDECIDED, Answer.BETTER], Answer.UNDECIDED),
    ([Answer.BETTER, Answer.WORSE], Answer.UNDECIDED),
    ([Answer.BETTER, Answer.NOT_RUN, Answer.UNTRAINED], Answer.NOT_RUN),
    ([Answer.UNTRAINED, Answer.BETTER], Answer.UNTRAINED),
    ([], Answer.NOT_RUN),
])
def test_a_method_beats_lora_across_n_only_where_it_does_at_every_n(answers, expected):
    from compressible.experiments.fewshot_evidence.summarise import across_n

    assert across_n(answers) == expected


def test_a_chosen_rate_on_its_grids_edge_is_flagged():
    from compressible.experiments.fewshot_evidence.summarise import on_edge

    grid = ((1e-4, 1.0), (1e-3, 1e-2), (1e-3, 1e-1), (1e-2, 1e-2), (1e-2, 1e-1))
    assert not on_edge(grid, (1e-3, 1e-1))  # inside in both rates
    assert on_edge(grid, (1e-3, 1e-2)) and on_edge(grid, (1e-2, 1e-1)) and on_edge(grid, (1e-4, 1.0))
    assert on_edge(((1e-5, None), (1e-4, None), (1e-3, None)), (1e-5, None))
    assert not on_edge(((1e-5, None), (1e-4, None), (1e-3, None)), (1e-4, None))
    p = fe.plan("smoke")  # two points a method: every choice is on the edge
    lora = p.points("lora")
    frame = _grid_frame(p, {("lora", 16, lora[0]): [0.2], ("lora", 16, lora[1]): [0.5]})
    s = summarise(EvidenceRuns("smoke", p, frame.reindex(columns=FRAME_COLUMNS), choose(p, frame)))
    assert s.at_edge == {"lora": [16]}


def test_missing_runs_are_costed_at_their_parts_measured_cost_or_else_scaled_by_steps():
    from compressible.experiments.fewshot_evidence.tables import part_cost_table

    p = dataclasses.replace(fe.plan("smoke"), seeds=(1, 2))
    runs = _runs(p, {("lora", 16): [(0.1, True), (0.2, True)]})  # Fig. 6 runs of 1 core-second each
    t1 = runs.runs.iloc[[0]].assign(part="table1", seed=7, cpu_time=50.0)
    frame = pd.concat([runs.runs, t1], ignore_index=True)
    missing = [("table1", "lora", 32, 2), ("table1", "lora", 32, 3), ("fig8", "lora", 16, 1), ("fig6", "full", 16, 1)]
    s = summarise(dataclasses.replace(runs, runs=frame, missing=missing))
    assert s.core_seconds_by_part == {"fig6": {"lora": 1.0}, "table1": {"lora": 50.0}}
    # two Table 1 runs at 50 s, one Fig. 8 run at 1 s x its steps over the plan's; the full width has no run to measure
    assert s.core_hours_left["lora"] == pytest.approx((2 * 50.0 + 1.0 * p.fig8.steps / p.steps) / 3600.0)
    assert s.core_hours_left["full"] is None
    table = part_cost_table(s)
    assert table[["part", "core-seconds per run", "runs per core-hour"]].values.tolist() == [
        ["Fig. 6", "1", "3600.0"], ["Table 1", "50", "72.0"]]
