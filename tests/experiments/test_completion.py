"""Tests for the completion chapter (compressible.experiments.completion): its plans, run, the Fig. 1, Fig. 5,
App. D.1 and speed-up-against-d statistics of its summary, and its tables. The kernels are tested in
tests/matrix/test_race.py and tests/matrix/test_scaling.py."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from compressible.experiments import completion as experiment
from compressible.experiments.completion import stats as chapter_stats
from compressible.experiments.completion import tables
from compressible.experiments.completion.run import run_part
from compressible.experiments.contract import Execution
from compressible.matrix.completion import torch_threads
from compressible.matrix.race import RandomVsCompressedConfig
from compressible.matrix.scaling import ScalingConfig
from compressible.matrix.width import WidthSweepConfig
from compressible.store import ResultStore

pytestmark = pytest.mark.usefixtures("one_thread")


def _history(method, gamma, test_loss, wall_time, steps=None):
    n = len(test_loss)
    return pd.DataFrame({"method": method, "gamma": gamma, "step": steps or list(range(0, 10 * n, 10)),
                         "train_loss": [x / 10 for x in test_loss], "test_loss": test_loss, "wall_time": wall_time,
                         "setup_time": 0.0})


RACE = pd.concat([
    _history("original", float("nan"), [1.0, 0.1, 0.01], [0.0, 1.0, 2.0]),
    _history("compressed γ=0", 0.0, [1.0, 0.5, 0.4], [0.1, 0.2, 0.3]),
    _history("compressed γ=0.01", 0.01, [1.0, 0.005, 0.001], [0.1, 0.5, 0.9]),
], ignore_index=True)


def test_race_speedup_is_the_time_ratio_to_the_originals_final_error():
    """Target = 1.01 x the original's final recovery error (0.0101): original at 2 s, γ = 0.01 at 0.5 s."""
    stats = chapter_stats.race_stats(RACE, d=24)
    assert stats.speedup == 4.0
    assert stats.gamma == 0.01
    assert (stats.error_original, stats.error_compressed, stats.error_gamma0) == (0.01, 0.001, 0.4)
    assert stats.row("original").time_to_target == 2.0 and stats.row("original").speedup == 1.0
    assert stats.compressed.step_to_target == 10.0
    never = stats.row("compressed γ=0")
    assert never.time_to_target is None and never.speedup is None  # never reached: None, not nan


def test_race_without_a_positive_gamma_or_without_the_original():
    only_zero = RACE[RACE.method != "compressed γ=0.01"]
    stats = chapter_stats.race_stats(only_zero, d=24)
    assert stats.speedup is None and stats.error_compressed is None and stats.compressed is None
    with pytest.raises(ValueError, match="needs the 'original' run"):
        chapter_stats.race_stats(RACE[RACE.method != "original"], d=24)


def _d1_rows(rank, method, steps, converged, wall_time, test_loss=1e-3):
    return [{"method": method, "rank": rank, "trial": t, "steps": s, "converged": c, "train_loss": 0.0,
             "test_loss": test_loss, "wall_time": wall_time} for t, (s, c) in enumerate(zip(steps, converged))]


def test_d1_ratio_is_a_lower_bound_when_random_hits_the_cap():
    cap = 300
    results = pd.DataFrame(
        _d1_rows(2, "compressed", [100, 100], [True, True], 1.0) + _d1_rows(2, "random", [cap, cap], [False, False], 2.0)
        + _d1_rows(4, "compressed", [100, 100], [True, True], 1.0) + _d1_rows(4, "random", [cap, cap], [False, False], 8.0)
    )
    config = RandomVsCompressedConfig(d=24, true_rank=2, ranks=(2, 4), trials=2, max_steps=cap)
    stats = chapter_stats.d1_stats(results, config)
    assert stats.speedup == pytest.approx(4.0)  # geometric mean of 2 and 8
    assert stats.steps_ratio == pytest.approx(3.0)
    assert stats.ratio_is_lower_bound
    assert (stats.converged_random, stats.converged_compressed) == (0.0, 1.0)
    assert [r.rank for r in stats.ranks] == [2, 4] and all(r.ratio_is_lower_bound for r in stats.ranks)
    assert stats.ranks[1].time_ratio == 8.0


