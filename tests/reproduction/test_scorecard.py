"""Tests of compressible.reproduction.scorecard: verdicts follow the summaries, and gaps are never passed."""

import pytest

from compressible.reproduction.scorecard import CLAIMS, scorecard
from compressible.summaries import load_summary, save_summary


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSIBLE_RESULTS", str(tmp_path))


def row(card, key):
    index = [c.key for c in CLAIMS].index(key)
    return card.iloc[index]


def test_everything_not_run_without_summaries():
    card = scorecard("ci")
    assert len(card) == len(CLAIMS) and set(card.verdict) == {"not run at this scale"}


def test_exact_claim_reproduced_and_failing_claim_not():
    save_summary("invariant_subspaces", "ci", dict(max_rel_gap=1e-15, max_subspace_drift=2e-13, min_multiplicity=24,
                                                   required_multiplicity=24, d=30))
    save_summary("fewshot_glue", "ci", dict(table1_average_gain=-1.5, table1_lora_average=60.0,
                                           table1_deep_average=58.5, table1_tasks=["rte", "stsb"]))
    card = scorecard("ci")
    assert row(card, "thm21").verdict == "reproduced"
    assert row(card, "table1").verdict == "not reproduced"
    assert "-1.50" in row(card, "table1").ours


def test_quantitative_claim_at_reduced_scale_is_only_a_trend():
    save_summary("completion", "ci", dict(speedup_fig5=30.0, fig5_d=200))
    assert row(scorecard("ci"), "fig5").verdict == "trend reproduced"
    save_summary("completion", "paper", dict(speedup_fig5=6.0, fig5_d=1000))
    assert row(scorecard("paper"), "fig5").verdict == "reproduced"


def test_summary_from_another_scale_or_incomplete_is_flagged():
    save_summary("compression", "smoke", dict(prop22_max_ratio=0.1, prop22_max_distance=1e-5, prop22_bound=1e-4))
    assert row(scorecard("ci"), "prop22").verdict == "not run at this scale"
    save_summary("compression", "ci", dict(prop22_max_ratio=0.1))
    r = row(scorecard("ci"), "prop22")
    assert r.verdict == "not run at this scale" and "summary incomplete" in r.ours and "prop22_bound" in r.ours


def test_summaries_round_trip_and_reject_bad_input():
    save_summary("nonlinear", "ci", {"a": 1.5, "b": None, "c": [1, 2]})
    assert load_summary("nonlinear") == {"chapter": "nonlinear", "scale": "ci", "a": 1.5, "b": None, "c": [1, 2]}
    with pytest.raises(ValueError, match="must be finite"):
        save_summary("nonlinear", "ci", {"a": float("nan")})
    with pytest.raises(ValueError, match="scale must be one of"):
        save_summary("nonlinear", "big", {})
    with pytest.raises(ValueError, match="plain name"):
        save_summary("../x", "ci", {})
    with pytest.raises(ValueError, match="scale must be one of"):
        scorecard("huge")


def test_lower_bound_ratio_is_reported_as_such():
    save_summary("completion", "ci", dict(speedup_vs_random_d1=0.9, d1_d=200, d1_ratio_is_lower_bound=True))
    r = row(scorecard("ci"), "d1")
    assert r.ours.startswith("≥ 0.9×") and r.verdict == "trend reproduced"


def test_a_gain_between_runs_at_chance_is_not_a_trend():
    """A positive gain is only evidence when at least one method learned something."""
    base = dict(table1_average_gain=0.5, table1_lora_average=50.0, table1_deep_average=50.5, table1_tasks=["rte", "mrpc"])
    save_summary("fewshot_glue", "ci", dict(base, table1_tasks_above_chance=[],
                                           fig6_lora_n16=0.01, fig6_deep_n16=0.03, fig6_gain_n16=0.02,
                                           fig8_lora_8=0.01, fig8_deep_8=0.02, fig8_lora_32=0.0, fig8_deep_32=0.04,
                                           fig8_lora_drop_smallest_to_largest_r=0.3, fig8_deep_drop_smallest_to_largest_r=-0.02))
    card = scorecard("ci")
    assert row(card, "table1").verdict == "not reproduced" and "0 of 2 tasks above chance" in row(card, "table1").ours
    assert row(card, "fig6").verdict == "not reproduced" and "at chance" in row(card, "fig6").ours
    assert row(card, "fig8").verdict == "not reproduced" and "at chance" in row(card, "fig8").ours
    save_summary("fewshot_glue", "ci", dict(base, table1_tasks_above_chance=["mrpc"],
                                           fig6_lora_n16=0.2, fig6_deep_n16=0.3, fig6_gain_n16=0.1,
                                           fig8_lora_8=0.2, fig8_deep_8=0.3, fig8_lora_32=0.1, fig8_deep_32=0.3,
                                           fig8_lora_drop_smallest_to_largest_r=0.1, fig8_deep_drop_smallest_to_largest_r=0.0))
    card = scorecard("ci")
    assert row(card, "table1").verdict == "trend reproduced" and "1 of 2 tasks above chance (mrpc)" in row(card, "table1").ours
    assert row(card, "fig6").verdict == "trend reproduced"
    assert row(card, "fig8").verdict == "trend reproduced"


def test_d2_falls_back_to_training_loss_when_pearson_is_uninformative():
    base = {"d2_first_step_compressed_within_0.05_of_original": 20, "d2_first_step_random_within_0.05_of_original": 20,
            "d2_original_best_pearson": 0.09, "d2_comparison_informative": False,
            "d2_final_train_loss_original": 0.16, "d2_final_train_loss_compressed": 0.08}
    save_summary("deep_lora_subspaces", "ci", dict(base, d2_final_train_loss_random=1.35))
    r = row(scorecard("ci"), "d2")
    assert r.verdict == "trend reproduced" and "uninformative (original's best 0.09)" in r.ours and "random 1.35" in r.ours
    save_summary("deep_lora_subspaces", "ci", dict(base, d2_final_train_loss_random=0.2))
    assert row(scorecard("ci"), "d2").verdict == "not reproduced"
    save_summary("deep_lora_subspaces", "ci", dict(base, d2_comparison_informative=True, d2_final_train_loss_random=1.35))
    assert row(scorecard("ci"), "d2").verdict == "not reproduced"  # informative: random catches up as early
