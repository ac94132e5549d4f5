"""Tests of compressible.experiments.glue_stats: the chance rule and the paired per-seed table."""

import math

import numpy as np
import pandas as pd
import pytest

from compressible.experiments.glue_stats import (
    CHANCE_MARGIN,
    DEEP,
    LORA,
    above_chance,
    chance_level,
    distance_from_chance,
    finite,
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
