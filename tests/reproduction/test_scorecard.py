"""Tests of compressible.reproduction.scorecard: claims read typed summaries by attribute, every
judgement comes from the verdict rules, and gaps are never passed."""

from types import SimpleNamespace as ns

import pytest

from compressible.experiments.compression import CompressionSummary
from compressible.experiments.invariant_subspaces import InvariantSubspacesSummary, rounding_tolerance
from compressible.reproduction.claims import CLAIMS
from compressible.reproduction.scorecard import judge, scorecard
from compressible.summaries import save_summary


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSIBLE_RESULTS", str(tmp_path))


CLAIM = {c.key: c for c in CLAIMS}


def row(card, key):
    return card.iloc[[c.key for c in CLAIMS].index(key)]


def theorem(scale="ci", gap=1e-15):
    tolerance = rounding_tolerance(steps=50, depth=3, d=30, conditioning=1.5)
    return InvariantSubspacesSummary(scale=scale, d=30, rank=3, depth=3, steps=50, max_rel_gap=gap,
                                     max_subspace_drift=2e-13, min_multiplicity=24, required_multiplicity=24, checks=[],
                                     conditioning=1.5, rounding_tolerance=tolerance,
                                     holds_to_rounding=gap <= tolerance and 2e-13 <= tolerance)


def compression(scale="ci", ratio=0.1, speedup=2.5):
    return CompressionSummary(scale=scale, d=200, true_rank=10, depth=3, steps=100, params_original=120000,
                              params_compressed=1200, params_original_paper=3_000_000, params_compressed_paper=1200,
                              prop22_bound=1e-4, prop22_max_distance=ratio * 1e-4, prop22_max_ratio=ratio,
                              speedup_fig4=speedup, final_loss_original=1e-9, final_loss_compressed=1e-9)


def test_everything_not_run_without_summaries():
    card = scorecard("ci")
    assert len(card) == len(CLAIMS) and set(card.verdict) == {"not run at this scale"}
    assert row(card, "thm21").why == "the invariant_subspaces chapter did not run at this scale"
    with pytest.raises(ValueError, match="scale must be one of"):
        scorecard("huge")


def test_saved_summaries_are_judged_and_other_scales_are_not_run():
    save_summary(theorem())
    save_summary(compression(ratio=1.5))
    card = scorecard("ci")
    assert row(card, "thm21").verdict == "reproduced" and "multiplicity 24 ≥ 24" in row(card, "thm21").ours
    assert row(card, "prop22").verdict == "not reproduced" and row(card, "prop22").why == "distance within the bound: fails"
    assert row(card, "params").verdict == "reproduced"
    assert row(card, "fig4").verdict == "trend reproduced"  # faster, at d = 200 < 1000
    assert row(card, "fig4").scale == "ci"
    assert set(scorecard("paper").verdict) == {"not run at this scale"}
    save_summary(theorem(gap=1e-3))
    assert row(scorecard("ci"), "thm21").verdict == "not reproduced"


def test_a_summary_stored_in_an_older_format_is_named_not_trusted(tmp_path):
    path = tmp_path / "summaries" / "compression.json"
    path.parent.mkdir()
    path.write_text('{"chapter": "compression", "scale": "ci", "speedup_fig4": 2.0}')
    r = row(scorecard("ci"), "fig4")
    assert r.verdict == "not run at this scale"
    assert r.why.startswith("the stored compression summary does not fit CompressionSummary (") and "rerun the chapter" in r.why


def test_app_d1_lower_bound_below_one_is_inconclusive():
    """The bug of issue 10 item 7: a ratio of >= 0.9x was judged 'trend reproduced'."""
    s = ns(scale="ci", d1=ns(speedup=0.9, ratio_is_lower_bound=True, d=200))
    ours, verdict, why = judge(CLAIM["d1"], s)
    assert ours.startswith("≥ 0.9× wall time") and verdict == "inconclusive" and "lower bound" in why
    s = ns(scale="ci", d1=ns(speedup=1.6, ratio_is_lower_bound=True, d=200))
    assert judge(CLAIM["d1"], s)[1] == "trend reproduced"
    s = ns(scale="ci", d1=ns(speedup=0.9, ratio_is_lower_bound=False, d=200))
    assert judge(CLAIM["d1"], s)[1] == "not reproduced"


