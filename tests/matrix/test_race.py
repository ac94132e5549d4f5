"""Tests for compressible.matrix.race (Fig. 5, App. D.1) and compressible.matrix.width (Fig. 1): the configs'
checks, the reductions of a race's history, and the kernels at a tiny size."""

import math

import pandas as pd
import pytest

from compressible.matrix.race import (
    CompressionRaceConfig,
    RandomVsCompressedConfig,
    compression_race,
    race_summary,
    random_vs_compressed,
    random_vs_compressed_summary,
)
from compressible.matrix.width import WidthSweepConfig, width_sweep

pytestmark = pytest.mark.usefixtures("one_thread")


def _history(method, gamma, test_loss, wall_time):
    n = len(test_loss)
    return pd.DataFrame({"method": method, "gamma": gamma, "step": list(range(0, 10 * n, 10)),
                         "train_loss": [x / 10 for x in test_loss], "test_loss": test_loss, "wall_time": wall_time,
                         "setup_time": 0.0})


def test_race_summary_times_every_model_to_one_percent_above_the_originals_final_error():
    history = pd.concat([
        _history("original", float("nan"), [1.0, 0.1, 0.01], [0.0, 1.0, 2.0]),
        _history("compressed γ=0.01", 0.01, [1.0, 0.005, 0.001], [0.1, 0.5, 0.9]),
        _history("compressed γ=0", 0.0, [1.0, 0.5, 0.4], [0.1, 0.2, 0.3]),
    ], ignore_index=True)
    table = race_summary(history).set_index("method")
    assert list(table.index) == ["original", "compressed γ=0.01", "compressed γ=0"]  # run order
    assert table.loc["compressed γ=0.01", "time_to_target"] == 0.5 and table.loc["compressed γ=0.01", "speedup"] == 4.0
    assert table.loc["original", "step_to_target"] == 20.0 and table.loc["original", "speedup"] == 1.0
    assert math.isnan(table.loc["compressed γ=0", "time_to_target"])  # never within 1 %
    assert table.loc["compressed γ=0", "final_test_loss"] == 0.4 and table.loc["compressed γ=0", "steps"] == 20
    with pytest.raises(ValueError, match="needs the 'original' run"):
        race_summary(history[history.method != "original"])


def test_random_vs_compressed_summary_flags_lower_bounds():
    rows = [{"method": m, "rank": 2, "trial": t, "steps": s, "converged": c, "wall_time": w, "test_loss": 0.0}
            for m, s, c, w in (("compressed", 100, True, 1.0), ("random", 300, False, 2.0)) for t in range(2)]
    out = random_vs_compressed_summary(pd.DataFrame(rows)).iloc[0]
    assert (out.steps_ratio, out.time_ratio) == (3.0, 2.0)
    assert (out.converged_compressed, out.converged_random) == (1.0, 0.0) and out.ratio_is_lower_bound


def test_configs_reject_bad_input():
    with pytest.raises(ValueError, match=r"widths must be non-empty ints in \[1, d=10\], got \(12,\)"):
        WidthSweepConfig(d=10, true_rank=2, widths=(12,))
    with pytest.raises(ValueError, match=r"ranks must be non-empty ints with 1 <= r and 2r < d=10"):
        RandomVsCompressedConfig(d=10, true_rank=2, ranks=(5,))
    with pytest.raises(ValueError, match=r"compression needs 2 r\* < d, got r\*=5, d=10"):
        CompressionRaceConfig(d=10, true_rank=5)
    with pytest.raises(ValueError, match="depth must be an int >= 2"):
        CompressionRaceConfig(d=24, true_rank=2, depth=1)


def test_width_sweep_rows_are_one_per_width_and_trial():
    config = WidthSweepConfig(d=12, true_rank=2, depth=3, lr=20.0, epsilon=0.1, widths=(2, 12), max_steps=50,
                              tol=1e-8, trials=2)
    df = width_sweep(config)
    assert list(df.width) == [2, 2, 12, 12] and list(df.trial) == [0, 1, 0, 1] and set(df.depth) == {3}
    assert (df.steps <= 50).all() and (df.test_loss > 0).all()


def test_the_kernels_at_a_tiny_size():
    setting = dict(d=16, true_rank=2, observed_fraction=0.5, lr=20.0, epsilon=0.1, dtype="float64", threads=1)
    history = compression_race(CompressionRaceConfig(**setting, max_steps=60, log_every=10))
    assert list(history.method.unique()) == ["original", "compressed γ=0", "compressed γ=0.01"]
    compressed = history[history.method != "original"]
    assert (compressed.wall_time >= compressed.setup_time).all() and (history[history.method == "original"].setup_time == 0).all()
    d1 = random_vs_compressed(RandomVsCompressedConfig(**setting, ranks=(2, 3), trials=2, max_steps=40))
    assert sorted(d1.groupby(["method", "rank"]).size().items()) == [
        (("compressed", 2), 2), (("compressed", 3), 2), (("random", 2), 2), (("random", 3), 2)]
