"""Tests for compressible.experiments.nonlinear: the Fig. 9 spectral statistics."""

import math

import pandas as pd
import pytest

from compressible.experiments import nonlinear as experiment

pytestmark = pytest.mark.usefixtures("one_thread")


def _spectra(rows):
    """rows: (activation, seed, singular values, descending) -> the frame gradient_spectra produces."""
    records = []
    for act, seed, values in rows:
        for i, v in enumerate(values):
            records.append({"activation": act, "step": 0, "index": i + 1, "singular_value": v,
                            "normalised": v / values[0], "seed": seed})
    return pd.DataFrame(records).sample(frac=1.0, random_state=0)  # order must not matter


def test_spectrum_gaps_of_known_spectra():
    gaps = experiment.spectrum_gaps(_spectra([("relu", 0, [8.0, 4.0, 2.0, 1.0])]), true_rank=1).iloc[0]
    assert gaps.gap_at_rank == 2.0  # sigma_1 / sigma_2
    assert gaps.gap_at_rank_plus_1 == 2.0  # sigma_2 / sigma_3
    assert gaps.tail_ratio == 0.5  # sigma_2 / sigma_1
    assert gaps.energy_top_rank_plus_1 == pytest.approx(80 / 85)


def test_summary_means_relu_over_seeds_and_takes_the_worst_linear_seed():
    plan = experiment.NonlinearPlan(d=4, true_rank=1, seeds=(0, 1))
    spectra = _spectra([
        ("relu", 0, [8.0, 4.0, 2.0, 1.0]), ("relu", 1, [9.0, 3.0, 1.0, 1.0]),
        ("linear", 0, [5.0, 1e-12, 0.0, 0.0]), ("linear", 1, [2.0, 1e-11, 1e-13, 0.0]),
    ])
    summary = experiment.summarise(experiment.NonlinearResults("smoke", plan, spectra))
    assert summary.relu_gap_at_rank == pytest.approx(2.5)  # (8/4 + 9/3) / 2
    assert summary.relu_widest_gap_after == 1  # a tie: r*
    assert summary.relu_gap_at_rank_plus_1 == pytest.approx(2.5)  # (4/2 + 3/1) / 2
    assert summary.relu_energy_top_rank_plus_1 == pytest.approx((80 / 85 + 90 / 92) / 2)
    assert summary.linear_max_tail_ratio == pytest.approx(5e-12)  # seed 1: 1e-11 / 2
    linear0 = next(g for g in summary.per_seed if g.activation == "linear" and g.seed == 0)
    assert linear0.gap_at_rank_plus_1 is None  # 1e-12 / 0 is infinite: stored as None, never inf
    assert math.isclose(linear0.gap_at_rank, 5e12)


def test_linear_gradient_has_rank_r_star_at_smoke_scale():
    """With sigma(x) = x the gradient of W_2 has rank <= r*: sigma_{r*+1} / sigma_1 is at rounding level."""
    plan = experiment.plan("smoke")
    summary = experiment.summarise(experiment.run("smoke"))
    assert summary.linear_max_tail_ratio < 1e-8
    assert summary.relu_energy_top_rank_plus_1 <= 1.0
    assert len(summary.per_seed) == 2 * len(plan.seeds)
    table = experiment.comparison_table(summary)
    assert list(table.columns)[1] == "paper (authors' logs)"


def test_the_widest_relu_gap_is_a_decision():
    plan = experiment.NonlinearPlan(d=4, true_rank=1, seeds=(0,))
    wider_after_r_plus_1 = _spectra([("relu", 0, [8.0, 6.0, 1.0, 1.0]), ("linear", 0, [5.0, 0.0, 0.0, 0.0])])
    summary = experiment.summarise(experiment.NonlinearResults("smoke", plan, wider_after_r_plus_1))
    assert (summary.relu_gap_at_rank, summary.relu_gap_at_rank_plus_1) == pytest.approx((8 / 6, 6.0))
    assert summary.relu_widest_gap_after == 2
    with pytest.raises(ValueError, match="NonlinearPlan is none of this chapter's PLANS"):
        experiment.run(plan)
