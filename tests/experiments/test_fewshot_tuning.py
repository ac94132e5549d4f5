"""Tests of compressible.experiments.fewshot_tuning: the grid, the choice and the rates it hands on."""

import numpy as np
import pandas as pd
import pytest

from compressible.experiments import fewshot_tuning as ft
from compressible.experiments.fewshot_tuning.summary import rates_of
from compressible.experiments.glue_stats import DEEP, LORA

TP = ft.TuningPlan(n=(16,), seeds=(0, 1), steps=2, lora=(1e-4, 3e-4), compressed=((1e-2, 1e-2), (1e-2, 1e-1)))


def _grid(holdout: dict, validation: dict | None = None) -> pd.DataFrame:
    """``holdout[(method, lr, gamma)] = [seed 0, seed 1]`` as a tuning frame."""
    rows = []
    for (method, lr, gamma), values in holdout.items():
        for seed, value in enumerate(values):
            v = (validation or {}).get((method, lr, gamma), [0.0, 0.0])[seed]
            rows.append({"method": method, "lr": lr, "gamma": gamma, "n": 16, "seed": seed, "holdout": value,
                         "validation": v, "trained": True})
    return pd.DataFrame(rows)


GRID = {
    (LORA, 1e-4, None): [0.20, 0.30],
    (LORA, 3e-4, None): [0.10, 0.20],
    (DEEP, 1e-2, 1e-2): [0.05, 0.05],
    (DEEP, 1e-2, 1e-1): [0.30, 0.10],
}


def test_choose_takes_the_best_mean_held_out_score_and_ignores_validation():
    validation = {(LORA, 3e-4, None): [0.9, 0.9], (DEEP, 1e-2, 1e-2): [0.9, 0.9]}  # would pick the others
    assert ft.choose(_grid(GRID, validation)) == {LORA: (1e-4, None), DEEP: (1e-2, 1e-1)}


def test_choose_ties_go_to_the_earlier_point_and_undefined_scores_rank_last():
    tie = dict(GRID)
    tie[(LORA, 3e-4, None)] = [0.30, 0.20]  # same mean as 1e-4
    tie[(DEEP, 1e-2, 1e-1)] = [float("nan"), float("nan")]
    assert ft.choose(_grid(tie)) == {LORA: (1e-4, None), DEEP: (1e-2, 1e-2)}


def test_summarise_tuning():
    from compressible.experiments.fewshot_tuning.summary import summarise_tuning

    s = summarise_tuning(_grid(GRID), TP, holdout=400)
    assert (s.lora_lr, s.deep_lr, s.deep_gamma) == (1e-4, 1e-2, 1e-1)
    assert s.rates == ft.Rates(default={"lora": {"lr": 1e-4}, "compressed": {"lr": 1e-2, "gamma": 0.1}})
    assert [p.chosen for p in s.points] == [True, False, False, True]
    first = s.points[0]
    assert (first.holdout_mean, first.holdout_std) == pytest.approx((0.25, np.std([0.2, 0.3], ddof=1)))
    assert first.gamma is None and s.points[3].gamma == 0.1 and first.runs == 2 and first.trained == 2
    # the spread of each method's held-out scores over its grid, and the chosen point's
    assert (s.ranges[LORA].low, s.ranges[LORA].high, s.ranges[LORA].chosen) == pytest.approx((0.15, 0.25, 0.25))
    assert (s.ranges[DEEP].low, s.ranges[DEEP].high, s.ranges[DEEP].points) == (pytest.approx(0.05), pytest.approx(0.2), 2)
    table = ft.tuning_table(s)
    assert table["learning rate"].tolist() == ["0.0001", "0.0003", "0.01, γ = 0.01", "0.01, γ = 0.1"]
    assert table["chosen"].tolist() == ["✓", "", "", "✓"]
    assert ft.plot_sensitivity(s) is not None


