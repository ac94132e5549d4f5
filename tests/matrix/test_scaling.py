"""Tests for compressible.matrix.scaling: the race to the same recovery error, its rule and the log-log slope."""

import dataclasses
import math

import numpy as np
import pytest

from compressible.matrix.scaling import SameErrorConfig, ScalingConfig, loglog_slope, race_to_same_error, same_error_target

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ScalingConfig(sizes=(16, 24, 32), race=SameErrorConfig(
    d=24, true_rank=2, observed_fraction=0.5, epsilon=0.1, lr=20.0, tol_original=1e-6, max_steps=2000,
    log_every=10, dtype="float64"))


def test_loglog_slope_recovers_the_exponent_of_a_power_law():
    d = [100, 200, 400, 1000]
    assert loglog_slope(d, [3e-9 * x**3 for x in d]) == pytest.approx(3.0, abs=1e-12)
    assert loglog_slope(d, [7.0 / x for x in d]) == pytest.approx(-1.0, abs=1e-12)
    # not a power law: the least-squares slope of the logs, written out
    x = np.log([1, 2, 4])
    y = np.log([1, 8, 16])
    expected = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert loglog_slope([1, 2, 4], [1, 8, 16]) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="at least two distinct x"):
        loglog_slope([100, 100], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive finite values"):
        loglog_slope([100, 200], [1.0, 0.0])


def test_same_error_rule_targets_one_percent_above_e_star_or_equal_steps_on_a_plateau():
    assert same_error_target(1.0, 0.1) == pytest.approx(0.101)
    assert same_error_target(1.0, 0.1, tolerance=0.0) == 0.1
    assert same_error_target(1.0, 0.5) is None  # not below half the initial error: plateau
    assert same_error_target(1.0, 0.9) is None
    assert same_error_target(1.0, 0.3, plateau=0.25) is None
    with pytest.raises(ValueError, match="initial > 0"):
        same_error_target(0.0, 0.1)


def test_scaling_config_rescales_the_step_and_checks_its_sizes():
    at32 = TINY.at(32)
    assert at32.d == 32 and at32.lr == pytest.approx(20.0 * (32 / 24) ** (4 / 3)) and TINY.at(24) == TINY.race
    with pytest.raises(ValueError, match=r"sizes must be at least two increasing distinct sizes, got \(200, 100\)"):
        ScalingConfig(sizes=(200, 100))
    with pytest.raises(ValueError, match=r"compression needs 2 r\* < d"):
        ScalingConfig(sizes=(10, 100))


def test_the_same_error_race_at_a_tiny_size_follows_its_rule():
    config = TINY.at(24)
    race = race_to_same_error(config)
    r = race.record
    assert r["comparison"] == "same error" and r["reached_target"]
    assert r["target_error"] == pytest.approx(1.01 * r["error_original"])
    assert r["error_compressed"] <= r["target_error"] and r["time_compressed"] >= r["setup_time"]
    assert r["time_original"] <= r["train_time_original"] and r["threads"] == config.threads
    assert race.compressed.is_thin() and race.problem.d == 24


def test_a_budget_that_stops_the_original_on_its_plateau_compares_equal_steps():
    """A budget of 1 ns caps the original at one step: its error is still its initial one, so the
    compression runs exactly as many steps and the full training times are compared."""
    config = dataclasses.replace(TINY.at(24), budget=1e-9)
    r = race_to_same_error(config).record
    assert r["comparison"] == "equal steps" and math.isnan(r["target_error"])
    assert r["steps_original"] == r["steps_compressed"] == 1 and not r["reached_tol"]
    assert r["time_original"] == r["train_time_original"]
    with pytest.raises(ValueError, match="budget must be positive seconds or None, got 0"):
        dataclasses.replace(config, budget=0)
