"""Tests of :mod:`compressible.finetune.generate` (few-shot E2E NLG, paper App. C).

Nothing here downloads: the data are small in-memory stand-ins with the E2E columns and the
models are tiny random LLaMA / T5 configs with a word-level tokenizer. The one test that loads
the real SmolLM2 GGUF runs only when ``COMPRESSIBLE_SMOLLM`` is set and is marked slow.
"""

from __future__ import annotations

import os

import datasets
import numpy as np
import pytest
import torch

from compressible.finetune import generate as gen
from compressible.finetune.generate import (
    AdapterSpec,
    Backbone,
    GenerationConfig,
    GenerationExperiment,
    evaluation_set,
    few_shot_indices,
    generation_metrics,
    paired_differences,
    metrics_frame,
    protocol,
    run_generation,
    tiny_model,
    training_batch,
    word_tokenizer,
)
from compressible.hub import ResourceMissingError
from compressible.store import ResultStore

NAMES = ["The Eagle", "Aromi", "Cotto", "The Vaults", "Zizzi", "Loch Fyne"]
FOODS = ["Chinese", "English", "Italian", "Japanese"]


def _rows(n: int = 48, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    mrs, refs = [], []
    for i in range(n):
        name, food = NAMES[i % len(NAMES)], FOODS[rng.integers(len(FOODS))]
        mr = f"name[{name}], food[{food}]"
        mrs.append(mr)
        refs.append(f"{name} serves {food} food ." if i % 3 else f"{name} is a place with {food} food near the river .")
    return datasets.Dataset.from_dict({"meaning_representation": mrs, "human_reference": refs})


def _backbone(kind: str) -> Backbone:
    rows = _rows()
    tok = word_tokenizer(list(rows["meaning_representation"]) + list(rows["human_reference"]))
    model = tiny_model(kind, len(tok), seed=0, hidden=32, layers=1)
    name = "tiny-llama" if kind == "causal" else "tiny-t5"
    return Backbone(name, kind, model, tok, tok.eos_token_id, tok.pad_token_id, False, "test")


# ------------------------------------------------------------------------------------- protocols


def test_paper_protocol_is_app_c():
    """Building the paper-scale configs loads nothing and states App. C exactly."""
    proto = protocol("paper")
    assert proto.seeds == tuple(range(10))
    assert proto.methods == [gen.VANILLA_LABEL, gen.DEEP_LABEL]
    for config in proto.configs.values():
        assert config.backbone == "t5-base" and gen.BACKBONES["t5-base"] == ("seq2seq", "google-t5/t5-base")
        assert (config.n_train, config.steps, config.batch_size) == (16, 400, 16)
        assert (config.num_beams, config.max_new_tokens) == (4, 64)
        assert (config.max_source_tokens, config.max_target_tokens) == (64, 64)
        assert config.n_eval is None and config.eval_split == "validation"
        assert config.targets == "attention-mlp"  # every dense weight of T5: q, k, v, o, wi, wo
    vanilla, deep = proto.configs[gen.VANILLA_LABEL].adapter, proto.configs[gen.DEEP_LABEL].adapter
    assert (vanilla.init, vanilla.depth, vanilla.rank, vanilla.lr) == ("lora", 2, 8, 1e-4)
    # compressed Deep LoRA: inner factors at 1e-2, outer at gamma * lr = the paper's 1e-4 (App. D.2)
    assert (deep.init, deep.depth, deep.rank, deep.lr, deep.gamma) == ("compressed", 3, 8, 1e-2, 1e-2)
    assert deep.gamma * deep.lr == pytest.approx(1e-4)


@pytest.mark.parametrize("scale", ["smoke", "ci", "paper"])
def test_methods_differ_only_in_the_adapter(scale):
    configs = list(protocol(scale).configs.values())
    a, b = (dict(vars(c)) for c in configs)
    a.pop("adapter"), b.pop("adapter")
    assert a == b


def test_scales_use_the_intended_backbones():
    assert protocol("ci").configs[gen.DEEP_LABEL].backbone == "smollm2"
    assert protocol("smoke").configs[gen.DEEP_LABEL].backbone == "tiny-llama"
    with pytest.raises(ValueError, match="'huge'"):
        protocol("huge")


def test_config_errors_name_the_bad_value():
    spec = AdapterSpec("x", "lora", 2)
    with pytest.raises(ValueError, match="'gpt-5'"):
        GenerationConfig(backbone="gpt-5", adapter=spec)
    with pytest.raises(ValueError, match="batch_size 32 exceeds n_train 16"):
        GenerationConfig(backbone="tiny-llama", adapter=spec, batch_size=32)
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        GenerationConfig(backbone="tiny-llama", adapter=spec, steps=0)
    with pytest.raises(ValueError, match="'dora'"):
        AdapterSpec("x", "dora", 2)
    with pytest.raises(ValueError, match="lr must be positive"):
        AdapterSpec("x", "lora", 2, lr=-1.0)


# ------------------------------------------------------------------------------------------ data


def test_evaluation_set_keeps_every_reference_of_an_mr():
    rows = _rows()
    full = evaluation_set(rows)
    assert len(full) == len(set(rows["meaning_representation"]))
    for mr, refs in zip(full.mrs, full.references):
        expected = [r.strip() for m, r in zip(rows["meaning_representation"], rows["human_reference"]) if m == mr]
        assert list(refs) == expected
    subset = evaluation_set(rows, n_eval=5)
    assert len(subset) == 5 and subset == evaluation_set(rows, n_eval=5)  # fixed subset
    assert set(subset.mrs) <= set(full.mrs)
    with pytest.raises(ValueError, match="n_eval 999 exceeds"):
        evaluation_set(rows, n_eval=999)


def test_few_shot_sampling_is_seeded_filtered_and_with_replacement():
    rows = _rows(n=40)
    tok = _backbone("causal").tokenizer
    limit = 6  # the long references ("... near the river .") have more than 6 tokens
    picks = few_shot_indices(rows, tok, 200, seed=3, max_source_tokens=64, max_target_tokens=limit)
    assert np.array_equal(picks, few_shot_indices(rows, tok, 200, seed=3, max_source_tokens=64, max_target_tokens=limit))
    assert not np.array_equal(picks[:16], few_shot_indices(rows, tok, 16, seed=4, max_source_tokens=64,
                                                           max_target_tokens=limit))
    lengths = [len(tok(rows[int(i)]["human_reference"])["input_ids"]) for i in picks]
    assert max(lengths) <= limit
    eligible = {i for i in range(len(rows)) if len(tok(rows[i]["human_reference"])["input_ids"]) <= limit}
    assert set(picks.tolist()) <= eligible and len(set(picks.tolist())) < len(picks)  # repeats: with replacement
    with pytest.raises(ValueError, match="raise max_source_tokens"):
        few_shot_indices(rows, tok, 4, seed=0, max_source_tokens=1, max_target_tokens=1, max_draws=50)


def test_causal_batch_puts_the_loss_on_reference_tokens_only():
    backbone = _backbone("causal")
    pairs = [("name[Aromi], food[Chinese]", "Aromi serves Chinese food ."), ("name[Cotto], food[English]", "Cotto .")]
    batch = training_batch(backbone, pairs)
    for i, (mr, ref) in enumerate(pairs):
        prompt = gen.generation_prompts(backbone, [mr])[0]
        target = backbone.tokenizer(" " + ref, add_special_tokens=False)["input_ids"] + [backbone.eos_token_id]
        row, labels = batch["input_ids"][i], batch["labels"][i]
        assert row[: len(prompt)].tolist() == prompt
        assert (labels[: len(prompt)] == -100).all()
        assert labels[len(prompt): len(prompt) + len(target)].tolist() == target
        assert (labels[len(prompt) + len(target):] == -100).all()
        assert batch["attention_mask"][i].sum() == len(prompt) + len(target)


def test_seq2seq_batch_has_source_and_target():
    backbone = _backbone("seq2seq")
    batch = training_batch(backbone, [("name[Aromi], food[Chinese]", "Aromi serves Chinese food ."), ("name[Cotto]", "Cotto .")])
    assert batch["labels"][1, -1] == -100  # shorter target padded with -100
    assert batch["labels"][0, -1] == backbone.eos_token_id  # targets end in </s>
    assert batch["input_ids"].shape[0] == batch["labels"].shape[0] == 2


# --------------------------------------------------------------------------------------- metrics


def test_metrics_are_multi_reference():
    refs = [["the cat sat on the mat .", "a cat was sitting on the mat ."], ["the dog barks loudly ."]]
    perfect = generation_metrics(["the cat sat on the mat .", "the dog barks loudly ."], refs)
    assert perfect["bleu"] == pytest.approx(100.0)
    assert perfect["rouge1"] == perfect["rouge2"] == perfect["rougeL"] == pytest.approx(100.0)
    # matching the *second* reference of the first MR is as good as matching the first (best over refs)
    second = generation_metrics(["a cat was sitting on the mat .", "the dog barks loudly ."], refs)
    assert second["rougeL"] == pytest.approx(100.0) and second["bleu"] == pytest.approx(100.0)
    worse = generation_metrics(["dog mat", "cat"], refs)
    assert worse["bleu"] < 10 and worse["rouge1"] < perfect["rouge1"]
    assert ("meteor" in perfect) == gen.meteor_available()
    with pytest.raises(ValueError, match="2 predictions but 1"):
        generation_metrics(["a", "b"], [["a"]])


# ------------------------------------------------------------------------------------ end to end


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
@pytest.mark.parametrize("init,depth", [("lora", 2), ("compressed", 3)])
def test_run_generation_end_to_end(kind, init, depth):
    backbone = _backbone(kind)
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    rows = _rows()
    data = gen._Data(rows, evaluation_set(rows, n_eval=4))
    config = GenerationConfig(
        backbone=backbone.name, adapter=AdapterSpec("m", init, depth, rank=4, lr=1e-2, gamma=1e-1),
        n_train=8, steps=6, batch_size=4, num_beams=2 if kind == "seq2seq" else 1, max_new_tokens=5, n_eval=4,
    )
    result = run_generation(config, 0, backbone, data)
    assert len(result["predictions"]) == 4 and result["mrs"] == list(data.eval_set.mrs)
    assert len(result["train_loss"]) == 6 and all(np.isfinite(result["train_loss"]))
    assert set(gen.METRICS) <= set(result["metrics"])
    assert result["trainable_parameters"] > 0 and result["adapted_modules"] > 0
    # the base model is never trained: runs work on a copy
    for key, value in backbone.model.state_dict().items():
        assert torch.equal(value, before[key]), key
    # same seed, same few-shot set and same result
    again = run_generation(config, 0, backbone, data)
    assert again["train_indices"] == result["train_indices"]
    assert again["predictions"] == result["predictions"]


def test_experiment_recomputes_nothing_that_is_stored(tmp_path, monkeypatch):
    backbone = _backbone("causal")
    rows = _rows()
    experiment = GenerationExperiment(ResultStore(tmp_path), progress=False)
    experiment._backbones["tiny-llama"] = backbone
    experiment._splits = {"train": rows, "validation": rows}
    calls = []
    real = gen.run_generation

    def counting(config, seed, *args, **kwargs):
        calls.append(seed)
        return real(config, seed, *args, **kwargs)

    monkeypatch.setattr(gen, "run_generation", counting)
    configs = {
        label: GenerationConfig(backbone="tiny-llama", adapter=AdapterSpec(label, init, depth, rank=4, lr=1e-2),
                                n_train=4, steps=2, batch_size=4, num_beams=1, max_new_tokens=3, n_eval=3)
        for label, init, depth in (("vanilla LoRA", "lora", 2), ("Deep LoRA", "compressed", 3))
    }
    proto = gen.GenerationProtocol("smoke", configs, (0, 1))
    first = experiment.run_protocol(proto)
    assert len(calls) == 4
    second = experiment.run_protocol(proto)
    assert len(calls) == 4  # nothing recomputed
    assert second == first
    frame = metrics_frame(second)
    assert len(frame) == 4
    diff = paired_differences(frame, "Deep LoRA", "vanilla LoRA")
    assert list(diff["seed"]) == [0, 1]
    expected = frame.set_index(["method", "seed"]).loc[("Deep LoRA", 0), "bleu"] - frame.set_index(
        ["method", "seed"]).loc[("vanilla LoRA", 0), "bleu"]
    assert diff.loc[0, "bleu"] == pytest.approx(expected)
    table = gen.examples_table(second, experiment.data(configs["Deep LoRA"]).eval_set, seed=0, n=2)
    assert list(table.columns) == ["MR", "vanilla LoRA", "Deep LoRA", "a human reference"]


# ------------------------------------------------------------------------------------- SmolLM2


def test_smollm_missing_gguf_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSIBLE_SMOLLM", str(tmp_path))
    with pytest.raises(ResourceMissingError, match="COMPRESSIBLE_SMOLLM=.*SmolLM2-135M-Instruct.Q4_1.gguf"):
        gen.load_smollm()


def test_smollm_offline_without_variable_names_it(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPRESSIBLE_SMOLLM", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ResourceMissingError, match="set COMPRESSIBLE_SMOLLM"):
        gen.load_smollm()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("COMPRESSIBLE_SMOLLM"), reason="COMPRESSIBLE_SMOLLM is not set")
def test_smollm_gguf_loads_as_a_float_llama():
    backbone = gen.load_backbone("smollm2")
    assert type(backbone.model).__name__ == "LlamaForCausalLM"
    assert backbone.model.config.num_hidden_layers == 30
    assert next(backbone.model.parameters()).dtype == torch.float32
    assert backbone.tokenizer.convert_ids_to_tokens(backbone.eos_token_id) == "<|im_end|>"
    assert backbone.chat
