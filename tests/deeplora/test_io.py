"""Tests of :mod:`compressible.deeplora.io`: saving and loading Deep LoRA adapters.

Facts checked: save -> load is the identity on every factor, into a fresh base model or into
existing adapters; mismatches fail with an error naming the module.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from compressible.deeplora import DeepLoRAConfig, adapter_layers, add_adapters, merge_adapters
from compressible.deeplora.io import ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, load_adapters, save_adapters

from . import tiny

# ----------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("init", ["compressed", "lora", "random", "full"])
def test_save_load_round_trip_into_fresh_base(tmp_path, init):
    """load(save(adapters)) into a fresh base gives the same factors, bit for bit, and the same outputs."""
    model, base_state = tiny.adapted("bert", init=init)
    inputs = tiny.inputs()
    expected = tiny.logits(model, inputs)
    save_adapters(model, tmp_path)
    assert (tmp_path / ADAPTER_WEIGHTS_NAME).is_file() and (tmp_path / ADAPTER_CONFIG_NAME).is_file()
    meta = json.loads((tmp_path / ADAPTER_CONFIG_NAME).read_text())
    assert meta["config"]["init"] == init
    assert set(meta["modules"]) == set(adapter_layers(model))

    fresh = tiny.fresh("bert", base_state)
    loaded = load_adapters(fresh, tmp_path)
    assert set(loaded) == set(adapter_layers(model))
    ours, theirs = adapter_layers(model), adapter_layers(fresh)
    for path, layer in ours.items():
        assert len(layer.factors) == len(theirs[path].factors)
        for a, b in zip(layer.factors, theirs[path].factors):
            assert torch.equal(a, b), path
        assert not any(p.requires_grad for p in theirs[path].base.parameters()), "base must stay frozen"
    torch.testing.assert_close(tiny.logits(fresh, inputs), expected, rtol=0, atol=0)


def test_save_writes_adapters_only(tmp_path):
    """The safetensors file holds exactly the factors (no base weight), keyed <path>.factors.<i>."""
    from safetensors.torch import load_file

    model, _ = tiny.adapted("bert")
    save_adapters(model, tmp_path)
    tensors = load_file(str(tmp_path / ADAPTER_WEIGHTS_NAME))
    expected = {f"{p}.factors.{i}" for p, layer in adapter_layers(model).items() for i in range(len(layer.factors))}
    assert set(tensors) == expected


def test_load_fills_existing_adapters(tmp_path):
    model, base_state = tiny.adapted("bert")
    save_adapters(model, tmp_path)
    other = tiny.fresh("bert", base_state)
    add_adapters(other, DeepLoRAConfig(init="compressed", rank=8, targets="attention-mlp"))
    load_adapters(other, tmp_path)
    inputs = tiny.inputs()
    torch.testing.assert_close(tiny.logits(other, inputs), tiny.logits(model, inputs), rtol=0, atol=0)
    assert all(layer.initialized for layer in adapter_layers(other).values())


@pytest.mark.parametrize(
    "rank,targets,match",
    [
        # another rank: the error names a module and both shapes
        (4, "attention-mlp", r"module 'bert\.encoder\.layer\.\d\..*factor shapes \[\[8, 32\]"),
        # other modules: the error lists the modules only in the folder
        (8, "query-value", r"only in the folder \[.*'bert\.encoder\.layer\.0\.attention\.output\.dense'"),
    ],
)
def test_load_rejects_existing_adapters_of_another_rank_or_modules(tmp_path, rank, targets, match):
    model, base_state = tiny.adapted("bert", rank=8)
    save_adapters(model, tmp_path)
    other = tiny.fresh("bert", base_state)
    add_adapters(other, DeepLoRAConfig(init="compressed", rank=rank, targets=targets))
    with pytest.raises(ValueError, match=match):
        load_adapters(other, tmp_path)


def test_load_rejects_base_with_other_shape(tmp_path):
    """A fresh base whose layer has another width: error names the module and both (out, in)."""
    model, _ = tiny.adapted("bert")
    save_adapters(model, tmp_path)
    torch.manual_seed(0)
    config = tiny.bert_config()
    config.intermediate_size = 40
    other = transformers.BertForSequenceClassification(config)
    with pytest.raises(ValueError, match=r"module 'bert\.encoder\.layer\.0\.intermediate\.dense'.*\(48, 32\).*\(40, 32\)"):
        load_adapters(other, tmp_path)
    assert not adapter_layers(other), "a failed check must not leave adapters behind"


def test_load_rejects_base_without_module(tmp_path):
    model, _ = tiny.adapted("bert", layers=2)
    save_adapters(model, tmp_path)
    torch.manual_seed(0)
    other = transformers.BertForSequenceClassification(tiny.bert_config(layers=1))
    with pytest.raises(ValueError, match=r"module 'bert\.encoder\.layer\.1\..*', which BertForSequenceClassification does not have"):
        load_adapters(other, tmp_path)


def test_load_rejects_merged_and_missing_folder(tmp_path):
    model, _ = tiny.adapted("bert")
    save_adapters(model, tmp_path / "adapter")
    merge_adapters(model)
    with pytest.raises(ValueError, match="unmerge_adapters"):
        load_adapters(model, tmp_path / "adapter")
    with pytest.raises(FileNotFoundError, match="not a Deep LoRA adapter folder"):
        load_adapters(model, tmp_path / "nowhere")


def test_save_without_adapters_fails(tmp_path):
    with pytest.raises(ValueError, match="has no Deep LoRA adapters"):
        save_adapters(tiny.make("bert"), tmp_path)
