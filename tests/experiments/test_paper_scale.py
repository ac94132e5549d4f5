"""Tests of compressible.experiments.paper_scale: run counts from the plans, costs from the store."""

import pytest

from compressible.experiments import paper_scale
from compressible.experiments.glue_runs import merge_experiments
from compressible.store import ResultStore


def test_paper_run_counts_follow_the_protocol():
    runs = paper_scale.run_counts()
    fewshot = runs["fewshot_glue"]["paper"]
    # Table 1: 8 tasks x 2 methods x 10 seeds; Fig. 6: 3 n x 3 methods (LoRA, compressed and full-width Deep
    # LoRA) x 20; Fig. 7 reuses Fig. 6; Fig. 8: 4 r x 2 x 5; no tuning grid, no float32 twins (all float32);
    # beyond the paper, the diagnosis at n = 256: 4 variants x 5 seeds
    assert fewshot.runs == 8 * 2 * 10 + 3 * 3 * 20 + 4 * 2 * 5 + 4 * 5
    # steps: Table 1 1000 (SST-2 600), Fig. 6 500 (and 3 diagnosis variants; the fourth 1500), Fig. 8 200
    assert fewshot.steps == (2 * 10 * (7 * 1000 + 600) + 3 * 3 * 20 * 500 + 4 * 2 * 5 * 200 + 3 * 5 * 500
                             + 5 * 1500)
    ci = runs["fewshot_glue"]["ci"]
    # ci: 4 tuning runs that no figure reuses; Fig. 6: 2 methods x 5 seeds x 3 n + 5 full width; 2 float32 twins;
    # no diagnosis run at the plan's own rates (its gamma variant, App. D.2's 0.01, is the plan's own gamma: only
    # a tuning that chose another runs it); Fig. 8: 3 more r x 2 methods at seed 0 (its r = 8 runs are Fig. 6's);
    # no rate-scaled runs at ci
    assert ci.runs == 4 + 2 * 5 * 3 + 5 + 2 + 0 + 3 * 2
    subspaces = runs["deep_lora_subspaces"]["paper"]
    assert (subspaces.runs, subspaces.steps) == (4, 2000 + 3 * 200)  # Fig. 2 and the three App. D.2 runs
    assert set(runs) == set(paper_scale.SWEEP_CHAPTERS) and all(set(v) == {"smoke", "ci", "paper"} for v in runs.values())


def test_costs_read_the_recorded_wall_times(tmp_path):
    store = ResultStore(tmp_path)
    module = paper_scale.SWEEP_CHAPTERS["deep_lora_subspaces"]
    planned = merge_experiments(module.experiments(module.plan("smoke")))
    env = {"device": "cpu", "platform": "TestOS"}
    for (config, seeds), seconds in zip(planned[:3], (1.0, 2.0, 6.0)):
        store.save(config, seeds[0], {"wall_time": seconds, "_environment": env})
    costs = paper_scale.measured_costs("smoke", store)
    cost = costs["deep_lora_subspaces"]
    steps = sum(config.steps for config, _ in planned[:3])
    assert (cost.stored, cost.planned, cost.seconds_per_run, cost.seconds_total) == (3, 4, 2.0, 9.0)
    assert cost.seconds_per_step == pytest.approx(9.0 / steps) and (cost.device, cost.platform) == ("cpu", "TestOS")
    empty = costs["fewshot_glue"]
    assert (empty.stored, empty.seconds_per_run, empty.seconds_per_step, empty.device) == (0, None, None, None)
    summary = paper_scale.summarise(paper_scale.PaperScaleResults("smoke", paper_scale.run_counts(), costs))
    table = paper_scale.costs_table(summary)
    assert list(table["runs stored"]) == ["3 of 4", "0 of 26"] and list(table["s per run (median)"]) == ["2.0", "-"]
    assert (summary.stored_runs, summary.platforms) == (3, ["TestOS"])
    assert paper_scale.summarise(paper_scale.run("smoke", store)) == summary  # run reads the same


def test_nothing_stored_is_data_and_bad_scale_is_named(tmp_path):
    summary = paper_scale.summarise(paper_scale.run("smoke", tmp_path))
    assert (summary.stored_runs, summary.platforms) == (0, [])
    assert list(paper_scale.counts_table(summary).columns[:3]) == ["chapter", "runs (smoke)", "steps (smoke)"]
    with pytest.raises(ValueError, match=r"scale must be one of \('smoke', 'ci', 'paper'\), got 'huge'"):
        paper_scale.measured_costs("huge", tmp_path)
    with pytest.raises(ValueError, match=r"scale must be one of \('smoke', 'ci', 'paper'\), got 'huge'"):
        paper_scale.run("huge", tmp_path)
