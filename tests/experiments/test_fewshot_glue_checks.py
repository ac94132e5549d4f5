"""Tests of the checks behind the Few-shot GLUE comparisons (compressible.experiments.fewshot_glue's checks,
probes and diagnosis) on hand-made runs: what they decide, as data."""

import numpy as np
import pandas as pd
import pytest

from compressible.experiments.fewshot_glue import checks as ck
from compressible.experiments.fewshot_glue import diagnosis as dg
from compressible.experiments.fewshot_glue import probes, tables
from compressible.experiments.glue_stats import DEEP, LORA


def _run(pearson: float, train_seconds: float, steps: int = 10, autocast: str = "bfloat16") -> dict:
    return {"metric": "pearson", "final": {"pearson": pearson}, "timings": {"train": train_seconds},
            "train_loss": [0.0] * steps, "autocast": autocast}


def test_precision_summary_against_the_seed_spread():
    fp32 = {0: _run(0.20, 4.0, autocast="off"), 1: _run(0.40, 4.0, autocast="off")}
    bf16 = {0: _run(0.21, 2.0), 1: _run(0.38, 2.0)}
    s = ck.summarise_precision(fp32, bf16, LORA, 16)
    assert s.mean_difference == pytest.approx((0.01 - 0.02) / 2) and s.max_abs_difference == pytest.approx(0.02)
    assert s.seed_std == pytest.approx(np.std([0.2, 0.4], ddof=1)) and s.within_noise and s.step_ratio == pytest.approx(2.0)
    assert s.autocast == "bfloat16"
    far = ck.summarise_precision(fp32, {0: _run(0.9, 2.0), 1: _run(0.38, 2.0)}, LORA, 16)
    assert not far.within_noise
    assert tables.precision_table(s)["bf16 − float32"].tolist() == ["+0.010", "-0.020", "mean -0.005"]
    with pytest.raises(ValueError, match=r"same >= 2 seeds in both precisions, got \[0, 1\] and \[0\]"):
        ck.summarise_precision(fp32, {0: bf16[0]}, LORA, 16)
    with pytest.raises(ValueError, match="needs >= 2 seeds"):
        ck.PrecisionPlan(n=16, seeds=(0,))


def test_training_table_counts_per_experiment():
    frame = pd.DataFrame([
        {"part": "fig6", "task": "stsb", "method": m, "n_train": 16, "rank": 8, "seed": s, "key": m, "final_train_loss": loss,
         "loss_baseline": 2.0, "trained": loss < 1.0}
        for m, losses in ((LORA, (0.1, 0.3)), (DEEP, (0.5, 1.9))) for s, loss in enumerate(losses)
    ])
    check = ck.training_check(frame)
    assert check.untrained == ["fig6 stsb Deep LoRA n=16 r=8 seed 1"]
    table = tables.training_table(check)
    assert table["trained"].tolist() == [2, 1] and table["final train loss (mean)"].tolist() == ["0.200", "1.200"]
    assert len(check.runs) == 4 and check.runs[3].final_train_loss == 1.9 and check.fraction == 0.5


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
    assert probes.rank_one_modules(run) == (2, 4)
    assert probes.rank_one_modules(_stored(2.3, 2.3, 0.0)) is None


DP = dg.DiagnosisPlan(n=256, seeds=(0, 1))


SLOW = dg.inner_rate_label(1e-3)


def _diagnosis(deep: tuple, whole: tuple, free: tuple, slow: tuple = (2.3, 2.3)) -> dict:
    """Fig. 6 LoRA (trained on both seeds) and compressed runs, and the three variants: final losses per seed."""
    def runs(losses):
        return {seed: _stored(loss, 2.3, 0.5 if loss < 1.0 else 0.0) for seed, loss in enumerate(losses)}
    return {LORA: runs((0.2, 0.2)), DEEP: runs(deep), dg.WHOLE_SAMPLE: runs(whole), dg.free_outer_label(1.0): runs(free),
            SLOW: runs(slow)}


def test_diagnosis_names_the_change_that_makes_every_stalled_seed_train():
    s = dg.summarise_diagnosis(_diagnosis(deep=(2.3, 0.8), whole=(0.5, 0.6), free=(2.2, 0.7)), DP)
    assert (s.trained(LORA), s.trained(DEEP), s.trained(dg.WHOLE_SAMPLE), s.trained("Deep LoRA, γ = 1")) == (2, 1, 2, 1)
    assert (s.outcome, s.stalled, s.fixes) == (dg.DiagnosisOutcome.FIXED, [0], [dg.WHOLE_SAMPLE])
    assert s.causes == {dg.WHOLE_SAMPLE: dg.Cause.FIRST_BATCH, "Deep LoRA, γ = 1": dg.Cause.OUTER_TOO_SLOW,
                        SLOW: dg.Cause.INNER_RATE}
    table = tables.diagnosis_table(s)
    assert table["seed 0: loss / baseline"].tolist() == ["0.20 / 2.30", "2.30 / 2.30", "0.50 / 2.30", "2.20 / 2.30",
                                                         "2.30 / 2.30"]
    assert table["trained"].tolist() == ["2 of 2", "1 of 2", "2 of 2", "1 of 2", "0 of 2"]


