"""Tests of compressible.sweeps: chapter plans match the paper's protocols; sweeps resume."""

import pytest

from compressible.experiments import deep_lora_subspaces, fewshot_glue

from compressible.finetune.glue import TASKS
from compressible.store import ResultStore
from compressible.experiments.glue_methods import GLUE_METHODS, GlueMethods
from compressible.experiments.deep_lora_subspaces import FIG2_CHECKPOINTS
from compressible.experiments.glue_runs import results_frame, run_experiments
from compressible.sweeps import (
    CHAPTERS,
    GLUE_CHAPTERS,
    chapter_plan,
    experiments_for,
    main,
    plan,
    status,
)
from compressible.finetune.backbones import TINY_BERT
from compressible.finetune.classify import RunConfig

BERT = "bert-base-cased"


def _part(chapter, part, scale="paper"):
    return [e for e in plan(chapter, scale) if e.part == part]


def _common_protocol(config):
    assert config.backbone == BERT
    assert (config.batch_size, config.eval_batch_size, config.max_length) == (16, 32, 128)
    assert config.eval_limit is None and config.replacement and not config.train_head
    a = config.adapter
    if a.init == "lora":
        assert (a.depth, config.lr, a.alpha) == (2, 1e-4, None)
    if a.init == "compressed":
        assert (a.depth, config.lr, a.gamma, a.epsilon) == (3, 1e-2, 1e-2, 1e-3)


