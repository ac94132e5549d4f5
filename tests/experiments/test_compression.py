"""Tests for compressible.experiments.compression: the Fig. 4 / Prop. 2.2 statistics and the stored run."""

import math

import pandas as pd
import pytest

from compressible.experiments import compression as experiment
from compressible.store import ResultStore

pytestmark = pytest.mark.usefixtures("one_thread")


def _track(loss_orig, time_orig, loss_comp, time_comp, distance=None):
    n = len(loss_orig)
    return pd.DataFrame({
        "step": range(0, 10 * n, 10), "train_loss_original": loss_orig, "time_original": time_orig,
        "train_loss_compressed": loss_comp, "time_compressed": time_comp,
        "distance": distance if distance is not None else [0.0] * n,
    })


def test_speedup_is_the_ratio_of_times_to_the_originals_final_loss_plus_one_percent():
    # level = 1.01 * 0.1: the original first reaches it at t = 2 s, the compression at t = 0.5 s
    track = _track([1.0, 0.5, 0.1005, 0.1], [0.0, 1.0, 2.0, 3.0], [1.0, 0.1, 0.05, 0.01], [0.0, 0.5, 0.6, 0.7])
    assert experiment.wall_time_speedup(track) == 4.0


def _results(track, config):
    return experiment.CompressionResults("smoke", experiment.CompressionPlan(config, ""), track)


def test_speedup_is_nan_when_the_compression_never_gets_there():
    track = _track([1.0, 0.1], [0.0, 1.0], [1.0, 0.5], [0.0, 0.1])
    assert math.isnan(experiment.wall_time_speedup(track))
    config = experiment.FactorizationTrackConfig(d=10, true_rank=2, depth=3, epsilon=0.1, steps=1)
    assert experiment.summarise(_results(track, config)).speedup_fig4 is None


def test_summary_of_a_known_track():
    config = experiment.FactorizationTrackConfig(d=10, true_rank=2, depth=3, epsilon=0.1, steps=30)
    track = _track([1.0, 0.5, 0.2], [0.0, 1.0, 2.0], [1.0, 0.2, 0.1], [0.0, 0.1, 0.2], distance=[0.0, 0.09, 0.03])
    s = experiment.summarise(_results(track, config))
    # Prop. 2.2: m sum_l eps_l^2 with m = d - 2r = 6 and three layers at eps = 0.1
    assert s.prop22_bound == pytest.approx(0.18)
    assert s.prop22_max_distance == 0.09
    assert s.prop22_max_ratio == pytest.approx(0.5) and s.prop22_holds and s.last_step == 20
    assert (s.params_original, s.params_compressed) == (3 * 10 * 10, 3 * 4 * 4)
    assert (s.params_original_paper, s.params_compressed_paper) == (3_000_000, 1_200)
    assert s.speedup_fig4 == pytest.approx(2.0 / 0.1)
    assert (s.final_loss_original, s.final_loss_compressed) == (0.2, 0.1)
    beyond = _results(track.assign(distance=[0.0, 0.2, 0.03]), config)
    assert not experiment.summarise(beyond).prop22_holds  # 0.2 > 0.18
    table = experiment.comparison_table(s)
    assert list(table.columns) == ["quantity", "paper (authors' logs)", "ours (smoke scale, d=10)"]
    assert table.iloc[0, 1] == "3,000,000"


def test_a_stored_track_is_computed_once(tmp_path, monkeypatch):
    calls = []
    config = experiment.FactorizationTrackConfig(d=10, true_rank=2, steps=1)

    def track(*args):
        calls.append(1)
        return pd.DataFrame({"a": [1.5, 2.5]})

    monkeypatch.setattr(experiment, "track_compression", track)
    store = ResultStore(tmp_path)
    first = experiment.run_factorization_track(config, 0, store)
    second = experiment.run_factorization_track(config, 0, store)
    assert len(calls) == 1 and first.equals(second)


def test_prop22_bound_holds_at_smoke_scale(tmp_path):
    """Proposition 2.2: the compressed trajectory stays within m sum eps^2 of the original's."""
    store = ResultStore(tmp_path)
    results = experiment.run("smoke", store=store)
    s = experiment.summarise(results)
    assert s.prop22_max_ratio <= 1.0 and s.prop22_holds and s.scale == "smoke"
    again = experiment.run(experiment.plan("smoke"), store=store)  # a plan resolves to its scale
    assert again.scale == "smoke" and again.track.equals(results.track)  # the rerun loads the stored rows


def test_plans_and_bad_input():
    assert set(experiment.PLANS) == {"smoke", "ci", "paper"}
    assert experiment.plan("paper").config.d == 1000
    with pytest.raises(ValueError, match=r"compression needs 2 r\* < d, got r\*=5, d=10"):
        experiment.FactorizationTrackConfig(d=10, true_rank=5)
    with pytest.raises(ValueError, match=r"dtype must be 'float32' or 'float64', got 'float16'"):
        experiment.FactorizationTrackConfig(d=10, true_rank=2, dtype="float16")
