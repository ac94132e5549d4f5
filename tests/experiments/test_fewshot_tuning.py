"""Tests of compressible.experiments.fewshot_tuning on hand-made tuning and precision runs."""

import numpy as np
import pandas as pd
import pytest

from compressible.experiments import fewshot_tuning as ft
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
    s = ft.summarise_tuning(_grid(GRID), TP, holdout=400)
    assert (s.lora_lr, s.deep_lr, s.deep_gamma) == (1e-4, 1e-2, 1e-1)
    assert [p.chosen for p in s.points] == [True, False, False, True]
    first = s.points[0]
    assert (first.holdout_mean, first.holdout_std) == pytest.approx((0.25, np.std([0.2, 0.3], ddof=1)))
    assert first.gamma is None and s.points[3].gamma == 0.1 and first.runs == 2 and first.trained == 2
    table = ft.tuning_table(s)
    assert table["learning rate"].tolist() == ["0.0001", "0.0003", "0.01, γ = 0.01", "0.01, γ = 0.1"]
    assert table["chosen"].tolist() == ["✓", "", "", "✓"]
    assert "LoRA lr 0.0001" in ft.tuning_text(s) and "γ = 0.1" in ft.tuning_text(s)


def test_tuning_plan_gives_every_method_the_same_budget():
    with pytest.raises(ValueError, match="LoRA 3 grid points and compressed Deep LoRA 2"):
        ft.TuningPlan(n=(16,), seeds=(0,), steps=2, lora=(1e-4, 3e-4, 1e-3), compressed=((1e-2, 1e-2), (1e-2, 1e-1)))
    with pytest.raises(ValueError, match=r"\(inner lr, gamma\) pairs, got \(0.01,\)"):
        ft.TuningPlan(n=(16,), seeds=(0,), steps=2, lora=(1e-4,), compressed=((1e-2,),))
    with pytest.raises(ValueError, match="TuningPlan.seeds must not be empty"):
        ft.TuningPlan(n=(16,), seeds=(), steps=2, lora=(1e-4,), compressed=((1e-2, 1e-2),))


def _run(pearson: float, train_seconds: float, steps: int = 10, autocast: str = "bfloat16") -> dict:
    return {"metric": "pearson", "final": {"pearson": pearson}, "timings": {"train": train_seconds},
            "train_loss": [0.0] * steps, "autocast": autocast}


def test_precision_summary_against_the_seed_spread():
    fp32 = {0: _run(0.20, 4.0, autocast="off"), 1: _run(0.40, 4.0, autocast="off")}
    bf16 = {0: _run(0.21, 2.0), 1: _run(0.38, 2.0)}
    s = ft.summarise_precision(fp32, bf16, LORA, 16)
    assert s.mean_difference == pytest.approx((0.01 - 0.02) / 2) and s.max_abs_difference == pytest.approx(0.02)
    assert s.seed_std == pytest.approx(np.std([0.2, 0.4], ddof=1)) and s.within_noise and s.step_ratio == pytest.approx(2.0)
    assert s.autocast == "bfloat16" and "within the seed-to-seed noise" in ft.precision_text(s)
    far = ft.summarise_precision(fp32, {0: _run(0.9, 2.0), 1: _run(0.38, 2.0)}, LORA, 16)
    assert not far.within_noise and "more than the seed-to-seed noise" in ft.precision_text(far)
    with pytest.raises(ValueError, match=r"same >= 2 seeds in both precisions, got \[0, 1\] and \[0\]"):
        ft.summarise_precision(fp32, {0: bf16[0]}, LORA, 16)
    with pytest.raises(ValueError, match="needs >= 2 seeds"):
        ft.PrecisionPlan(n=16, seeds=(0,))


def test_training_table_counts_per_experiment():
    frame = pd.DataFrame([
        {"part": "fig6", "task": "stsb", "method": m, "n_train": 16, "rank": 8, "seed": s, "key": m, "final_train_loss": loss,
         "loss_baseline": 2.0, "trained": loss < 1.0}
        for m, losses in ((LORA, (0.1, 0.3)), (DEEP, (0.5, 1.9))) for s, loss in enumerate(losses)
    ])
    check = ft.training_check(frame)
    assert check.untrained == ["fig6 stsb Deep LoRA n=16 r=8 seed 1"]
    table = ft.training_table(check)
    assert table["trained"].tolist() == [2, 1] and table["final train loss (mean)"].tolist() == ["0.200", "1.200"]
    assert "1 of 4 runs did not train" in ft.training_text(check)