def test_quantitative_speed_claim_needs_the_paper_scale_and_a_missing_value_is_named():
    race = dict(d=1000, error_original=1e-3, error_compressed=1e-3, error_gamma0=1e-1)
    assert judge(CLAIM["fig5"], ns(scale="paper", fig5=ns(speedup=6.0, **race)))[1] == "reproduced"
    assert judge(CLAIM["fig5"], ns(scale="ci", fig5=ns(speedup=6.0, **dict(race, d=200))))[1] == "trend reproduced"
    assert judge(CLAIM["fig5"], ns(scale="ci", fig5=ns(speedup=None, **race)))[1] == "not reproduced"
    assert judge(CLAIM["gamma"], ns(scale="ci", fig5=ns(speedup=6.0, **race)))[1] == "reproduced"
    ours, verdict, why = judge(CLAIM["gamma"], ns(scale="ci", fig5=ns(speedup=6.0, **dict(race, error_gamma0=None))))
    assert verdict == "not run at this scale" and why == "the error of the compression with γ = 0 was not measured"


def paired(*differences):
    diffs = dict(enumerate(differences))
    mean = sum(differences) / len(differences)
    return ns(differences=diffs, gain=mean, seeds=len(differences))


def glue(at_chance=False, fig6=None, fig8=None, table1_diffs=(0.9, 1.0, 1.1), learned=("stsb",), untrained=None,
         untrained6=None, scaled=None, scaled_drop=None):
    fig6 = fig6 or {16: paired(0.10, 0.12, 0.08), 64: paired(0.05, 0.04, 0.06), 256: paired(0.02, 0.025, 0.015)}
    fig8 = fig8 or {8: paired(0.0, 0.01, -0.01), 32: paired(0.2, 0.3, 0.25)}
    table1 = ns(tasks=["stsb", "rte"], lora_average=50.0, deep_average=51.0, average_gain=1.0,
                average=paired(*table1_diffs), tasks_above_chance=list(learned))
    return ns(scale="ci", table1=table1,
              fig6=ns(by_n=fig6, full_by_n={}, at_chance=at_chance, seeds=3, untrained=untrained6 or {}),
              fig8=ns(ranks=sorted(fig8), by_rank=fig8, at_chance=at_chance, seeds=3, untrained=untrained or {},
                      lora_drop_smallest_to_largest_r=0.3, deep_drop_smallest_to_largest_r=0.05,
                      scaled_by_rank=scaled or {}, scaled_drop_smallest_to_largest_r=scaled_drop))


def test_fig8_prints_the_rate_scaled_runs_beside_the_verdict_without_judging_them():
    plain = judge(CLAIM["fig8"], glue())
    assert "not judged" not in plain[0]
    scaled = judge(CLAIM["fig8"], glue(scaled={8: paired(0.1), 32: paired(0.2)}, scaled_drop=-0.125))
    assert scaled[0] == plain[0] + "; compressed Deep LoRA at an inner rate ∝ 1/r (not judged): drop -0.125"
    assert scaled[1:] == plain[1:]  # the verdict and its reason are the one-rate runs'
    assert judge(CLAIM["fig8"], glue(scaled={8: paired(0.1)}, scaled_drop=None))[0] == plain[0]


def test_glue_claims_read_paired_intervals():
    s = glue()
    ours, verdict, why = judge(CLAIM["fig6"], s)
    assert verdict == "trend reproduced" and ours == "n = 16: +0.100, n = 64: +0.050, n = 256: +0.020"
    assert "largest gain at n = 16: mean gain largest at n = 16: holds, at a reduced scale" in why
    assert judge(CLAIM["table1"], s)[1] == "trend reproduced"
    # Fig. 8 per seed: (Deep − LoRA at r = 32) − (Deep − LoRA at r = 8) = 0.2, 0.29, 0.26 > 0
    assert judge(CLAIM["fig8"], s)[1] == "trend reproduced"


def test_an_interval_spanning_zero_at_one_n_makes_fig6_inconclusive():
    s = glue(fig6={16: paired(0.10, 0.12, 0.08), 64: paired(0.05, -0.06, 0.04)})
    ours, verdict, why = judge(CLAIM["fig6"], s)
    assert verdict == "inconclusive" and "n = 64: 95 % interval" in why and "spans 0" in why
    s = glue(fig6={16: paired(-0.10, -0.12, -0.08), 64: paired(0.05, 0.06, 0.04)})
    assert judge(CLAIM["fig6"], s)[1] == "contradicted"