def test_d1_ratio_is_exact_when_both_converge_and_not_a_lower_bound_when_compressed_is_capped():
    results = pd.DataFrame(
        _d1_rows(2, "compressed", [100, 200], [True, True], 1.0) + _d1_rows(2, "random", [300, 300], [True, True], 0.5)
        + _d1_rows(3, "compressed", [300, 300], [False, False], 1.0) + _d1_rows(3, "random", [300, 300], [False, True], 1.0)
    )
    config = RandomVsCompressedConfig(d=24, true_rank=2, ranks=(2, 3), trials=2, max_steps=300)
    stats = chapter_stats.d1_stats(results, config)
    assert not stats.ratio_is_lower_bound
    assert stats.ranks[0].steps_ratio == 2.0 and stats.ranks[0].time_ratio == 0.5
    assert stats.ranks[1].converged_random == 0.5
    assert stats.speedup == pytest.approx(math.sqrt(0.5 * 1.0))
    assert stats.tol == 1e-9  # the config's, for the figure's axis


def _sweep():
    rows = []
    # depth 2 overfits at the widest width (errors 1e-2, 3e-2, 2e-2), depth 3 recovers
    for depth, errors_wide, steps in ((2, [1e-2, 3e-2, 2e-2], (500, 200)), (3, [1e-8, 2e-8, 5e-9], (600, 100))):
        for trial, err in enumerate(errors_wide):
            rows.append({"depth": depth, "width": 2, "trial": trial, "steps": steps[0] + trial, "test_loss": 0.5})
            rows.append({"depth": depth, "width": 8, "trial": trial, "steps": steps[1] + trial, "test_loss": err})
    return pd.DataFrame(rows)


def _fig1_stats():
    return chapter_stats.width_sweep_stats(_sweep(), d=8, true_rank=1)


def test_fig1_trends_of_a_known_sweep():
    stats = _fig1_stats()
    assert stats.error_widest == {2: 2e-2, 3: 1e-8}  # medians at the widest width, per depth
    assert (stats.narrowest_width, stats.widest_width) == (2, 8)
    assert (stats.steps_narrowest, stats.steps_widest) == (601.0, 101.0)  # depth 3, mean over trials


def _d1_stats():
    return chapter_stats.d1_stats(pd.DataFrame(
        _d1_rows(2, "compressed", [1], [True], 1.0) + _d1_rows(2, "random", [5], [False], 3.0)),
        RandomVsCompressedConfig(d=24, true_rank=2, ranks=(2,), trials=1, max_steps=5))


def test_summary_tables_have_a_row_per_model_and_rank_estimate():
    summary = experiment.CompletionSummary(scale="ci", fig1=_fig1_stats(), fig5=chapter_stats.race_stats(RACE, 24), d1=_d1_stats())
    race = tables.race_table(summary)
    assert list(race.method) == ["original", "compressed γ=0", "compressed γ=0.01"]
    assert list(race["speed-up"]) == ["1", "–", "4"]  # not reached: a dash
    d1 = tables.d1_table(summary)
    assert len(d1) == 1 and d1["time ratio"][0] == "≥ 3"  # a lower bound is marked
    assert summary.fig5.speedup == 4.0 and summary.d1.ratio_is_lower_bound and summary.d1.speedup == pytest.approx(3.0)
    assert experiment.CompletionSummary.model_validate_json(summary.model_dump_json()) == summary


@pytest.mark.slow
def test_smoke_runs_are_stored_and_reloaded(tmp_path):
    store = ResultStore(tmp_path)
    plan = experiment.plan("smoke")
    runs = experiment.run("smoke", store=store, execution=Execution(progress=False))
    assert runs.scale == "smoke" and runs.plan == plan
    assert set(runs.sweep.depth) == {2, 3} and set(runs.sweep.width) == set(plan.fig1[0].widths)
    again = experiment.run(plan, store=store, execution=Execution(progress=False))
    assert again.race.equals(runs.race) and again.d1.equals(runs.d1)
    assert again.scaling.equals(runs.scaling) and list(runs.scaling.d) == list(plan.scaling.sizes)
    summary = experiment.summarise(runs)
    assert summary.scale == "smoke" and summary == experiment.summarise(again)
    assert summary.fig1.d == plan.fig1[-1].d and summary.d1.max_steps == plan.d1.max_steps
    assert summary.scaling.threads == 1 and [p.d for p in summary.scaling.points] == list(plan.scaling.sizes)
    assert experiment.CompletionSummary.model_validate_json(summary.model_dump_json()) == summary


