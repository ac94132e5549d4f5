"""Tests of :mod:`compressible.deeplora.peft`: export of Deep LoRA adapters as PEFT LoRA.

Facts checked: a PEFT LoRA export has ``lora_B lora_A = ΔW`` (scaling included, PEFT's scaling 1),
so ``PeftModel.from_pretrained(fresh_base, folder)`` reproduces our outputs to 1e-5, for BERT
(nn.Linear, classification head), GPT-2 (transformers Conv1D) and LLaMA. Per-layer ranks reach
PEFT through ``rank_pattern`` keys that match exactly one module, so ``layer.1.`` never matches
``layer.11.`` under PEFT's own matching rule.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

peft = pytest.importorskip("peft")

from compressible.deeplora import (  # noqa: E402
    DeepLoRAConfig,
    adapter_layers,
    add_adapters,
    compress_from_batch,
    numerical_rank,
)
from compressible.deeplora.peft import export_peft  # noqa: E402

from . import tiny  # noqa: E402

# ----------------------------------------------------------------------------- export to PEFT


def _peft_logits(kind: str, base_state, folder, inputs, **model_kwargs) -> tuple[torch.Tensor, nn.Module]:
    fresh = tiny.fresh(kind, base_state, **model_kwargs)
    peft_model = peft.PeftModel.from_pretrained(fresh, str(folder)).eval()
    return tiny.logits(peft_model, inputs), peft_model


@pytest.mark.parametrize("kind", ["bert", "gpt2", "llama"])
def test_export_peft_reproduces_outputs(tmp_path, kind):
    """PeftModel.from_pretrained(fresh base, export) computes our outputs to 1e-5."""
    model, base_state = tiny.adapted(kind)
    inputs = tiny.inputs()
    ours = tiny.logits(model, inputs)
    plain = tiny.logits(tiny.fresh(kind, base_state), inputs)
    assert (ours - plain).abs().max() > 1e-2, "the adapters must change the outputs for the test to mean anything"

    export = export_peft(model, tmp_path, base_model_name_or_path="tiny-" + kind)
    theirs, peft_model = _peft_logits(kind, base_state, tmp_path, inputs)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)

    config = json.loads((tmp_path / "adapter_config.json").read_text())
    layers = adapter_layers(model)
    assert config["peft_type"] == "LORA"
    assert config["r"] == config["lora_alpha"] == 8
    assert config["rank_pattern"] == {} and config["alpha_pattern"] == {}
    assert set(config["target_modules"]) == set(layers)
    assert config["base_model_name_or_path"] == "tiny-" + kind
    assert config["task_type"] == {"bert": "SEQ_CLS", "gpt2": "CAUSAL_LM", "llama": "CAUSAL_LM"}[kind]
    assert export.ranks == {path: 8 for path in layers}
    assert max(export.relative_errors.values()) < 1e-6
    wrapped = {name.removeprefix("base_model.model.") for name, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == set(layers)
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.scaling:
            assert module.scaling["default"] == 1.0, name


def test_export_peft_file_layout(tmp_path):
    """Standard PEFT keys base_model.model.<path>.lora_{A,B}.weight with A (r, n), B (m, r); ΔW = B A."""
    from safetensors.torch import load_file

    model, _ = tiny.adapted("bert")
    export_peft(model, tmp_path)
    tensors = load_file(str(tmp_path / "adapter_model.safetensors"))
    layers = adapter_layers(model)
    for path, layer in layers.items():
        a = tensors[f"base_model.model.{path}.lora_A.weight"]
        b = tensors[f"base_model.model.{path}.lora_B.weight"]
        assert a.shape == (8, layer.in_features) and b.shape == (layer.out_features, 8)
        torch.testing.assert_close(b @ a, layer.delta_weight(), rtol=1e-5, atol=1e-6)
    heads = {k for k in tensors if ".lora_" not in k}
    assert heads == {"base_model.model.classifier.weight", "base_model.model.classifier.bias"}


def test_export_peft_carries_the_random_head(tmp_path):
    """The classifier stays at its random init in Deep LoRA; a fresh base draws another one, so the
    export must carry it (PEFT's modules_to_save) for the outputs to match."""
    model, base_state = tiny.adapted("bert")
    inputs = tiny.inputs()
    head_free = {k: v for k, v in base_state.items() if not k.startswith("classifier.")}
    fresh = tiny.make("bert", seed=321)
    fresh.load_state_dict(head_free, strict=False)
    assert not torch.equal(fresh.classifier.weight, model.classifier.weight)
    export_peft(model, tmp_path)
    peft_model = peft.PeftModel.from_pretrained(fresh, str(tmp_path)).eval()
    torch.testing.assert_close(tiny.logits(peft_model, inputs), tiny.logits(model, inputs), rtol=0, atol=1e-5)


@pytest.mark.parametrize("init", ["lora", "random"])
def test_export_peft_other_narrow_variants_exact(tmp_path, init):
    model, base_state = tiny.adapted("bert", init=init)
    inputs = tiny.inputs()
    export = export_peft(model, tmp_path)
    assert set(export.ranks.values()) == {8} and set(export.numerical_ranks.values()) == {None}
    theirs, _ = _peft_logits("bert", base_state, tmp_path, inputs)
    torch.testing.assert_close(theirs, tiny.logits(model, inputs), rtol=0, atol=1e-5)


def _train_full_width(kind: str = "bert", steps: int = 5):
    """A full-width adapter after a few Adam steps: ΔW = low-rank update + an ε³-sized remainder."""
    model = tiny.make(kind)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    add_adapters(model, DeepLoRAConfig(init="full", targets="attention-mlp"))
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=3e-2)
    batch = tiny.batch(kind)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        model(**batch).loss.backward()
        optimiser.step()
    return model.eval(), base_state


