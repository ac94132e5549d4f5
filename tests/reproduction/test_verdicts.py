"""Tests of compressible.reproduction.verdicts: every verdict rule, on evidence with a known answer."""

import pytest

from compressible.finetune.metrics import t_interval
from compressible.reproduction.verdicts import (
    Verdict,
    VERDICTS,
    Criteria,
    Difference,
    Exact,
    Judgement,
    Ratio,
    Untrained,
    verdict,
    weakest,
)


def test_exact_statements_hold_at_any_scale_or_fail():
    assert verdict(Exact(True, "σ = ρ")) == Judgement(Verdict.REPRODUCED, "σ = ρ: holds (a mathematical statement, any scale)")
    assert verdict(Exact(False, "σ = ρ")).verdict == Verdict.NOT_REPRODUCED


@pytest.mark.parametrize(
    "holds, direction, full_scale, expected",
    [
        (True, True, True, Verdict.REPRODUCED),
        (True, True, False, Verdict.TREND),
        (False, True, True, Verdict.TREND),
        (False, True, False, Verdict.TREND),
        (False, False, True, Verdict.NOT_REPRODUCED),
    ],
)
def test_criteria_reproduce_only_at_full_scale(holds, direction, full_scale, expected):
    judged = verdict(Criteria(holds, direction, full_scale, "error ratio ≤ 0.1"))
    assert judged.verdict == expected and "error ratio ≤ 0.1" in judged.reason


@pytest.mark.parametrize(
    "value, bound, full_scale, expected",
    [
        (3.5, "exact", True, Verdict.REPRODUCED),  # reaches the claimed 3x at the paper's scale
        (3.5, "exact", False, Verdict.TREND),  # ... at a reduced scale only the trend
        (1.4, "exact", True, Verdict.TREND),  # faster, but by less than claimed
        (1.0, "exact", True, Verdict.NOT_REPRODUCED),  # exactly as fast is not faster
        (0.7, "exact", True, Verdict.NOT_REPRODUCED),
        (3.5, "lower", True, Verdict.REPRODUCED),  # a lower bound above the claim proves it
        (1.4, "lower", False, Verdict.TREND),  # a lower bound above 1 shows "faster"
        (0.9, "lower", False, Verdict.INCONCLUSIVE),  # App. D.1 at ci: >= 0.9x cannot show "faster"
        (1.0, "lower", True, Verdict.INCONCLUSIVE),
        (0.8, "upper", True, Verdict.NOT_REPRODUCED),  # at most 0.8x: certainly not faster
        (1.0, "upper", True, Verdict.NOT_REPRODUCED),
        (5.0, "upper", True, Verdict.INCONCLUSIVE),  # at most 5x: may still be <= 1
    ],
)
def test_ratio_respects_bounds(value, bound, full_scale, expected):
    assert verdict(Ratio(value, claimed=3.0, bound=bound, full_scale=full_scale)).verdict == expected


def test_lower_bound_below_one_says_why():
    judged = verdict(Ratio(0.9, claimed=3.0, bound="lower"))
    assert judged == Judgement(Verdict.INCONCLUSIVE, "≥ 0.9× is only a lower bound, and one ≤ 1 cannot show 'faster'")


def test_ratio_rejects_bad_input():
    with pytest.raises(ValueError, match="bound must be one of 'exact', 'lower', 'upper', got 'at least'"):
        Ratio(2.0, 1.0, bound="at least")
    with pytest.raises(ValueError, match="Ratio.value must be a finite positive number, got nan"):
        Ratio(float("nan"), 1.0)
    with pytest.raises(ValueError, match="Ratio.claimed must be a finite positive number, got 0"):
        Ratio(2.0, 0)


@pytest.mark.parametrize(
    "mean, low, high, direction, full_scale, expected",
    [
        (0.10, 0.02, 0.18, 1, True, Verdict.REPRODUCED),  # interval above 0 in the paper's direction
        (0.10, 0.02, 0.18, 1, False, Verdict.TREND),  # ... on a reduced backbone / budget
        (0.05, -0.03, 0.13, 1, True, Verdict.INCONCLUSIVE),  # spans 0
        (0.00, 0.00, 0.00, 1, True, Verdict.INCONCLUSIVE),  # touching 0 is not above it
        (-0.10, -0.18, -0.02, 1, True, Verdict.CONTRADICTED),  # below 0
        (-0.10, -0.18, -0.02, -1, False, Verdict.TREND),  # the paper claims a decrease: below 0 supports it
        (0.10, 0.02, 0.18, -1, True, Verdict.CONTRADICTED),
    ],
)
def test_paired_difference_reads_its_interval(mean, low, high, direction, full_scale, expected):
    assert verdict(Difference(mean, low, high, seeds=5, direction=direction, full_scale=full_scale)).verdict == expected


def test_runs_at_chance_decide_nothing_whatever_the_interval():
    judged = verdict(Difference(0.3, 0.2, 0.4, seeds=5, at_chance=True, full_scale=True))
    assert judged.verdict == Verdict.AT_CHANCE and "chance" in judged.reason