@pytest.mark.slow
def test_parts_in_two_processes_store_what_one_process_computes(tmp_path):
    """The smoke plan computes its parts in two worker processes; one after another in this process (at one
    torch thread, as the workers) they give the same rows, wall-clock times aside."""
    plan = experiment.plan("smoke")
    parts = [c for c, _ in plan.parts()]
    sizes = plan.scaling.sizes  # one part per size of the speed-up against d, the largest first
    assert plan.workers == 2 and parts[:3] == [plan.scaling.at(sizes[-1]), plan.race, plan.d1]
    assert parts[3:] == [*(plan.scaling.at(d) for d in reversed(sizes[:-1])), *plan.fig1]
    pooled = experiment.run("smoke", store=ResultStore(tmp_path / "pooled"), execution=Execution(progress=False))
    with torch_threads(1):
        local = experiment.run("smoke", store=ResultStore(tmp_path / "local"),
                               execution=Execution(progress=False, workers=1))
    for name in ("sweep", "race", "d1", "scaling"):
        a, b = getattr(pooled, name), getattr(local, name)
        assert list(a.columns) == list(b.columns) and len(a) == len(b), name
        for column in a.columns:
            if "time" in column or "flops_before" in column or "flops_after" in column or column == "threads":  # measured
                continue
            if pd.api.types.is_numeric_dtype(a[column]):
                assert np.allclose(a[column].astype(float), b[column].astype(float), rtol=1e-9, equal_nan=True), (name, column)
            else:
                assert a[column].tolist() == b[column].tolist(), (name, column)


def test_plans_and_bad_input():
    assert set(experiment.PLANS) == {"smoke", "ci", "paper"}
    assert [c.depth for c in experiment.plan("paper").fig1] == [2, 3]
    p = experiment.plan("smoke")
    with pytest.raises(ValueError, match=r"fig1 must hold the depth-2 and the depth-3 sweep, got depths \[3, 2\]"):
        experiment.CompletionPlan(fig1=p.fig1[::-1], race=p.race, d1=p.d1, scaling=p.scaling, notes="")
    with pytest.raises(ValueError, match=r"workers must be an int >= 1, got 0"):
        dataclasses.replace(p, workers=0)
    with pytest.raises(ValueError, match="scale must be one of"):
        experiment.plan("tiny")
    with pytest.raises(ValueError, match="times its runs on the CPU"):
        experiment.run("smoke", store="memory://completion-test", device="cuda")
    with pytest.raises(ValueError, match="pass scale="):
        experiment.run(dataclasses.replace(p, notes="another"), store="memory://completion-test")
    with pytest.raises(TypeError, match="no completion kernel for ScalingConfig"):
        run_part(p.scaling, 0)


def test_every_part_is_a_config_the_ledger_knows_by_its_class_name():
    """Stored records are keyed by the config class's name and fields: the chapter's parts keep them."""
    names = {type(c).__name__ for scale in experiment.PLANS for c, _ in experiment.plan(scale).parts()}
    assert names == {"WidthSweepConfig", "CompressionRaceConfig", "RandomVsCompressedConfig", "SameErrorConfig"}
    assert experiment.CHAPTER == experiment.CompletionSummary.chapter == "completion"


def test_a_part_record_is_the_rows_of_its_kernel():
    config = WidthSweepConfig(d=8, true_rank=1, lr=20.0, epsilon=0.1, widths=(2, 8), max_steps=20, trials=1)
    record = run_part(config, 0)
    assert [r["width"] for r in record["rows"]] == [2, 8] and set(record) == {"rows"}