def _stored(losses_end: float, baseline: float, pearson: float, spectra: dict | None = None) -> dict:
    """A stored run whose first 10 training losses are 9 and last 10 ``losses_end``, judged against ``baseline``."""
    run = {"metric": "pearson", "final": {"pearson": pearson}, "train_loss": [9.0] * 10 + [losses_end] * 10,
           "loss_baseline": baseline, "trained": losses_end < 0.5 * baseline}
    if spectra is not None:
        run["spectra"] = {name: {"singular_values": values, "rank": 1} for name, values in spectra.items()}
    return run


def test_rank_one_modules_counts_updates_whose_second_singular_value_is_negligible():
    run = _stored(2.3, 2.3, 0.0, {"a": [3.0, 0.02, 0.0], "b": [3.0, 0.04], "c": [0.0, 0.0], "d": [0.5]})
    # a: 0.02 < 0.01 * 3; b: 0.04 is not; c: a zero update is not rank one; d: a single stored value is
    assert ft.rank_one_modules(run) == (2, 4)
    assert ft.rank_one_modules(_stored(2.3, 2.3, 0.0)) is None


DP = ft.DiagnosisPlan(n=256, seeds=(0, 1))


SLOW = ft.inner_rate_label(1e-3)


def _diagnosis(deep: tuple, whole: tuple, free: tuple, slow: tuple = (2.3, 2.3)) -> dict:
    """Fig. 6 LoRA (trained on both seeds) and compressed runs, and the three variants: final losses per seed."""
    def runs(losses):
        return {seed: _stored(loss, 2.3, 0.5 if loss < 1.0 else 0.0) for seed, loss in enumerate(losses)}
    return {LORA: runs((0.2, 0.2)), DEEP: runs(deep), ft.WHOLE_SAMPLE: runs(whole), ft.free_outer_label(1.0): runs(free),
            SLOW: runs(slow)}


def test_diagnosis_names_the_change_that_makes_every_stalled_seed_train():
    s = ft.summarise_diagnosis(_diagnosis(deep=(2.3, 0.8), whole=(0.5, 0.6), free=(2.2, 0.7)), DP)
    assert (s.trained(LORA), s.trained(DEEP), s.trained(ft.WHOLE_SAMPLE), s.trained("Deep LoRA, γ = 1")) == (2, 1, 2, 1)
    text = ft.diagnosis_text(s)
    assert "Every stalled seed (0) trained with *Deep LoRA, outer factors from the whole sample*" in text
    assert "the subspace the first batch gives the outer factors" in text and "γ = 1" not in text.split("trained with")[1]
    table = ft.diagnosis_table(s)
    assert table["seed 0: loss / baseline"].tolist() == ["0.20 / 2.30", "2.30 / 2.30", "0.50 / 2.30", "2.20 / 2.30",
                                                         "2.30 / 2.30"]
    assert table["trained"].tolist() == ["2 of 2", "1 of 2", "2 of 2", "1 of 2", "0 of 2"]


def test_diagnosis_says_when_neither_change_helps_and_when_nothing_stalled():
    neither = ft.diagnosis_text(ft.summarise_diagnosis(_diagnosis((2.3, 2.2), (2.3, 0.5), (2.1, 2.3)), DP))
    assert "No change made the stalled seed(s) 0, 1 pass the training check" in neither
    assert "*Deep LoRA, γ = 1*: outer factors that move too slowly" in neither and "stored no update spectra" in neither
    assert "collapse" not in neither  # these runs stored no probes
    both = ft.diagnosis_text(ft.summarise_diagnosis(_diagnosis((2.3, 0.5), (2.3, 0.5), (0.4, 0.5), (0.3, 0.2)), DP))
    assert "with *Deep LoRA, γ = 1* and with *Deep LoRA, inner rate 0.001*" in both
    assert "whole sample" not in both.split("Every stalled seed")[1]
    assert "an inner rate too large for batches that differ" in both
    none = ft.diagnosis_text(ft.summarise_diagnosis(_diagnosis((0.5, 0.5), (0.5, 0.5), (0.4, 0.5)), DP))
    assert "no stall to diagnose" in none