def test_single_seed_without_interval_is_inconclusive():
    judged = verdict(Difference(0.3, None, None, seeds=1))
    assert judged == Judgement(Verdict.INCONCLUSIVE, "mean difference +0.3 from 1 seed(s), no interval")


def test_difference_rejects_bad_input():
    with pytest.raises(ValueError, match="does not contain its mean"):
        Difference(0.5, 0.0, 0.2, seeds=3)
    with pytest.raises(ValueError, match="both ends of the interval or neither"):
        Difference(0.1, 0.0, None, seeds=3)
    with pytest.raises(ValueError, match="direction must be 1 or -1, got 2"):
        Difference(0.1, 0.0, 0.2, seeds=3, direction=2)
    with pytest.raises(ValueError, match="finite numbers"):
        Difference(float("inf"), None, None, seeds=1)
    with pytest.raises(ValueError, match="seeds must be a whole number >= 1, got 0"):
        Difference(0.1, None, None, seeds=0)
    with pytest.raises(TypeError, match="needs an Exact, Criteria, Ratio, Difference, Untrained or Missing record, got dict"):
        verdict({"mean": 0.1})


def test_runs_that_did_not_train_decide_nothing():
    j = verdict(Untrained("Deep LoRA at r = 64 (2 of 2 seeds)"))
    assert j.verdict == Verdict.UNTRAINED == "did not train"
    assert j.reason.startswith("Deep LoRA at r = 64 (2 of 2 seeds): training loss stayed near the constant predictor's")
    with pytest.raises(ValueError, match="Untrained needs the runs that did not train"):
        Untrained("")


def test_a_claim_for_every_part_is_as_strong_as_its_weakest_part():
    parts = {
        "n = 16": verdict(Difference(0.1, 0.05, 0.15, seeds=5)),
        "n = 64": verdict(Difference(0.02, -0.01, 0.05, seeds=5)),
        "n = 256": verdict(Difference(0.03, 0.01, 0.05, seeds=5)),
    }
    judged = weakest(parts)
    assert judged.verdict == Verdict.INCONCLUSIVE
    assert judged.reason.startswith("n = 16: 95 % interval") and "n = 64: 95 % interval [-0.01, +0.05] over 5 seeds spans 0" in judged.reason
    parts["n = 256"] = verdict(Difference(-0.03, -0.05, -0.01, seeds=5))
    assert weakest(parts).verdict == Verdict.CONTRADICTED
    assert weakest({"a": Judgement(Verdict.AT_CHANCE, "x"), "b": Judgement(Verdict.TREND, "y")}).verdict == Verdict.AT_CHANCE
    assert weakest({"a": Judgement(Verdict.AT_CHANCE, "x"), "b": verdict(Untrained("Deep LoRA at r = 64"))}).verdict == Verdict.UNTRAINED
    assert weakest({"a": Judgement(Verdict.UNTRAINED, "x"), "b": Judgement(Verdict.CONTRADICTED, "y")}).verdict == Verdict.CONTRADICTED
    with pytest.raises(ValueError, match="weakest\\(\\) of no judgements"):
        weakest({})
    with pytest.raises(ValueError, match="part 'a' has verdict 'not run at this scale'"):
        weakest({"a": Judgement(VERDICTS[-1], "")})


def test_t_interval_matches_the_textbook_formula():
    # differences 1, 2, 3: mean 2, s = 1, t_{0.975, 2} = 4.3026527 (tables)
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.3026527 / 3**0.5
    assert mean == 2.0 and low == pytest.approx(2 - half, abs=1e-7) and high == pytest.approx(2 + half, abs=1e-7)
    assert t_interval([0.5]) == (0.5, None, None)
    assert t_interval([0.1, 0.1]) == pytest.approx((0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="one or more finite values"):
        t_interval([])
    with pytest.raises(ValueError, match="one or more finite values"):
        t_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="level must be in \\(0, 1\\), got 95"):
        t_interval([1.0, 2.0], level=95)


def test_paired_differences_of_seeds_become_a_verdict():
    assert verdict(Difference.from_differences([0.05, 0.07, 0.06, 0.08, 0.04])).verdict == Verdict.TREND
    spans = Difference.from_differences([0.10, -0.08, 0.05, -0.02, 0.01], full_scale=True)
    assert spans.seeds == 5 and spans.low < 0 < spans.high and verdict(spans).verdict == Verdict.INCONCLUSIVE
    assert verdict(Difference.from_differences([-0.05, -0.07, -0.06], full_scale=True)).verdict == Verdict.CONTRADICTED
    assert verdict(Difference.from_differences([0.3])).verdict == Verdict.INCONCLUSIVE


def test_a_missing_part_leaves_a_claim_over_every_part_undecided():
    from compressible.reproduction.verdicts import Missing

    assert verdict(Missing("the runs at n = 256")) == Judgement(Verdict.INCONCLUSIVE, "the runs at n = 256: not computed yet")
    parts = {"n = 16": verdict(Difference(0.05, 0.01, 0.09, seeds=10)), "n = 256": verdict(Missing("the runs at n = 256"))}
    assert weakest(parts).verdict == Verdict.INCONCLUSIVE
    with pytest.raises(ValueError, match="Missing needs the runs that are missing in what"):
        Missing("")