def test_diagnosis_says_when_neither_change_helps_and_when_nothing_stalled():
    neither = dg.summarise_diagnosis(_diagnosis((2.3, 2.2), (2.3, 0.5), (2.1, 2.3)), DP)
    assert (neither.outcome, neither.stalled, neither.fixes) == (dg.DiagnosisOutcome.NOT_FIXED, [0, 1], [])
    assert neither.causes["Deep LoRA, γ = 1"] == dg.Cause.OUTER_TOO_SLOW
    assert neither.rank_one is None and neither.collapse is None  # these runs stored no spectra and no probes
    both = dg.summarise_diagnosis(_diagnosis((2.3, 0.5), (2.3, 0.5), (0.4, 0.5), (0.3, 0.2)), DP)
    assert (both.outcome, both.fixes) == (dg.DiagnosisOutcome.FIXED, ["Deep LoRA, γ = 1", SLOW])
    assert both.causes[SLOW] == dg.Cause.INNER_RATE
    none = dg.summarise_diagnosis(_diagnosis((0.5, 0.5), (0.5, 0.5), (0.4, 0.5)), DP)
    assert (none.outcome, none.stalled, none.fixes, none.rank_one) == (dg.DiagnosisOutcome.NO_STALL, [], [], None)


def test_diagnosis_bad_input():
    with pytest.raises(ValueError, match=r"compares with the Fig. 6 runs of \['LoRA'\]"):
        dg.summarise_diagnosis({DEEP: {}}, DP)
    with pytest.raises(ValueError, match="DiagnosisPlan.gamma must be a positive number or None, got 0"):
        dg.DiagnosisPlan(n=256, seeds=(0,), gamma=0)
    with pytest.raises(ValueError, match="DiagnosisPlan.seeds must not be empty"):
        dg.DiagnosisPlan(n=256, seeds=())
    with pytest.raises(ValueError, match="DiagnosisPlan.lr_factor must be a positive number or None, got -1"):
        dg.DiagnosisPlan(n=256, seeds=(0,), lr_factor=-1)
    with pytest.raises(ValueError, match="DiagnosisPlan.lr_factor=1 repeats the Fig. 6 runs"):
        dg.DiagnosisPlan(n=256, seeds=(0,), lr_factor=1)
    with pytest.raises(ValueError, match="DiagnosisPlan.whole_sample must be True or False, got 'no'"):
        dg.DiagnosisPlan(n=256, seeds=(0,), whole_sample="no")
    with pytest.raises(ValueError, match="DiagnosisPlan runs no variant"):
        dg.DiagnosisPlan(n=256, seeds=(0,), whole_sample=False, gamma=None, lr_factor=None)


def test_diagnosis_runs_only_the_variants_its_plan_names():
    from compressible.experiments.glue_methods import FEWSHOT_METHODS

    base = {"task": "stsb", "backbone": "tiny-random-bert"}
    labels = lambda dp: [e.label for e in dg.diagnosis_experiments(dp, FEWSHOT_METHODS["smoke"], base, 2)]  # noqa: E731
    assert labels(dg.DiagnosisPlan(n=32, seeds=(0,), longer_steps=3)) == [
        dg.WHOLE_SAMPLE, dg.free_outer_label(1.0), dg.inner_rate_label(1e-3), dg.longer_label(3)]
    assert labels(dg.DiagnosisPlan(n=32, seeds=(0,), whole_sample=False, gamma=None, lr_factor=None, longer_steps=3)) == [
        dg.longer_label(3)]


def test_diagnosis_reports_rank_one_updates_of_the_stalled_runs():
    curves = _diagnosis((2.3, 2.2), (2.3, 0.5), (2.1, 2.3))
    one, many = {"q": [2.0, 0.001], "k": [1.0, 0.0]}, {"q": [1.0, 0.9], "k": [1.0, 0.5]}
    for seed, run in curves[DEEP].items():
        run["spectra"] = {m: {"singular_values": v, "rank": 1} for m, v in one.items()}
    for seed, run in curves[LORA].items():
        run["spectra"] = {m: {"singular_values": v, "rank": 2} for m, v in many.items()}
    s = dg.summarise_diagnosis(curves, DP)
    assert s.rank_one_share(DEEP) == 1.0 and s.rank_one_share(LORA) == 0.0 and s.rank_one_share(dg.WHOLE_SAMPLE) is None
    found = s.rank_one
    assert (found.deep_share, found.lora_share, found.label_mean) == (1.0, 0.0, True)
    assert (found.first_loss, found.last_loss, found.baseline) == pytest.approx((9.0, 2.25, 2.3))
    table = tables.diagnosis_table(s)
    assert table["rank-one updates"].tolist() == ["0 of 4", "4 of 4", "n/a", "n/a", "n/a"]
    # when LoRA's updates are rank one too, the spectra single out nothing
    for run in curves[LORA].values():
        run["spectra"] = curves[DEEP][0]["spectra"]
    assert not dg.summarise_diagnosis(curves, DP).rank_one.label_mean