def test_diagnosis_bad_input():
    with pytest.raises(ValueError, match=r"compares with the Fig. 6 runs of \['LoRA'\]"):
        ft.summarise_diagnosis({DEEP: {}}, DP)
    with pytest.raises(ValueError, match="DiagnosisPlan.gamma must be a positive number or None, got 0"):
        ft.DiagnosisPlan(n=256, seeds=(0,), gamma=0)
    with pytest.raises(ValueError, match="DiagnosisPlan.seeds must not be empty"):
        ft.DiagnosisPlan(n=256, seeds=())
    with pytest.raises(ValueError, match="DiagnosisPlan.lr_factor must be a positive number or None, got -1"):
        ft.DiagnosisPlan(n=256, seeds=(0,), lr_factor=-1)
    with pytest.raises(ValueError, match="DiagnosisPlan.lr_factor=1 repeats the Fig. 6 runs"):
        ft.DiagnosisPlan(n=256, seeds=(0,), lr_factor=1)
    with pytest.raises(ValueError, match="DiagnosisPlan.whole_sample must be True or False, got 'no'"):
        ft.DiagnosisPlan(n=256, seeds=(0,), whole_sample="no")
    with pytest.raises(ValueError, match="DiagnosisPlan runs no variant"):
        ft.DiagnosisPlan(n=256, seeds=(0,), whole_sample=False, gamma=None, lr_factor=None)


def test_diagnosis_runs_only_the_variants_its_plan_names():
    from compressible.experiments.glue_runs import FEWSHOT_METHODS

    base = {"task": "stsb", "backbone": "tiny-random-bert"}
    labels = lambda dp: [e.label for e in ft.diagnosis_experiments(dp, FEWSHOT_METHODS["smoke"], base, 2)]  # noqa: E731
    assert labels(ft.DiagnosisPlan(n=32, seeds=(0,), longer_steps=3)) == [
        ft.WHOLE_SAMPLE, ft.free_outer_label(1.0), ft.inner_rate_label(1e-3), ft.longer_label(3)]
    assert labels(ft.DiagnosisPlan(n=32, seeds=(0,), whole_sample=False, gamma=None, lr_factor=None, longer_steps=3)) == [
        ft.longer_label(3)]


def test_diagnosis_reports_rank_one_updates_of_the_stalled_runs():
    curves = _diagnosis((2.3, 2.2), (2.3, 0.5), (2.1, 2.3))
    one, many = {"q": [2.0, 0.001], "k": [1.0, 0.0]}, {"q": [1.0, 0.9], "k": [1.0, 0.5]}
    for seed, run in curves[DEEP].items():
        run["spectra"] = {m: {"singular_values": v, "rank": 1} for m, v in one.items()}
    for seed, run in curves[LORA].items():
        run["spectra"] = {m: {"singular_values": v, "rank": 2} for m, v in many.items()}
    s = ft.summarise_diagnosis(curves, DP)
    assert s.rank_one_share(DEEP) == 1.0 and s.rank_one_share(LORA) == 0.0 and s.rank_one_share(ft.WHOLE_SAMPLE) is None
    text = ft.diagnosis_text(s)
    assert "100% of their weight updates are rank one (second singular value under 0.01 of the first), against 0% of LoRA's" in text
    assert "from 9.00 over the first 10 steps to 2.25 over the last 10, against 2.30" in text
    table = ft.diagnosis_table(s)
    assert table["rank-one updates"].tolist() == ["0 of 4", "4 of 4", "n/a", "n/a", "n/a"]
    # when LoRA's updates are rank one too, the spectra single out nothing
    for run in curves[LORA].values():
        run["spectra"] = curves[DEEP][0]["spectra"]
    assert "do not single out one cause" in ft.diagnosis_text(ft.summarise_diagnosis(curves, DP))


def _probed(run: dict, spreads: list[float], lr: float, gamma: float, saturated: float = 0.0) -> dict:
    """``run`` with probes of the given spreads (steps 0, 20, ...) and the rates it stored."""
    run["probes"] = [{"step": 20 * k, "spread": v, "saturated": saturated} for k, v in enumerate(spreads)]
    run["_config"] = {"lr": lr, "adapter": {"gamma": gamma}}
    return run


