"""Tests of :mod:`compressible.experiments.generation` (few-shot E2E NLG, paper App. C): the plans,
resumable runs through the one :class:`~compressible.finetune.runner.Runner`, and the summary's paired
differences on hand-made runs.

Nothing here downloads: the end-to-end test uses the tiny random LLaMA and in-memory E2E rows of
``tests/finetune/tiny.py``.
"""

from __future__ import annotations

import importlib

import pytest

from compressible.experiments import generation as gen
from compressible.experiments.contract import Execution
from compressible.experiments.paired import PairedScores
from compressible.finetune.backbones import BACKBONES
from compressible.finetune.e2e import evaluation_set
from compressible.finetune import runner as runner_module
from compressible.finetune.generate import AdapterSpec, GenerationConfig
from compressible.finetune.runner import Runner
from compressible.store import ResultStore
from compressible.summaries import load_summary, save_summary

# ------------------------------------------------------------------------------------- plans


def test_paper_plan_is_app_c():
    """Building the paper-scale configs loads nothing and states App. C exactly."""
    p = gen.plan("paper")
    assert p.seeds == tuple(range(10))
    assert p.methods == [gen.VANILLA_LABEL, gen.DEEP_LABEL]
    for config in p.configs.values():
        assert config.backbone == "t5-base" and BACKBONES["t5-base"] == ("seq2seq", "google-t5/t5-base")
        assert (config.n_train, config.steps, config.batch_size) == (16, 400, 16)
        assert (config.num_beams, config.max_new_tokens) == (4, 64)
        assert (config.max_source_tokens, config.max_target_tokens) == (64, 64)
        assert config.n_eval is None and config.eval_split == "validation"
        assert config.targets == "attention-mlp"  # every dense weight of T5: q, k, v, o, wi, wo
    vanilla, deep = p.configs[gen.VANILLA_LABEL].adapter, p.configs[gen.DEEP_LABEL].adapter
    assert (vanilla.init, vanilla.depth, vanilla.rank, vanilla.lr) == ("lora", 2, 8, 1e-4)
    # compressed Deep LoRA: inner factors at 1e-2, outer at gamma * lr = the paper's 1e-4 (App. D.2)
    assert (deep.init, deep.depth, deep.rank, deep.lr, deep.gamma) == ("compressed", 3, 8, 1e-2, 1e-2)
    assert deep.gamma * deep.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("scale", ["smoke", "ci", "paper"])
def test_methods_differ_only_in_the_adapter(scale):
    configs = list(gen.plan(scale).configs.values())
    a, b = (dict(vars(c)) for c in configs)
    a.pop("adapter"), b.pop("adapter")
    assert a == b


def test_scales_use_the_intended_backbones():
    assert gen.plan("ci").configs[gen.DEEP_LABEL].backbone == "smollm2"
    assert gen.plan("smoke").configs[gen.DEEP_LABEL].backbone == "tiny-llama"
    assert gen.plan("paper").configs[gen.DEEP_LABEL].backbone == "t5-base"
    with pytest.raises(ValueError, match="'huge'"):
        gen.plan("huge")


# ------------------------------------------------------------------------------------- summary


def _run(seed, bleu, rouge, losses):
    metrics = {"bleu": bleu, "rouge1": rouge, "rouge2": rouge / 2, "rougeL": rouge}
    return {"_seed": seed, "metrics": metrics, "train_loss": losses, "trainable_parameters": 10,
            "seconds": {"train": 1.0, "eval": 1.0}}


class _EvalSet:
    mrs = ("a", "b", "c")
    references = (("x",), ("y",), ("z",))

    def __len__(self):
        return 3


def _results() -> gen.GenerationResults:
    runs = {
        gen.VANILLA_LABEL: [_run(0, 10.0, 40.0, [4.0] * 4), _run(1, 12.0, 42.0, [4.0, 4.0, 2.0, 2.0])],
        gen.DEEP_LABEL: [_run(0, 13.0, 39.0, [5.0] * 4), _run(1, 11.0, 45.0, [5.0, 5.0, 3.0, 1.0])],
    }
    return gen.GenerationResults("smoke", gen.plan("smoke"), runs, _EvalSet())


def test_summary_paired_differences_and_means():
    s = gen.summarise(_results())
    # BLEU: seed 0 13 - 10 = +3, seed 1 11 - 12 = -1 -> mean +1, Deep LoRA ahead on one seed
    bleu = s.paired["bleu"]
    assert isinstance(bleu, PairedScores) and bleu.differences == {0: 3.0, 1: -1.0}
    assert (bleu.gain, bleu.deep_wins, bleu.seeds, bleu.lora, bleu.deep) == (1.0, 1, 2, 11.0, 12.0)
    assert bleu.gain_std == pytest.approx(2.0 ** 1.5)  # std of (3, -1)
    assert s.bleu_gain == 1.0
    assert s.paired["rouge1"].differences == {0: -1.0, 1: 3.0} and s.paired["rouge2"].gain == 0.5
    assert s.vanilla["bleu"] == 11.0 and s.deep["bleu"] == 12.0 and s.deep["rougeL"] == 42.0
    assert list(s.paired) == ["bleu", "rouge1", "rouge2", "rougeL"]  # no METEOR without WordNet
    # smoke: 4 steps -> a window of max(1, 4 // 8) = 1 step
    assert s.loss_window == 1 and s.first_loss == {gen.VANILLA_LABEL: 4.0, gen.DEEP_LABEL: 5.0}
    assert s.last_loss == {gen.VANILLA_LABEL: 3.0, gen.DEEP_LABEL: 3.0}
    assert (s.backbone, s.model, s.steps, s.seeds, s.eval_mrs) == ("tiny-llama", "tiny random LLaMA", 4, 2, 3)