def _probed(run: dict, spreads: list[float], lr: float, gamma: float, saturated: float = 0.0) -> dict:
    """``run`` with probes of the given spreads (steps 0, 20, ...) and the rates it stored."""
    run["probes"] = [{"step": 20 * k, "spread": v, "saturated": saturated} for k, v in enumerate(spreads)]
    run["_config"] = {"lr": lr, "adapter": {"gamma": gamma}}
    return run


def test_diagnosis_finds_the_collapse_and_the_changes_that_avoid_it():
    """A stalled compressed run whose head input collapsed, and two changes that lower the outer factors' rate
    (gamma 0.1 -> 0.01, inner rate 1e-2 -> 1e-3) that keep it from collapsing without passing the check yet."""
    dp = dg.DiagnosisPlan(n=256, seeds=(0,), whole_sample=False, gamma=0.01, lr_factor=0.1)
    def run(loss, spreads, lr, gamma):
        return {0: _probed(_stored(loss, 2.3, 0.1), spreads, lr, gamma)}
    curves = {LORA: run(0.2, [0.1, 0.05, 0.2], 1e-4, 0.01), DEEP: run(2.4, [0.1, 0.0008, 0.0005], 1e-2, 0.1),
              dg.free_outer_label(0.01): run(1.9, [0.1, 0.012, 0.17], 1e-2, 0.01),
              dg.inner_rate_label(1e-3): run(2.2, [0.1, 0.09, 0.056], 1e-3, 0.1)}
    s = dg.summarise_diagnosis(curves, dp)
    assert probes.is_collapsed(0.1, 0.0099) and not probes.is_collapsed(0.1, 0.0101)
    assert s.runs[DEEP][0].collapsed and not s.runs[LORA][0].collapsed
    assert s.runs[DEEP][0].collapse_step == 20 and s.runs[dg.free_outer_label(0.01)][0].collapse_step is None
    assert (s.outcome, s.stalled) == (dg.DiagnosisOutcome.NOT_FIXED, [0])
    assert s.causes[dg.free_outer_label(0.01)] == dg.Cause.OUTER_TOO_FAST  # γ 0.1 -> 0.01: lower
    c = s.collapse
    assert (c.step, c.ratios, c.lora_ratios) == (20, pytest.approx([0.005]), pytest.approx([2.0]))
    assert (c.max_saturated, c.pooler_clear) == (0.0, True)
    kept = [dg.free_outer_label(0.01), dg.inner_rate_label(1e-3)]
    assert c.kept == kept and [c.kept_ratios[k][0] for k in kept] == pytest.approx([1.7, 0.56])
    assert [c.kept_losses[k][0] for k in kept] == pytest.approx([1.9, 2.2]) and c.baseline_losses == pytest.approx([2.4])
    # both lower the outer factors' Adam rate (γ x inner rate) from 1e-3 to 1e-4: the collapse comes from there
    assert (c.outer_rate_from, c.outer_rate_to) == pytest.approx((1e-3, 1e-4)) and c.kept_steps == 20
    assert c.causes == [dg.Cause.OUTER_TOO_FAST]
    table = tables.diagnosis_table(s)
    assert table["head input spread, end / start"].tolist() == ["2.000", "0.005", "1.700", "0.560"]
    # a change that collapses too, or ends with a higher loss, keeps nothing from collapsing
    curves[dg.free_outer_label(0.01)] = run(1.9, [0.1, 0.001, 0.001], 1e-2, 0.01)
    curves[dg.inner_rate_label(1e-3)] = run(2.5, [0.1, 0.09, 0.056], 1e-3, 0.1)
    c = dg.summarise_diagnosis(curves, dp).collapse
    assert c.kept == [] and c.causes == [] and c.kept_steps is None
    # one change that keeps it from collapsing names its own cause
    curves[dg.inner_rate_label(1e-3)] = run(2.2, [0.1, 0.09, 0.056], 1e-3, 0.1)
    c = dg.summarise_diagnosis(curves, dp).collapse
    assert c.kept == [dg.inner_rate_label(1e-3)] and c.causes == [dg.Cause.INNER_RATE]
    assert (c.outer_rate_from, c.outer_rate_to) == pytest.approx((1e-3, 1e-4))


def test_diagnosis_without_a_variant_says_so():
    """A tuning that chose the plan's only variant leaves the Fig. 6 runs alone to report."""
    curves = {LORA: {0: _stored(0.2, 2.3, 0.7)}, DEEP: {0: _stored(2.3, 2.3, 0.0)}}
    s = dg.summarise_diagnosis(curves, dg.DiagnosisPlan(n=256, seeds=(0,), whole_sample=False, gamma=0.01, lr_factor=None))
    assert (s.outcome, s.stalled, s.variants, s.collapse) == (dg.DiagnosisOutcome.NO_VARIANT, [0], [], None)
    assert list(tables.diagnosis_table(s)[""]) == [LORA, DEEP]