def test_diagnosis_finds_the_collapse_and_the_changes_that_avoid_it():
    """A stalled compressed run whose head input collapsed, and two changes that lower the outer factors' rate
    (gamma 0.1 -> 0.01, inner rate 1e-2 -> 1e-3) that keep it from collapsing without passing the check yet."""
    dp = ft.DiagnosisPlan(n=256, seeds=(0,), whole_sample=False, gamma=0.01, lr_factor=0.1)
    def run(loss, spreads, lr, gamma):
        return {0: _probed(_stored(loss, 2.3, 0.1), spreads, lr, gamma)}
    curves = {LORA: run(0.2, [0.1, 0.05, 0.2], 1e-4, 0.01), DEEP: run(2.4, [0.1, 0.0008, 0.0005], 1e-2, 0.1),
              ft.free_outer_label(0.01): run(1.9, [0.1, 0.012, 0.17], 1e-2, 0.01),
              ft.inner_rate_label(1e-3): run(2.2, [0.1, 0.09, 0.056], 1e-3, 0.1)}
    s = ft.summarise_diagnosis(curves, dp)
    assert ft.is_collapsed(0.1, 0.0099) and not ft.is_collapsed(0.1, 0.0101)
    assert ft.DiagnosisSummary.collapsed(s.runs[DEEP][0]) and not ft.DiagnosisSummary.collapsed(s.runs[LORA][0])
    assert s.runs[DEEP][0]["collapse_step"] == 20 and s.runs[ft.free_outer_label(0.01)][0]["collapse_step"] is None
    text = ft.diagnosis_text(s)
    assert "No change made the stalled seed(s) 0 pass the training check" in text
    assert "*Deep LoRA, γ = 0.01*: outer factors that move too fast (γ too large)" in text
    assert ("The stalled run *collapsed*: by step 20 the spread of the head's input over the first batch fell below "
            "0.1 of its start, and it ended at 0.005 of it (LoRA's, same seed: 2.000)") in text
    assert "none of the pooler's tanh units ended saturated, so the pooler did not block the gradient" in text
    assert ("*Deep LoRA, γ = 0.01* (head input at the end 1.700 of its start; final loss 1.90); *Deep LoRA, inner rate "
            "0.001* (head input at the end 0.560 of its start; final loss 2.20) kept seed 0 from collapsing "
            "and ended with a lower training loss than Fig. 6's run (2.40); each of these changes lowers the outer "
            "factors' Adam rate (γ times the inner rate) from 0.001 to 0.0001, though within 20 steps neither passed "
            "the training check. So the collapse comes from outer factors that move too fast, not from a broken method.") in text
    table = ft.diagnosis_table(s)
    assert table["head input spread, end / start"].tolist() == ["2.000", "0.005", "1.700", "0.560"]
    # a change that collapses too, or ends with a higher loss, keeps nothing from collapsing
    curves[ft.free_outer_label(0.01)] = run(1.9, [0.1, 0.001, 0.001], 1e-2, 0.01)
    curves[ft.inner_rate_label(1e-3)] = run(2.5, [0.1, 0.09, 0.056], 1e-3, 0.1)
    text = ft.diagnosis_text(ft.summarise_diagnosis(curves, dp))
    assert "No change kept these seeds from collapsing." in text and "So the collapse comes from" not in text
    # one change that keeps it from collapsing names its own cause
    curves[ft.inner_rate_label(1e-3)] = run(2.2, [0.1, 0.09, 0.056], 1e-3, 0.1)
    text = ft.diagnosis_text(ft.summarise_diagnosis(curves, dp))
    assert ("it lowers the outer factors' Adam rate (γ times the inner rate) from 0.001 to 0.0001, though within 20 steps "
            "it did not pass the training check. So the collapse comes from an inner rate too large for batches that "
            "differ from step to step") in text


def test_diagnosis_without_a_variant_says_so():
    """A tuning that chose the plan's only variant leaves the Fig. 6 runs alone to report."""
    curves = {LORA: {0: _stored(0.2, 2.3, 0.7)}, DEEP: {0: _stored(2.3, 2.3, 0.0)}}
    s = ft.summarise_diagnosis(curves, ft.DiagnosisPlan(n=256, seeds=(0,), whole_sample=False, gamma=0.01, lr_factor=None))
    assert "No change was run at seed(s) 0 (the plan's only variant would have repeated the Fig. 6 runs" in ft.diagnosis_text(s)
    assert list(ft.diagnosis_table(s)[""]) == [LORA, DEEP]