def test_fig6_at_the_paper_scale_needs_the_largest_gain_at_the_smallest_n():
    s = glue(fig6={16: paired(0.10, 0.12, 0.08), 64: paired(0.05, 0.04, 0.06)})
    s.scale = "paper"
    assert judge(CLAIM["fig6"], s)[1] == "reproduced"
    s.fig6.by_n[64] = paired(0.20, 0.21, 0.19)
    ours, verdict, why = judge(CLAIM["fig6"], s)
    assert verdict == "trend reproduced" and "mean gain largest at n = 16: only the direction holds" in why


def test_runs_at_chance_decide_nothing():
    s = glue(at_chance=True, learned=())
    for key in ("fig6", "fig8", "table1"):
        assert judge(CLAIM[key], s)[1] == "at chance", key
    ours, _, why = judge(CLAIM["table1"], s)
    assert "0 of 2 tasks above chance" in ours and "chance" in why


def test_fig8_needs_a_seed_at_both_ranks():
    s = glue(fig8={8: ns(differences={0: 0.1}), 32: ns(differences={1: 0.2})})
    assert judge(CLAIM["fig8"], s)[1:] == ("not run at this scale", "a seed run at both the smallest and largest r was not measured")


def test_fig6_runs_that_did_not_train_are_not_compared():
    # every Deep LoRA seed at n = 256 failed: that part did not train, and it is the weakest part
    ours, verdict, why = judge(CLAIM["fig6"], glue(untrained6={"Deep LoRA": {256: [0, 1, 2]}}))
    assert verdict == "did not train" and "n = 256: Deep LoRA at n = 256 (3 of 3 seeds)" in why
    assert "n = 256: did not train" in ours
    # a contradicted n stays contradicted, whatever else did not train
    s = glue(fig6={16: paired(-0.10, -0.12, -0.08), 64: paired(0.05, 0.06, 0.04)}, untrained6={"LoRA": {64: [0, 1, 2]}})
    assert judge(CLAIM["fig6"], s)[1] == "contradicted"
    # one failed seed at n = 64: judged over the other two (0.04, 0.06), whose t interval (1 degree of freedom)
    # spans 0, and the mean says so
    ours, verdict, why = judge(CLAIM["fig6"], glue(untrained6={"Deep LoRA": {64: [0]}}))
    assert verdict == "inconclusive" and "n = 64: +0.050 over the 2 seed(s) where both trained" in ours
    assert "n = 64: 95 % interval [-0.0771, +0.177] over 2 seeds (Wilcoxon p = 0.5) spans 0" in why


def test_fig8_runs_that_did_not_train_are_not_compared():
    # every seed of Deep LoRA at the largest r failed: nothing to compare, whatever the numbers say
    s = glue(untrained={"Deep LoRA": {32: [0, 1, 2]}})
    ours, verdict, why = judge(CLAIM["fig8"], s)
    assert verdict == "did not train" and "Deep LoRA at r = 32 (3 of 3 seeds)" in why and "did not train" in ours
    # one seed failed at the smallest r: the drop is judged over the other two (0.29, 0.26)
    ours, verdict, why = judge(CLAIM["fig8"], glue(untrained={"LoRA": {8: [0]}}))
    assert verdict == "trend reproduced" and "over 2 seeds" in why and "+0.275 over seed(s) 1, 2" in ours
    # a failure at a middle rank does not touch the end-to-end drop
    s = glue(fig8={8: paired(0.0, 0.01, -0.01), 16: paired(0.1, 0.1, 0.1), 32: paired(0.2, 0.3, 0.25)},
             untrained={"Deep LoRA": {16: [0, 1, 2]}})
    assert judge(CLAIM["fig8"], s)[1] == "trend reproduced" and "over 3 seeds" in judge(CLAIM["fig8"], s)[2]


def d2(informative, random_loss=1.35, first=None):
    return ns(scale="ci", d2=ns(comparison_informative=informative, original_best_pearson=0.09,
                                final_train_loss={"original": 0.16, "compressed": 0.08, "random": random_loss},
                                first_step_within_0_05_of_original=first or {"compressed": 20, "random": 20}))


def test_d2_falls_back_to_training_loss_when_pearson_is_uninformative():
    ours, verdict, _ = judge(CLAIM["d2"], d2(False))
    assert verdict == "trend reproduced" and "uninformative (original's best 0.09)" in ours and "random 1.35" in ours
    assert judge(CLAIM["d2"], d2(False, random_loss=0.2))[1] == "not reproduced"
    assert judge(CLAIM["d2"], d2(True))[1] == "not reproduced"  # random catches up as early
    assert judge(CLAIM["d2"], d2(True, first={"compressed": 20, "random": None}))[1] == "trend reproduced"