def test_export_peft_full_width_via_svd(tmp_path):
    """Full width: exact export by SVD at rank min(m, n); numerical truncation keeps the outputs."""
    model, base_state = _train_full_width()
    inputs = tiny.inputs()
    ours = tiny.logits(model, inputs)
    layers = adapter_layers(model)

    exact = export_peft(model, tmp_path / "exact")
    assert exact.ranks == {p: min(l.in_features, l.out_features) for p, l in layers.items()}
    theirs, _ = _peft_logits("bert", base_state, tmp_path / "exact", inputs)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)

    truncated = export_peft(model, tmp_path / "numerical", truncate_rank="numerical")
    for path, layer in layers.items():
        rank = numerical_rank(layer.delta_weight(), rule="deep", max_rank=min(layer.in_features, layer.out_features))
        assert truncated.numerical_ranks[path] == rank and truncated.ranks[path] == max(1, rank)
        assert truncated.ranks[path] < min(layer.in_features, layer.out_features), path
    theirs, peft_model = _peft_logits("bert", base_state, tmp_path / "numerical", inputs)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A"):
            path = name.removeprefix("base_model.model.")
            assert module.lora_A["default"].weight.shape[0] == truncated.ranks[path]
            assert module.scaling["default"] == 1.0


def test_export_peft_fixed_truncation(tmp_path):
    """truncate_rank=k: rank min(k, m, n) everywhere and the best rank-k approximation (Eckart-Young)."""
    model, _ = _train_full_width()
    export = export_peft(model, tmp_path, truncate_rank=2)
    layers = adapter_layers(model)
    assert set(export.ranks.values()) == {2}
    for path, layer in layers.items():
        s = torch.linalg.svdvals(layer.delta_weight().detach().double())
        optimal = float(s[2:].norm() / s.norm())
        assert export.relative_errors[path] == pytest.approx(optimal, rel=1e-3, abs=1e-6)


def test_rank_pattern_keys_match_one_module_each(tmp_path):
    """12 layers, ranks 2 at layer 1 and 3 at layer 11: PEFT must give each module its own rank
    (a key for 'layer.1.' must not also match 'layer.11.'), checked both with PEFT's matching
    function and by the shapes PEFT actually builds."""
    from peft.utils.other import get_pattern_key

    model = tiny.make("bert", layers=12)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    add_adapters(model, DeepLoRAConfig(init="random", rank=8, targets="attention-mlp"))
    tiny.perturb(model)
    layers = adapter_layers(model)
    wanted = {}
    with torch.no_grad():
        for path, layer in layers.items():
            rank = 2 if ".layer.1." in path else 3 if ".layer.11." in path else 8
            layer.factors[0][rank:] = 0  # ΔW = F_K ⋯ F_2 F_1 has rank `rank` now
            wanted[path] = rank
    inputs = tiny.inputs()
    export = export_peft(model, tmp_path, truncate_rank="numerical")
    assert export.ranks == wanted

    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["r"] == config["lora_alpha"] == 8
    assert len(config["rank_pattern"]) == 12 and config["alpha_pattern"] == config["rank_pattern"]
    keys = list(config["rank_pattern"])
    for path, rank in wanted.items():
        key = get_pattern_key(keys, path)
        assert config["rank_pattern"].get(key, config["r"]) == rank, (path, key)
        assert config["alpha_pattern"].get(key, config["lora_alpha"]) == rank, (path, key)

    theirs, peft_model = _peft_logits("bert", base_state, tmp_path, inputs, layers=12)
    torch.testing.assert_close(theirs, tiny.logits(model, inputs), rtol=0, atol=1e-5)
    built = {
        name.removeprefix("base_model.model."): module.lora_A["default"].weight.shape[0]
        for name, module in peft_model.named_modules()
        if hasattr(module, "lora_A")
    }
    assert built == wanted


def test_numerically_zero_layer_exports_rank_one(tmp_path):
    """A compressed adapter right after initialisation has ‖ΔW‖₂ ≈ ε³: numerical rank 0, exported at
    PEFT's minimum rank 1."""
    model = tiny.make("bert")
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=8, targets="query-value"))
    compress_from_batch(model, tiny.batch("bert"))
    export = export_peft(model, tmp_path, truncate_rank="numerical")
    assert set(export.numerical_ranks.values()) == {0}
    assert set(export.ranks.values()) == {1}


def test_export_peft_errors(tmp_path):
    model, _ = tiny.adapted("bert")
    for bad in (0, -2, "full", 2.5, True):
        with pytest.raises(ValueError, match=rf"truncate_rank must be None, 'numerical' or a positive int, got {bad!r}"):
            export_peft(model, tmp_path, truncate_rank=bad)
    with pytest.raises(ValueError, match=r"modules_to_save \['head'\] name no module"):
        export_peft(model, tmp_path, modules_to_save=["head"])
    with pytest.raises(ValueError, match="has no Deep LoRA adapters"):
        export_peft(tiny.make("bert"), tmp_path)