def test_paper_table1():
    table1 = _part("fewshot_glue", "table1")
    assert len(table1) == 2 * len(TASKS)
    assert {e.config.task for e in table1} == set(TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"}
    for e in table1:
        _common_protocol(e.config)
        assert e.config.n_train == 1024 and e.seeds == tuple(range(10))
        assert e.config.steps == (600 if e.config.task == "sst2" else 1000)
        assert e.config.eval_every is None  # metric at the last step
        assert e.config.adapter.targets == "all-dense" and e.config.pooler == "random"  # the authors' protocol
    assert {e.label for e in table1} == {"LoRA", "Deep LoRA"}


def test_paper_figures_6_7_8():
    fig6 = _part("fewshot_glue", "fig6")
    assert sorted({e.config.n_train for e in fig6}) == [16, 64, 256] and len(fig6) == 9
    assert sorted(e.label for e in fig6 if e.config.n_train == 16) == ["Deep LoRA", "Deep LoRA (full width)", "LoRA"]
    for e in fig6:
        if e.config.adapter.init == "full":  # what the authors' logged runs used: full width, lr 1e-4
            assert (e.config.adapter.depth, e.config.lr, e.config.adapter.targets) == (3, 1e-4, "all-dense")
        else:
            _common_protocol(e.config)
        assert (e.config.task, e.config.steps, e.seeds) == ("stsb", 500, tuple(range(20)))
    fig7 = _part("fewshot_glue", "fig7")
    assert len(fig7) == 2
    for e in fig7:
        assert (e.config.task, e.config.n_train, e.config.steps, e.seeds) == ("stsb", 256, 500, (0,))
        assert e.config.spectrum_top > 0
    fig8 = _part("fewshot_glue", "fig8")
    assert sorted({e.config.adapter.rank for e in fig8}) == [8, 16, 32, 64] and len(fig8) == 8
    for e in fig8:
        _common_protocol(e.config)
        assert (e.config.task, e.config.n_train, e.config.steps, e.seeds) == ("stsb", 16, 200, tuple(range(5)))
    # Fig. 7 is Fig. 6 at n = 256, seed 0: the sweep computes those runs once.
    unique = experiments_for("fewshot_glue", "paper")
    assert len(unique) == len(plan("fewshot_glue", "paper")) - 2
    runs = sum(len(seeds) for _, seeds in unique)
    assert runs == 16 * 10 + 9 * 20 + 8 * 5 + 4 * 5  # and, beyond the paper, the n = 256 diagnosis: 4 variants x 5 seeds


def test_paper_subspaces_chapter():
    (fig2,) = _part("deep_lora_subspaces", "fig2")
    c = fig2.config
    assert (c.task, c.n_train, c.steps, c.adapter.init, c.adapter.depth) == ("stsb", None, 2000, "full", 3)
    assert (c.lr, c.lr_end, c.checkpoints, c.checkpoint_rank) == (1e-4, 1e-5, FIG2_CHECKPOINTS, 8)
    assert FIG2_CHECKPOINTS == (0, 1, 10, 20, 30, 100, 500, 1000, 1500, 2000)
    assert c.adapter.targets == "attention-mlp" and c.spectrum_top >= 10 and fig2.seeds == (0,)
    d2 = {e.label: e for e in _part("deep_lora_subspaces", "d2")}
    assert set(d2) == {"original", "compressed", "random"}
    for e in d2.values():
        _common_protocol(e.config)
        assert (e.config.task, e.config.n_train, e.config.steps, e.config.eval_every, e.seeds) == ("stsb", 16, 200, 20, (0,))
    assert (d2["original"].config.adapter.init, d2["original"].config.lr) == ("full", 1e-4)
    compressed = d2["compressed"].config
    assert (compressed.adapter.rank, compressed.lr, compressed.adapter.gamma) == (8, 1e-2, 1e-2)
    random = d2["random"].config
    assert (random.adapter.init, random.adapter.rank, random.lr) == ("random", 8, 1e-4)


def test_ci_and_smoke_scales():
    assert _part("fewshot_glue", "table1", "ci") == []  # not run at ci (the plan says why)
    assert fewshot_glue.PLANS["ci"].table1_note
    parts = {"deep_lora_subspaces": deep_lora_subspaces.PARTS, "fewshot_glue": fewshot_glue.PARTS,
             "fewshot_evidence": ("tuning", "fig6", "peft", "fig8", "table1")}
    for chapter in GLUE_CHAPTERS:
        assert {e.config.backbone for e in plan(chapter, "ci")} == {"all-MiniLM-L6-v2"}
        assert {e.config.backbone for e in plan(chapter, "smoke")} == {TINY_BERT}
        assert {e.part for e in plan(chapter, "smoke")} == set(parts[chapter])
        assert max(e.config.steps for e in plan(chapter, "smoke")) <= 3


def test_ci_departures_apply_to_every_method_alike():
    """Few-shot GLUE at ci: the authors' frozen random head and pooler for every run, bf16 autocast for all
    but the float32 twins; the Deep LoRA subspaces chapter keeps its trained head and gamma 0.1, and says so."""
    fewshot = plan("fewshot_glue", "ci")
    assert not any(e.config.train_head for e in fewshot) and {e.config.pooler for e in fewshot} == {"random"}
    assert {e.config.autocast for e in fewshot if e.part != "precision"} == {"auto"}
    assert {e.config.autocast for e in fewshot if e.part == "precision"} == {"off"}
    subspaces = plan("deep_lora_subspaces", "ci")
    assert {(e.config.train_head, e.config.head_lr) for e in subspaces} == {(True, 1e-2)}
    deep = [e.config for e in subspaces if e.config.adapter.init == "compressed"]
    assert {(c.lr, c.adapter.gamma) for c in deep} == {(GLUE_METHODS["ci"].deep_lr or 1e-2, GLUE_METHODS["ci"].deep_gamma)}
    notes = chapter_plan("deep_lora_subspaces", "ci").notes
    assert any("head trains" in note for note in notes) and any("gamma = 0.1" in note for note in notes)
    assert not any(e.config.train_head for chapter in GLUE_CHAPTERS for e in plan(chapter, "paper"))


def test_a_tuned_chapter_lists_its_runs_once_the_grid_is_stored(tmp_path):
    from compressible.store import ResultStore

    store = ResultStore(tmp_path)
    first_round = plan("fewshot_glue", "smoke", store=store)
    grid = [e for e in first_round if e.part == "tuning"]
    # beside the grid, only the runs no rate choice changes (the full-width adapter at its fixed rate)
    assert grid and {(e.part, e.config.adapter.init) for e in first_round if e.part != "tuning"} == {("fig6", "full")}
    for e in grid:  # a stored grid in which the second point of each method wins
        for seed in e.seeds:
            first = e.config.lr == 1e-4 if e.config.adapter.init == "lora" else e.config.adapter.gamma == 1e-2
            store.save(e.config, seed, {"metric": "pearson", "holdout": {"pearson": 0.1 if first else 0.3},
                                        "final": {"pearson": 0.0}, "trained": True})
    runs = plan("fewshot_glue", "smoke", store=store)
    assert {e.part for e in runs} == set(fewshot_glue.PARTS)
    lora = {e.config.lr for e in runs if e.part == "fig6" and e.config.adapter.init == "lora"}
    deep = {(e.config.lr, e.config.adapter.gamma) for e in runs if e.part == "fig6" and e.config.adapter.init == "compressed"}
    assert lora == {1e-3} and deep == {(1e-2, 1e-1)}


def test_plan_head_settings_must_agree():
    import dataclasses

    with pytest.raises(ValueError, match=r"head_lr=0.01 needs train_head=True"):
        dataclasses.replace(GLUE_METHODS["paper"], head_lr=1e-2)
    with pytest.raises(ValueError, match=r"got train_head=True"):
        dataclasses.replace(GLUE_METHODS["paper"], train_head=True)
    assert isinstance(dataclasses.replace(GLUE_METHODS["paper"], train_head=True, head_lr=1e-3), GlueMethods)
    # one home per chapter and scale for the backbone, head and rates; at paper scale both chapters share it
    from compressible.experiments.glue_methods import FEWSHOT_METHODS

    for scale in GLUE_METHODS:
        assert chapter_plan("fewshot_glue", scale).methods is FEWSHOT_METHODS[scale]
        assert chapter_plan("deep_lora_subspaces", scale).methods is GLUE_METHODS[scale]
    assert FEWSHOT_METHODS["paper"] is GLUE_METHODS["paper"]


def test_bad_names():
    with pytest.raises(ValueError, match=r"unknown GLUE chapter 'glue'; valid chapters are \('deep_lora_subspaces', 'fewshot_glue', "
                                         r"'fewshot_evidence'\)"):
        plan("glue", "ci")
    with pytest.raises(ValueError, match=r"scale must be one of \('smoke', 'ci', 'paper'\), got 'huge'"):
        plan("fewshot_glue", "huge")
    with pytest.raises(ValueError, match=r"unknown parts \['fig9'\] of 'fewshot_glue'"):
        plan("fewshot_glue", "ci", parts=["fig9"])


def test_every_part_of_the_evidence_plan_can_be_asked_for_alone():
    everything = plan("fewshot_evidence", "smoke")
    parts = sorted({e.part for e in everything})
    assert parts == ["fig6", "fig8", "peft", "table1", "tuning"]
    assert sum(len(plan("fewshot_evidence", "smoke", parts=[part])) for part in parts) == len(everything)
    with pytest.raises(ValueError, match=r"unknown parts \['fig7'\] of 'fewshot_evidence'; valid parts are "
                                         r"\('tuning', 'fig6', 'peft', 'fig8', 'table1'\)"):
        plan("fewshot_evidence", "smoke", parts=["fig7"])


def _fake(config, seed):
    return {"metric": "pearson", "final": {"step": config.steps, "pearson": seed / 10}, "wall_time": 0.0, "trainable_params": 1}


def test_killed_sweep_recomputes_only_missing_runs(tmp_path):
    store = ResultStore(tmp_path)
    experiments = [(RunConfig("stsb", n_train=16, steps=5), (0, 1, 2, 3)), (RunConfig("rte", steps=5), (0, 1))]
    calls, killed = [], []

    def dies_on_third_run(config, seed):
        calls.append((config.task, seed))
        if len(calls) == 3 and not killed:
            killed.append(seed)
            raise KeyboardInterrupt  # killed while running stsb seed 2
        return _fake(config, seed)

    with pytest.raises(KeyboardInterrupt):
        run_experiments(experiments, store, fn=dies_on_third_run, progress=False)
    assert calls == [("stsb", 0), ("stsb", 1), ("stsb", 2)]
    assert not list(tmp_path.rglob("*.tmp"))

    calls.clear()
    ran = run_experiments(experiments, store, fn=dies_on_third_run, progress=False)
    assert calls == [("stsb", 2), ("stsb", 3), ("rte", 0), ("rte", 1)] and ran == 4
    calls.clear()
    assert run_experiments(experiments, store, fn=dies_on_third_run, progress=False) == 0 and calls == []


def test_status_and_results_frame(tmp_path):
    store = ResultStore(tmp_path)
    experiments = plan("fewshot_glue", "smoke", parts=["fig8"])
    assert status("fewshot_glue", "smoke", store)["stored"].sum() == 0
    with pytest.raises(KeyError, match="fig8 LoRA .* seed 0 is not stored"):
        results_frame(experiments, store)
    assert results_frame(experiments, store, missing="skip").empty
    run_experiments(experiments, store, fn=_fake, progress=False)
    frame = results_frame(experiments, store)
    assert len(frame) == sum(len(e.seeds) for e in experiments)
    # the smoke Fig. 8 also runs compressed Deep LoRA at a rank-scaled rate
    assert set(frame["method"]) == {"LoRA", "Deep LoRA", "Deep LoRA (inner rate ∝ 1/r)"} and (frame["metric"] == "pearson").all()
    table = status("fewshot_glue", "smoke", store)
    assert (table[table.part == "fig8"]["missing"].map(len) == 0).all()


def test_cli_runs_and_lists_a_smoke_sweep(tmp_path, capsys):
    """End to end on the tiny random BERT: the chapter's own run(), listed, and a rerun that computes nothing."""
    from compressible.hub import ResourceMissingError
    from compressible.finetune.backbones import load_tokenizer

    try:
        load_tokenizer(TINY_BERT)
    except (ResourceMissingError, OSError) as error:
        pytest.skip(f"needs the MiniLM tokenizer and the GLUE mirror: {error}")
    args = ["--scale", "smoke", "--root", str(tmp_path)]
    assert main(["run", "deep_lora_subspaces", *args, "--no-progress", "--nice", "0"]) == 0
    assert "4 runs computed" in capsys.readouterr().out  # Fig. 2 (1) and App. D.2 (3)
    with pytest.raises(SystemExit):
        main(["run", "deep_lora_subspaces", *args, "--threads", "0"])
    assert "Execution.threads must be None or an int >= 1, got 0" in capsys.readouterr().err
    assert main(["run", "deep_lora_subspaces", *args, "--no-progress", "--nice", "0"]) == 0
    assert "0 runs computed" in capsys.readouterr().out
    assert main(["status", "deep_lora_subspaces", *args]) == 0
    assert "0 runs missing" in capsys.readouterr().out
    assert main(["list", "deep_lora_subspaces", *args]) == 0  # the old name of status
    assert "0 runs missing" in capsys.readouterr().out
    frame = results_frame(plan("deep_lora_subspaces", "smoke", ["d2"]), tmp_path)
    assert sorted(frame["method"]) == ["compressed", "original", "random"]
