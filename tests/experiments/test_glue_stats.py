"""Tests of compressible.experiments.glue_stats: the chance rule and the paired per-seed table."""

import math

import numpy as np
import pandas as pd
import pytest

from compressible.summaries import finite
from compressible.experiments.glue_stats import (
    CHANCE_MARGIN,
    DEEP,
    LORA,
    above_chance,
    chance_level,
    distance_from_chance,
    mean_pm_std,
    paired_frame,
)


def test_chance_level_is_the_score_of_a_constant_predictor():
    # correlations of a constant prediction are 0 whatever the labels
    assert chance_level("matthews") == 0.0 and chance_level("pearson") == 0.0
    # accuracy: predicting the majority class; 3 of 5 labels are 1 -> 60 points
    assert chance_level("accuracy", [1, 0, 1, 1, 0]) == pytest.approx(60.0)
    assert chance_level("accuracy", np.array([2, 2, 0, 1])) == pytest.approx(50.0)


def test_chance_level_bad_input():
    with pytest.raises(ValueError, match=r"metric must be one of \('matthews', 'pearson', 'accuracy'\), got 'f1'"):
        chance_level("f1")
    with pytest.raises(ValueError, match="needs the evaluation labels"):
        chance_level("accuracy")


def test_distance_and_the_rule():
    # best of the two methods' means (fractions) above chance (points)
    assert distance_from_chance([0.61, 0.63], 60.0) == pytest.approx(3.0)
    assert distance_from_chance([0.70, float("nan")], 60.0) == pytest.approx(10.0)  # NaN means are ignored
    assert math.isnan(distance_from_chance([float("nan")], 0.0))
    assert CHANCE_MARGIN == 5.0
    assert above_chance(5.0) and above_chance(12.0)  # at the margin counts as above
    assert not above_chance(4.999) and not above_chance(-3.0) and not above_chance(float("nan"))


def test_paired_frame_differences_and_sign_counts():
    frame = pd.DataFrame({
        "task": ["a"] * 4 + ["b"] * 4,
        "seed": [0, 1, 0, 1] * 2,
        "method": [LORA, LORA, DEEP, DEEP] * 2,
        "value": [0.5, 0.6, 0.7, 0.5, 0.1, np.nan, 0.3, 0.2],
    })
    wide = paired_frame(frame, ["task"])
    assert list(wide.columns) == ["task", "seed", "diff", LORA, DEEP]
    a = wide[wide.task == "a"]
    assert a["diff"].tolist() == pytest.approx([0.2, -0.1])
    assert int((a["diff"] > 0).sum()) == 1  # Deep LoRA ahead on one seed of two
    b = wide[wide.task == "b"]
    assert b["diff"].iloc[0] == pytest.approx(0.2) and math.isnan(b["diff"].iloc[1])  # LoRA's seed 1 is NaN
    assert b["diff"].mean() == pytest.approx(0.2)  # means skip the undefined seed


def test_paired_frame_names_missing_columns():
    with pytest.raises(KeyError, match=r"frame has no columns \['task'\]"):
        paired_frame(pd.DataFrame({"seed": [0], "method": [LORA], "value": [1.0]}), ["task"])


def test_formatting_helpers():
    assert mean_pm_std(20.0, 14.142) == "20.00 ± 14.14"
    assert mean_pm_std(0.25, None, digits=3) == "0.250"
    assert mean_pm_std(None, None) == "n/a"
    assert finite(np.float64(1.5)) == 1.5 and finite(float("nan")) is None and finite(float("inf")) is None


def test_paired_power_is_the_tests_size_at_no_effect_and_grows_with_seeds():
    from compressible.experiments.glue_stats import paired_power

    for seeds in (2, 5, 20):
        assert paired_power(seeds, 0.0, 1.0, alpha=0.05) == pytest.approx(0.05, abs=1e-12)
    powers = [paired_power(n, 0.5, 1.0) for n in range(2, 40)]
    assert all(b > a for a, b in zip(powers, powers[1:]))
    assert paired_power(10, 1.0, 1.0) == paired_power(10, -1.0, 1.0) == paired_power(10, 2.0, 2.0)


def test_paired_power_against_monte_carlo():
    from scipy import stats

    from compressible.experiments.glue_stats import paired_power

    rng = np.random.default_rng(0)
    draws = rng.normal(0.7, 1.0, size=(20_000, 8))
    rejected = stats.ttest_1samp(draws, 0.0, axis=1).pvalue < 0.05
    # 20 000 draws: the Monte Carlo share has a standard error of sqrt(p (1 - p) / 20 000) < 0.0036
    assert abs(rejected.mean() - paired_power(8, 0.7, 1.0)) < 4 * 0.0036


def test_paired_seeds_is_the_fewest_that_reach_the_power():
    from compressible.experiments.glue_stats import paired_power, paired_seeds

    for effect, sd in ((6.9, 7.7), (1.6, 2.2), (1.4, 1.0)):
        n = paired_seeds(effect, sd)
        assert paired_power(n, effect, sd) >= 0.8 and (n == 2 or paired_power(n - 1, effect, sd) < 0.8)
    assert paired_seeds(1.0, 1.0, power=0.9) > paired_seeds(1.0, 1.0, power=0.8)
    with pytest.raises(ValueError, match="sd must be a finite number > 0, got 0"):
        paired_seeds(1.0, 0)
    with pytest.raises(ValueError, match=r"\|effect\| must be a finite number > 0, got 0.0"):
        paired_seeds(0.0, 1.0)
    with pytest.raises(ValueError, match="power must be a number in \\(0, 1\\), got 1.5"):
        paired_seeds(1.0, 1.0, power=1.5)
    with pytest.raises(ValueError, match="more than most=3 seeds"):
        paired_seeds(0.1, 1.0, most=3)
