"""Tests of :mod:`compressible.finetune.optim`: the one optimiser and the learning-rate defaults."""

import pytest
import torch
from torch import nn

from compressible.deeplora import DeepLoRAConfig, add_adapters
from compressible.finetune.optim import ADAM, ADAPTER_LR, COMPRESSED_LR, adapter_optimizer, default_lr


def _model(**config):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    add_adapters(model, DeepLoRAConfig(targets=["0", "2"], rank=2, **config))
    return model


def test_defaults_are_app_d2():
    assert (COMPRESSED_LR, ADAPTER_LR) == (1e-2, 1e-4)
    assert default_lr("compressed") == 1e-2
    assert default_lr("lora") == default_lr("random") == default_lr("full") == 1e-4
    assert ADAM == {"betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.0}
    with pytest.raises(ValueError, match=r"init must be one of .*got 'dora'"):
        default_lr("dora")


def test_adam_over_inner_outer_and_extra_groups():
    model = _model(init="compressed", gamma=0.1)
    head = nn.Parameter(torch.zeros(3))
    optimizer = adapter_optimizer(model, 1e-2, [{"params": [head], "lr": 5e-3, "name": "head"}])
    assert isinstance(optimizer, torch.optim.Adam)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert list(groups) == ["inner", "outer", "head"]
    assert groups["inner"]["lr"] == 1e-2 and groups["outer"]["lr"] == pytest.approx(1e-3)  # gamma from the config
    assert groups["head"]["params"] == [head] and groups["head"]["lr"] == 5e-3
    for g in optimizer.param_groups:
        assert (g["betas"], g["eps"], g["weight_decay"]) == (ADAM["betas"], ADAM["eps"], ADAM["weight_decay"])


def test_lora_has_one_group():
    optimizer = adapter_optimizer(_model(init="lora"), 1e-4)
    assert [g["name"] for g in optimizer.param_groups] == ["inner"] and optimizer.param_groups[0]["lr"] == 1e-4