# ---- speed-up against d ---------------------------------------------------------------------


def _record(d, steps_o=1000, steps_c=500, comparison="same error", reached=True):
    """A race record where the original costs 1e-9 d^3 s per step, the compression 1e-8 d^2 s per step,
    the original runs at half the matmul rate; time to target = all training (+ 0.5 s set-up)."""
    t_o, t_c = 1e-9 * d**3 * steps_o, 1e-8 * d**2 * steps_c
    flops = 12 * d**3
    return {"d": d, "lr": 1.0, "threads": 1, "comparison": comparison, "initial_error": 1.0, "error_original": 1e-3, "train_loss_original": 1e-10,
            "reached_tol": True, "steps_original": steps_o, "train_time_original": t_o, "time_original": t_o,
            "target_error": 1.01e-3, "reached_target": reached, "error_compressed": 1e-3, "steps_compressed": steps_c,
            "setup_time": 0.0, "train_time_compressed": t_c, "time_compressed": t_c,
            "flops_per_step_original": flops, "matmul_flops_before": 2 * flops / 1e-9 / d**3,
            "matmul_flops_after": flops / 1e-9 / d**3}


def test_scaling_slopes_of_known_power_laws():
    """Per-step costs c d^3 and c' d^2 with equal step counts per size: the speed-up grows like d."""
    results = pd.DataFrame([_record(d) for d in (400, 100, 200)])  # order of rows does not matter
    stats = chapter_stats.scaling_stats(results, ScalingConfig(sizes=(100, 200, 400)))
    assert [p.d for p in stats.points] == [100, 200, 400]
    assert stats.slope_step_original == pytest.approx(3.0, abs=1e-9)
    assert stats.slope_step_compressed == pytest.approx(2.0, abs=1e-9)
    assert stats.slope_speedup == pytest.approx(1.0, abs=1e-9)
    p = stats.points[0]
    assert p.speedup == pytest.approx(1e-9 * 100**3 * 1000 / (1e-8 * 100**2 * 500))  # = 20
    assert p.step_speedup == pytest.approx(10.0) and p.step_time_original == pytest.approx(1e-3)
    assert stats.flops_fraction == pytest.approx(0.5) and p.achieved_flops == pytest.approx(12e9)
    assert stats.threads == 1 and stats.dtype == "float32"


def test_scaling_without_a_reached_target_has_no_speedup_and_equal_steps_counts():
    results = pd.DataFrame([_record(100, reached=False), _record(200, comparison="equal steps", steps_c=1000),
                            _record(400)])
    stats = chapter_stats.scaling_stats(results, ScalingConfig(sizes=(100, 200, 400)))
    assert stats.points[0].speedup is None and not stats.points[0].reached
    assert stats.points[1].speedup == pytest.approx(1e-9 * 200**3 / (1e-8 * 200**2)) and stats.points[1].comparison == "equal steps"
    # the slope is fitted over the two sizes with a speed-up: 20 at d=200, 80 at d=400 -> 2 (steps differ)
    assert stats.slope_speedup == pytest.approx(np.log(80 / 20) / np.log(2))
    one = chapter_stats.scaling_stats(pd.DataFrame([_record(100, reached=False), _record(200)]),
                                   ScalingConfig(sizes=(100, 200)))
    assert one.slope_speedup is None


def test_scaling_tables_and_bad_scaling_input():
    stats = chapter_stats.scaling_stats(pd.DataFrame([_record(d) for d in (100, 200)]), ScalingConfig(sizes=(100, 200)))
    summary = experiment.CompletionSummary(scale="ci", fig1=_fig1_stats(), fig5=chapter_stats.race_stats(RACE, 24),
                                           d1=_d1_stats(), scaling=stats)
    table = tables.scaling_table(summary)
    assert list(table.d) == [100, 200] and list(table["of matmul rate"]) == ["50%", "50%"]
    assert [p.speedup for p in summary.scaling.points] == pytest.approx([20.0, 40.0])
    without = summary.model_copy(update={"scaling": None})
    with pytest.raises(ValueError, match="summary.scaling is None"):
        tables.scaling_table(without)