def test_generation_reads_the_paired_bleu_differences():
    s = ns(scale="ci", model="tiny", paired={"bleu": ns(gain=1.0, seeds=3, differences={0: 0.9, 1: 1.0, 2: 1.1})})
    ours, verdict, _ = judge(CLAIM["appc"], s)
    assert ours == "BLEU gain Deep − LoRA +1.00 over 3 seed(s) (tiny)" and verdict == "trend reproduced"
    s = ns(scale="ci", model="tiny", paired={"bleu": ns(gain=1.0, seeds=1, differences={0: 1.0})})
    assert judge(CLAIM["appc"], s)[1] == "inconclusive"  # one seed: no interval
    assert judge(CLAIM["appc"], ns(scale="ci", model="tiny", paired={}))[1] == "not run at this scale"


@pytest.mark.parametrize(
    "key, summary, expected",
    [
        ("fig1", ns(scale="paper", fig1=ns(d=100, error_widest={2: 1e-1, 3: 1e-3})), "reproduced"),
        ("fig1", ns(scale="ci", fig1=ns(d=100, error_widest={2: 1e-1, 3: 1e-3})), "trend reproduced"),
        ("fig1", ns(scale="paper", fig1=ns(d=100, error_widest={2: 1e-1, 3: 5e-2})), "trend reproduced"),
        ("fig1", ns(scale="paper", fig1=ns(d=100, error_widest={2: 1e-1, 3: 2e-1})), "not reproduced"),
        ("fig1", ns(scale="paper", fig1=ns(d=100, error_widest={2: 1e-1, 3: None})), "not run at this scale"),
        ("fig1w", ns(scale="ci", fig1=ns(steps_narrowest=900.0, steps_widest=300.0)), "trend reproduced"),
        ("fig1w", ns(scale="ci", fig1=ns(steps_narrowest=300.0, steps_widest=300.0)), "not reproduced"),
        ("fig7", ns(scale="ci", fig7=ns(deep_fraction_rank0=0.8, lora_fraction_full_rank=1.0)), "reproduced"),
        ("fig7", ns(scale="ci", fig7=ns(deep_fraction_rank0=0.2, lora_fraction_full_rank=1.0)), "trend reproduced"),
        ("fig7", ns(scale="ci", fig7=ns(deep_fraction_rank0=0.0, lora_fraction_full_rank=1.0)), "not reproduced"),
        ("fig9", ns(scale="ci", d=40, true_rank=4, relu_gap_at_rank=3.0, relu_gap_at_rank_plus_1=1.1), "reproduced"),
        ("fig9", ns(scale="ci", d=40, true_rank=4, relu_gap_at_rank=1.1, relu_gap_at_rank_plus_1=1.6), "trend reproduced"),
        ("fig9", ns(scale="ci", d=40, true_rank=4, relu_gap_at_rank=1.1, relu_gap_at_rank_plus_1=1.2), "not reproduced"),
    ],
)
def test_threshold_claims(key, summary, expected):
    assert judge(CLAIM[key], summary)[1] == expected


def test_the_full_width_variant_is_judged_on_its_own_seeds():
    """Fig. 6 as the authors' logs ran it: the full-width adapter against LoRA, per n it ran, over the seeds
    where both trained; no full-width runs: not run at this scale."""
    full = "Deep LoRA (full width)"
    assert judge(CLAIM["fig6full"], glue())[1:] == ("not run at this scale",
                                                    "the full-width variant (not in this scale's plan) was not measured")
    s = glue()
    s.fig6.full_by_n = {16: paired(-0.01, 0.02, -0.03, 0.01, 0.0)}
    ours, verdict, why = judge(CLAIM["fig6full"], s)
    assert verdict == "inconclusive" and ours == "n = 16: -0.002 over 5 seed(s)" and "spans 0" in why
    s.fig6.full_by_n = {16: paired(0.10, 0.12, 0.08)}
    s.fig6.untrained = {full: {16: [2]}}
    ours, verdict, _ = judge(CLAIM["fig6full"], s)
    assert ours == "n = 16: +0.110 over 2 seed(s)"
    s.fig6.untrained = {full: {16: [0, 1, 2]}}
    ours, verdict, why = judge(CLAIM["fig6full"], s)
    assert verdict == "did not train" and ours == "n = 16: did not train" and "Deep LoRA (full width) at n = 16 (3 of 3 seeds)" in why
