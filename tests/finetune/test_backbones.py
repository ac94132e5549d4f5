"""Tests of :mod:`compressible.finetune.backbones` and :mod:`compressible.finetune.smollm`: the registry, the
loader's errors, tiny models, the dequantised SmolLM2 cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from compressible.finetune import smollm
from compressible.finetune.backbones import BACKBONES, TINY_BERT, backbone_spec, load_backbone, tiny_model
from compressible.hub import ResourceMissingError


def test_registry_names_every_backbone_of_the_experiments():
    assert BACKBONES["bert-base-cased"] == ("classifier", "google-bert/bert-base-cased")  # the paper's (Sec. 4)
    assert BACKBONES["t5-base"] == ("seq2seq", "google-t5/t5-base")  # the paper's (App. C)
    assert BACKBONES["all-MiniLM-L6-v2"].source == "sentence-transformers/all-MiniLM-L6-v2"
    assert BACKBONES[TINY_BERT].kind == "classifier" and BACKBONES["smollm2"].kind == "causal"
    assert {spec.kind for spec in BACKBONES.values()} == {"classifier", "seq2seq", "causal"}
    # any other name is a classifier hub id or folder
    assert backbone_spec("org/some-encoder") == ("classifier", "org/some-encoder")
    with pytest.raises(ValueError, match="backbone must be one of"):
        backbone_spec("")


def test_loader_checks_labels_against_the_kind():
    with pytest.raises(ValueError, match="classifier backbone 'bert-base-cased' needs labels"):
        load_backbone("bert-base-cased")
    with pytest.raises(ValueError, match="labels=2 only applies to classifier backbones, 'tiny-llama' is causal"):
        load_backbone("tiny-llama", labels=2)


def test_tiny_model_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = tiny_model("causal", 50, seed=1, hidden=16, layers=1), tiny_model("causal", 50, seed=1, hidden=16, layers=1)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="kind must be 'causal' or 'seq2seq', got 'encoder'"):
        tiny_model("encoder", 50)


def test_smollm_missing_gguf_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSIBLE_SMOLLM", str(tmp_path))
    with pytest.raises(ResourceMissingError, match="COMPRESSIBLE_SMOLLM=.*SmolLM2-135M-Instruct.Q4_1.gguf"):
        smollm.load_smollm()


def test_smollm_source_names_no_folder(tmp_path, monkeypatch):
    """What records keep as SmolLM2's source is the same on every machine: the file and hub id, not the folder."""
    monkeypatch.setenv("COMPRESSIBLE_SMOLLM", str(tmp_path))
    assert smollm.smollm_source() == "SmolLM2-135M-Instruct.Q4_1.gguf (4-bit GGUF of HuggingFaceTB/SmolLM2-135M-Instruct)"
    monkeypatch.delenv("COMPRESSIBLE_SMOLLM")
    assert smollm.smollm_source() == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_smollm_offline_without_variable_names_it(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPRESSIBLE_SMOLLM", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ResourceMissingError, match="set COMPRESSIBLE_SMOLLM"):
        smollm.load_smollm()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("COMPRESSIBLE_SMOLLM"), reason="COMPRESSIBLE_SMOLLM is not set")
def test_smollm_gguf_loads_as_a_float_llama():
    backbone = load_backbone("smollm2")
    assert type(backbone.model).__name__ == "LlamaForCausalLM"
    assert backbone.model.config.num_hidden_layers == 30
    assert next(backbone.model.parameters()).dtype == torch.float32
    assert backbone.tokenizer.convert_ids_to_tokens(backbone.eos_token_id) == "<|im_end|>"
    assert backbone.chat
    assert backbone.source == f"{smollm.SMOLLM_GGUF} (4-bit GGUF of {smollm.SMOLLM_HUB_ID})"  # no folder
    # the dequantised model is cached (written on a miss, here or by an earlier run): a second load reads the
    # cache, with the same weights, tokenizer and chat template
    gguf = Path(os.environ["COMPRESSIBLE_SMOLLM"]) / smollm.SMOLLM_GGUF
    assert smollm.dequantised_cache(gguf, torch.float32).is_dir()
    model, tokenizer = smollm.load_smollm()
    assert model.state_dict().keys() == backbone.model.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), backbone.model.state_dict().values()))
    text = "name[The Eagle], eatType[coffee shop] <|im_end|>"
    assert tokenizer(text)["input_ids"] == backbone.tokenizer(text)["input_ids"]
    assert tokenizer.chat_template == backbone.tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    assert model.name_or_path == tokenizer.name_or_path == os.environ["COMPRESSIBLE_SMOLLM"]


def test_dequantised_cache_names_the_file_version_and_writes_atomically(tmp_path, monkeypatch):
    """The cache folder carries the file's size, modification time and the dtype; ``off`` turns it off; a
    tiny LLaMA written through it reloads with equal weights, and a second writer keeps the first's folder."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"1234")
    monkeypatch.setenv(smollm.CACHE_VARIABLE, str(tmp_path / "cache"))
    first = smollm.dequantised_cache(gguf, torch.float32)
    assert first.parent == tmp_path / "cache" / "dequantised" and first.name.startswith("model-4-")
    assert first.name.endswith("-float32") and smollm.dequantised_cache(gguf, torch.bfloat16).name.endswith("-bfloat16")
    gguf.write_bytes(b"12345")
    assert smollm.dequantised_cache(gguf, torch.float32) != first  # another size: read afresh
    monkeypatch.setenv(smollm.CACHE_VARIABLE, "off")
    assert smollm.dequantised_cache(gguf, torch.float32) is None

    model = LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")))
    smollm._save_dequantised(model, tokenizer, first)
    again = AutoModelForCausalLM.from_pretrained(first)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    marker = first / "config.json"
    written = marker.stat().st_mtime_ns
    smollm._save_dequantised(LlamaForCausalLM(model.config), tokenizer, first)  # the folder exists: kept as it is
    assert marker.stat().st_mtime_ns == written and not [p for p in first.parent.iterdir() if p.name.startswith(".")]