def test_summary_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSIBLE_RESULTS", str(tmp_path))
    s = gen.summarise(_results())
    save_summary(s)
    assert load_summary(gen.GenerationSummary) == s


def test_tables():
    results = _results()
    table = gen.tables.summary_table(gen.metrics_frame(results.runs))
    assert table.loc[gen.VANILLA_LABEL, "bleu"] == "11.00 ± 1.41"
    paired = gen.tables.paired_table(gen.summarise(results))
    assert paired["seed"].tolist() == [0, 1] and paired["BLEU"].tolist() == [3.0, -1.0]
    assert list(paired.columns) == ["seed", "BLEU", "ROUGE-1", "ROUGE-2", "ROUGE-L"]


# ------------------------------------------------------------------------------------ end to end


def _tiny_runner():
    from finetune.tiny import backbone as tiny_backbone  # tests/ is on the path
    from finetune.tiny import rows as tiny_rows

    rows = tiny_rows()
    runner = Runner(progress=False)
    runner.backbones[("tiny-llama", None)] = tiny_backbone("causal")
    runner.splits = {"train": rows, "validation": rows}
    return runner, rows


def _tiny_configs():
    return {
        label: GenerationConfig(backbone="tiny-llama", adapter=AdapterSpec(label, init, depth, rank=4, lr=1e-2),
                                n_train=4, steps=2, batch_size=4, num_beams=1, max_new_tokens=3, n_eval=3)
        for label, init, depth in ((gen.VANILLA_LABEL, "lora", 2), (gen.DEEP_LABEL, "compressed", 3))
    }


def test_runs_recompute_nothing_that_is_stored(tmp_path, monkeypatch):
    """run() computes through one Runner (backbone and data loaded once) and recomputes nothing stored."""
    runner, rows = _tiny_runner()
    run_module = importlib.import_module("compressible.experiments.generation.run")
    monkeypatch.setattr(run_module, "Runner", lambda *args, **kwargs: runner)  # the tiny backbone and rows
    calls = []
    real = runner_module.run_generation

    def counting(config, seed, *args, **kwargs):
        calls.append(seed)
        return real(config, seed, *args, **kwargs)

    monkeypatch.setattr(runner_module, "run_generation", counting)
    p = gen.GenerationPlan("smoke", _tiny_configs(), (0, 1))
    store = ResultStore(tmp_path)
    first = gen.run(p, store, execution=Execution(progress=False, workers=1), scale="smoke")
    assert len(calls) == 4 and first.computed == 4
    second = gen.run(p, store, execution=Execution(progress=False, workers=1), scale="smoke")
    assert len(calls) == 4 and second.computed == 0  # nothing recomputed
    assert second.runs == first.runs and second.scale == "smoke"
    frame = gen.metrics_frame(second.runs)
    summary = gen.summarise(second)
    by = frame.set_index(["method", "seed"])
    assert summary.paired["bleu"].differences[0] == pytest.approx(
        by.loc[(gen.DEEP_LABEL, 0), "bleu"] - by.loc[(gen.VANILLA_LABEL, 0), "bleu"])
    assert list(second.eval_set.mrs) == list(evaluation_set(rows, 3).mrs)
    table = gen.tables.examples_table(second.runs, second.eval_set, seed=0, n=2)
    assert list(table.columns) == ["MR", gen.VANILLA_LABEL, gen.DEEP_LABEL, "a human reference"]
    with pytest.raises(ValueError, match="none of this chapter's PLANS"):
        gen.run(p, store)


@pytest.mark.slow
def test_runs_side_by_side_give_the_numbers_of_one_after_another(tmp_path):
    import torch

    assert gen.plan("ci").workers == 2 and gen.plan("smoke").workers == 2 and gen.plan("paper").workers == 1
    side_by_side = gen.run("smoke", ResultStore(tmp_path / "processes"), execution=Execution(progress=False))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each worker process uses
    try:
        in_turn = gen.run("smoke", ResultStore(tmp_path / "serial"), execution=Execution(progress=False, workers=1))
    finally:
        torch.set_num_threads(threads)
    a, b = gen.metrics_frame(side_by_side.runs), gen.metrics_frame(in_turn.runs)
    numbers = [c for c in a.columns if "time" not in c and "seconds" not in c]
    assert len(a) == 4 and a[numbers].equals(b[numbers])
    with pytest.raises(ValueError, match="workers must be an int >= 1, got 0"):
        import dataclasses

        dataclasses.replace(gen.plan("smoke"), workers=0)
