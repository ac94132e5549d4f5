"""Tests of :mod:`compressible.finetune.generate` (few-shot E2E NLG, paper App. C).

Nothing here downloads: the data are small in-memory stand-ins with the E2E columns and the
models are tiny random LLaMA / T5 configs with a word-level tokenizer (``tiny.py``).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from compressible.deeplora import DeepLoRAConfig
from compressible.finetune.e2e import evaluation_set
from compressible.finetune.generate import AdapterSpec, GenerationConfig, run_generation
from compressible.finetune.metrics import NLG_METRICS
from compressible.finetune.optim import ADAPTER_LR

from .tiny import backbone as _backbone
from .tiny import rows as _rows


def test_adapter_spec_defaults_come_from_their_one_home():
    spec = AdapterSpec("x", "compressed", 3)
    assert (spec.lr, spec.gamma, spec.epsilon) == (ADAPTER_LR, DeepLoRAConfig().gamma, DeepLoRAConfig().epsilon)
    assert spec.deeplora_config("attention-mlp", seed=5) == DeepLoRAConfig(init="compressed", depth=3, seed=5)
    config = GenerationConfig(backbone="t5-base", adapter=spec)
    assert config.kind == "seq2seq" and GenerationConfig(backbone="smollm2", adapter=spec).kind == "causal"


def test_config_errors_name_the_bad_value():
    spec = AdapterSpec("x", "lora", 2)
    with pytest.raises(ValueError, match="'gpt-5'"):
        GenerationConfig(backbone="gpt-5", adapter=spec)
    with pytest.raises(ValueError, match=r"backbone must be one of \('t5-base', 'smollm2', .*got 'bert-base-cased'"):
        GenerationConfig(backbone="bert-base-cased", adapter=spec)  # a classifier cannot generate
    with pytest.raises(ValueError, match="batch_size 32 exceeds n_train 16"):
        GenerationConfig(backbone="tiny-llama", adapter=spec, batch_size=32)
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        GenerationConfig(backbone="tiny-llama", adapter=spec, steps=0)
    with pytest.raises(ValueError, match="'dora'"):
        AdapterSpec("x", "dora", 2)
    with pytest.raises(ValueError, match="lr must be positive"):
        AdapterSpec("x", "lora", 2, lr=-1.0)


# ------------------------------------------------------------------------------------ end to end


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
@pytest.mark.parametrize("init,depth", [("lora", 2), ("compressed", 3)])
def test_run_generation_end_to_end(kind, init, depth):
    backbone = _backbone(kind)
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    rows = _rows()
    data = SimpleNamespace(train_rows=rows, eval_set=evaluation_set(rows, n_eval=4))
    config = GenerationConfig(
        backbone=backbone.name, adapter=AdapterSpec("m", init, depth, rank=4, lr=1e-2, gamma=1e-1),
        n_train=8, steps=6, batch_size=4, num_beams=2 if kind == "seq2seq" else 1, max_new_tokens=5, n_eval=4,
    )
    result = run_generation(config, 0, backbone, data)
    assert len(result["predictions"]) == 4 and result["mrs"] == list(data.eval_set.mrs)
    assert len(result["train_loss"]) == 6 and all(np.isfinite(result["train_loss"]))
    assert set(NLG_METRICS) <= set(result["metrics"])
    assert result["trainable_parameters"] > 0 and result["adapted_modules"] > 0
    # the base model is never trained: runs work on a copy
    for key, value in backbone.model.state_dict().items():
        assert torch.equal(value, before[key]), key
    # same seed, same few-shot set and same result
    again = run_generation(config, 0, backbone, data)
    assert again["train_indices"] == result["train_indices"]
    assert again["predictions"] == result["predictions"]


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_bf16_autocast_training_matches_float32_to_bf16_precision(kind):
    """``autocast="bf16"`` runs the training forward under bf16 autocast: the first step's loss is the float32
    one to bf16 precision but not bit for bit, every step's loss is a finite float, and the config refuses
    an unknown mode naming it."""
    backbone = _backbone(kind)
    rows = _rows()
    data = SimpleNamespace(train_rows=rows, eval_set=evaluation_set(rows, n_eval=2))
    config = GenerationConfig(backbone=backbone.name, adapter=AdapterSpec("m", "lora", 2, rank=4, lr=1e-2),
                              n_train=8, steps=3, batch_size=4, num_beams=1, max_new_tokens=3, n_eval=2)
    float32 = run_generation(config, 0, backbone, data)["train_loss"]
    bf16 = run_generation(dataclasses.replace(config, autocast="bf16"), 0, backbone, data)["train_loss"]
    assert len(bf16) == 3 and all(np.isfinite(bf16))
    assert bf16[0] != float32[0] and abs(bf16[0] - float32[0]) < 2e-2 * abs(float32[0])
    with pytest.raises(ValueError, match=r"autocast must be one of \('off', 'bf16', 'auto'\), got 'fp16'"):
        dataclasses.replace(config, autocast="fp16")