def test_tuning_plan_gives_every_method_the_same_budget():
    with pytest.raises(ValueError, match="LoRA 3 grid points and compressed Deep LoRA 2"):
        ft.TuningPlan(n=(16,), seeds=(0,), steps=2, lora=(1e-4, 3e-4, 1e-3), compressed=((1e-2, 1e-2), (1e-2, 1e-1)))
    with pytest.raises(ValueError, match=r"\(inner lr, gamma\) pairs, got \(0.01,\)"):
        ft.TuningPlan(n=(16,), seeds=(0,), steps=2, lora=(1e-4,), compressed=((1e-2,),))
    with pytest.raises(ValueError, match="TuningPlan.seeds must not be empty"):
        ft.TuningPlan(n=(16,), seeds=(), steps=2, lora=(1e-4,), compressed=((1e-2, 1e-2),))


def test_plans_and_the_grid():
    """paper: no grid (the paper's rates); ci and smoke: the same number of points per method at n = 16, every run
    holding the tuning examples out and scored on them."""
    assert ft.plan("paper").grid is None and ft.grid_runs(ft.plan("paper")) == []
    ci = ft.plan("ci")
    grid = ft.grid_runs(ci)
    assert [(e.part, e.label) for e in grid] == [("tuning", LORA)] * 2 + [("tuning", DEEP)] * 2
    assert {(e.config.lr, e.config.adapter.gamma) for e in grid if e.label == DEEP} == {(1e-2, 1e-2), (1e-2, 1e-1)}
    assert all(e.config.holdout == 400 and e.config.holdout_eval and e.seeds == (0, 1) for e in grid)
    import dataclasses

    with pytest.raises(ValueError, match="needs methods.holdout >= 1"):
        dataclasses.replace(ci, methods=dataclasses.replace(ci.methods, holdout=0))


def test_rates_per_method_and_per_n():
    rates = ft.Rates(default={"lora": {"lr": 1e-4}, "compressed": {"lr": 1e-2, "gamma": 0.1}},
                     by_n={64: {"lora": {"lr": 3e-4}}})
    methods = ft.plan("ci").methods
    assert (rates.methods(methods, 16).lora_lr, rates.methods(methods, 64).lora_lr) == (1e-4, 3e-4)
    assert rates.methods(methods, 64).deep_gamma == 0.1  # the default where n has no rate of its own
    assert rates_of({LORA: (1e-4, None), DEEP: (1e-2, 0.1)}) == ft.Rates(
        default={"lora": {"lr": 1e-4}, "compressed": {"lr": 1e-2, "gamma": 0.1}})
    with pytest.raises(ValueError, match="give 'lora' and 'compressed'"):
        ft.Rates(default={"lora": {"lr": 1e-4}})
    with pytest.raises(ValueError, match=r"by_n\[16\] has methods \['full'\]"):
        ft.Rates(default=rates.default, by_n={16: {"full": {"lr": 1e-4}}})


def test_summarise_and_chosen_rates_from_a_store(tmp_path):
    """The chapter's summary from its grid, and the rates a store holding the grid gives the next chapter."""
    from compressible.store import ResultStore

    p = ft.plan("smoke")
    store = ResultStore(tmp_path)
    assert ft.chosen_rates(p, store) is None  # nothing stored yet
    for e in ft.grid_runs(p):  # a stored grid in which the second point of each method wins
        for seed in e.seeds:
            second = e.config.lr == 1e-3 if e.label == LORA else e.config.adapter.gamma == 1e-1
            store.save(e.config, seed, {"metric": "pearson", "holdout": {"pearson": 0.3 if second else 0.1},
                                        "final": {"pearson": 0.0}, "trained": True})
    rates = ft.chosen_rates(p, store)
    assert rates.at(16) == {"lora": ft.Rate(lr=1e-3), "compressed": ft.Rate(lr=1e-2, gamma=0.1)}
    results = ft.TuningResults("smoke", p, ft.tuning_frame(ft.grid_runs(p), store))
    s = ft.summarise(results)
    assert s.scale == "smoke" and s.tuning.rates == rates and s.backbone == p.backbone
    assert ft.summarise(ft.TuningResults("paper", ft.plan("paper"), pd.DataFrame())).tuning is None
