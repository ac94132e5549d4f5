"""Tests of :mod:`compressible.deeplora.io`: the life cycle of Deep LoRA adapters.

Facts checked:

- save -> load is the identity on every factor, into a fresh base model or into existing adapters;
  mismatches fail with an error naming the module.
- merge -> unmerge gives back the base weights (to float32 rounding), and a merged model computes
  what the unmerged one computes.
- A PEFT LoRA export has ``lora_B lora_A = ΔW`` (scaling included, PEFT's scaling 1), so
  ``PeftModel.from_pretrained(fresh_base, folder)`` reproduces our outputs to 1e-5, for BERT
  (nn.Linear, classification head), GPT-2 (transformers Conv1D) and LLaMA.
- Per-layer ranks reach PEFT through ``rank_pattern`` keys that match exactly one module, so
  ``layer.1.`` never matches ``layer.11.`` under PEFT's own matching rule.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from compressible.deeplora import (  # noqa: E402
    DeepLoRAConfig,
    adapter_layers,
    add_adapters,
    compress_from_batch,
    numerical_rank,
)
from compressible.deeplora.io import (  # noqa: E402
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    export_peft,
    load_adapters,
    merge_adapters,
    save_adapters,
    unmerge_adapters,
)

VOCAB, SEQ, BATCH = 64, 12, 3


# ----------------------------------------------------------------------------- tiny models


def _bert_config(layers: int = 2, hidden: int = 32, labels: int = 2):
    return transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=labels,
    )


def _make(kind: str, seed: int = 0, **kwargs) -> nn.Module:
    """A tiny randomly initialised transformers model (no downloads), in eval mode."""
    torch.manual_seed(seed)
    if kind == "bert":
        model = transformers.BertForSequenceClassification(_bert_config(**kwargs))
    elif kind == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        )
        model = transformers.GPT2LMHeadModel(config)
    elif kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
        )
        model = transformers.LlamaForCausalLM(config)
    else:  # pragma: no cover
        raise ValueError(kind)
    return model.eval()


def _inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=generator)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    mask[0, -3:] = 0  # some padding, so that masking paths are exercised
    return {"input_ids": ids, "attention_mask": mask}


def _batch(kind: str) -> dict[str, torch.Tensor]:
    """A training batch (inputs and labels) for the compressed initialisation."""
    batch = _inputs(seed=2)
    if kind == "bert":
        batch["labels"] = torch.tensor([0, 1, 1])
    else:
        batch["labels"] = batch["input_ids"].clone()
    return batch


def _logits(model: nn.Module, inputs) -> torch.Tensor:
    """Logits and last hidden states, flattened into one vector: a classification head's logits
    are tiny at random init, the hidden states show every adapter's effect."""
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    return torch.cat([out.logits.flatten(), out.hidden_states[-1].flatten()])


def _perturb(model: nn.Module, seed: int = 3, scale: float = 0.5) -> None:
    """Stand-in for training: move every factor so that each ΔW is far from zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            for factor in layer.factors:
                rows, cols = factor.shape
                noise = torch.randn(rows, cols, generator=generator, dtype=torch.float64)
                factor.copy_(noise * scale / cols**0.5)


def _adapted(kind: str, init: str = "compressed", rank: int = 8, **model_kwargs):
    """(model with trained-looking adapters, state dict of its base before adaptation)."""
    model = _make(kind, **model_kwargs)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    add_adapters(model, DeepLoRAConfig(init=init, rank=rank, targets="attention-mlp"))
    if init == "compressed":
        compress_from_batch(model, _batch(kind))
    _perturb(model)
    model.eval()
    return model, base_state


def _fresh(kind: str, base_state, **model_kwargs) -> nn.Module:
    """The same base model, rebuilt from scratch (another seed, then the base weights loaded)."""
    model = _make(kind, seed=123, **model_kwargs)
    model.load_state_dict(base_state)
    return model


# ----------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("init", ["compressed", "lora", "random", "full"])
def test_save_load_round_trip_into_fresh_base(tmp_path, init):
    """load(save(adapters)) into a fresh base gives the same factors, bit for bit, and the same outputs."""
    model, base_state = _adapted("bert", init=init)
    inputs = _inputs()
    expected = _logits(model, inputs)
    save_adapters(model, tmp_path)
    assert (tmp_path / ADAPTER_WEIGHTS_NAME).is_file() and (tmp_path / ADAPTER_CONFIG_NAME).is_file()
    meta = json.loads((tmp_path / ADAPTER_CONFIG_NAME).read_text())
    assert meta["config"]["init"] == init
    assert set(meta["modules"]) == set(adapter_layers(model))

    fresh = _fresh("bert", base_state)
    loaded = load_adapters(fresh, tmp_path)
    assert set(loaded) == set(adapter_layers(model))
    ours, theirs = adapter_layers(model), adapter_layers(fresh)
    for path, layer in ours.items():
        assert len(layer.factors) == len(theirs[path].factors)
        for a, b in zip(layer.factors, theirs[path].factors):
            assert torch.equal(a, b), path
        assert not any(p.requires_grad for p in theirs[path].base.parameters()), "base must stay frozen"
    torch.testing.assert_close(_logits(fresh, inputs), expected, rtol=0, atol=0)


def test_save_writes_adapters_only(tmp_path):
    """The safetensors file holds exactly the factors (no base weight), keyed <path>.factors.<i>."""
    from safetensors.torch import load_file

    model, _ = _adapted("bert")
    save_adapters(model, tmp_path)
    tensors = load_file(str(tmp_path / ADAPTER_WEIGHTS_NAME))
    expected = {f"{p}.factors.{i}" for p, layer in adapter_layers(model).items() for i in range(len(layer.factors))}
    assert set(tensors) == expected


def test_load_fills_existing_adapters(tmp_path):
    model, base_state = _adapted("bert")
    save_adapters(model, tmp_path)
    other = _fresh("bert", base_state)
    add_adapters(other, DeepLoRAConfig(init="compressed", rank=8, targets="attention-mlp"))
    load_adapters(other, tmp_path)
    inputs = _inputs()
    torch.testing.assert_close(_logits(other, inputs), _logits(model, inputs), rtol=0, atol=0)
    assert all(layer.initialized for layer in adapter_layers(other).values())


def test_load_rejects_other_rank(tmp_path):
    """Existing adapters of another rank: the error names a module and both shapes."""
    model, base_state = _adapted("bert", rank=8)
    save_adapters(model, tmp_path)
    other = _fresh("bert", base_state)
    add_adapters(other, DeepLoRAConfig(init="compressed", rank=4, targets="attention-mlp"))
    with pytest.raises(ValueError, match=r"module 'bert\.encoder\.layer\.\d\..*factor shapes \[\[8, 32\]"):
        load_adapters(other, tmp_path)


def test_load_rejects_other_modules(tmp_path):
    model, base_state = _adapted("bert")
    save_adapters(model, tmp_path)
    other = _fresh("bert", base_state)
    add_adapters(other, DeepLoRAConfig(init="compressed", rank=8, targets="query-value"))
    with pytest.raises(ValueError, match=r"only in the folder \[.*'bert\.encoder\.layer\.0\.attention\.output\.dense'"):
        load_adapters(other, tmp_path)


def test_load_rejects_base_with_other_shape(tmp_path):
    """A fresh base whose layer has another width: error names the module and both (out, in)."""
    model, _ = _adapted("bert")
    save_adapters(model, tmp_path)
    torch.manual_seed(0)
    config = _bert_config()
    config.intermediate_size = 40
    other = transformers.BertForSequenceClassification(config)
    with pytest.raises(ValueError, match=r"module 'bert\.encoder\.layer\.0\.intermediate\.dense'.*\(48, 32\).*\(40, 32\)"):
        load_adapters(other, tmp_path)
    assert not adapter_layers(other), "a failed check must not leave adapters behind"


def test_load_rejects_base_without_module(tmp_path):
    model, _ = _adapted("bert", layers=2)
    save_adapters(model, tmp_path)
    torch.manual_seed(0)
    other = transformers.BertForSequenceClassification(_bert_config(layers=1))
    with pytest.raises(ValueError, match=r"module 'bert\.encoder\.layer\.1\..*', which BertForSequenceClassification does not have"):
        load_adapters(other, tmp_path)


def test_load_rejects_merged_and_missing_folder(tmp_path):
    model, _ = _adapted("bert")
    save_adapters(model, tmp_path / "adapter")
    merge_adapters(model)
    with pytest.raises(ValueError, match="unmerge_adapters"):
        load_adapters(model, tmp_path / "adapter")
    with pytest.raises(FileNotFoundError, match="not a Deep LoRA adapter folder"):
        load_adapters(model, tmp_path / "nowhere")


def test_save_without_adapters_fails(tmp_path):
    with pytest.raises(ValueError, match="has no Deep LoRA adapters"):
        save_adapters(_make("bert"), tmp_path)


# ----------------------------------------------------------------------------- merge / unmerge


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_merge_unmerge_round_trip(kind):
    """merge: same outputs without the factors; unmerge: the base weights come back (float32 rounding)."""
    model, _ = _adapted(kind)
    inputs = _inputs()
    layers = adapter_layers(model)
    before = {path: layer.base.weight.detach().clone() for path, layer in layers.items()}
    expected = _logits(model, inputs)

    assert set(merge_adapters(model)) == set(layers)
    assert all(layer.merged for layer in layers.values())
    assert merge_adapters(model) == [], "merging twice must not add ΔW twice"
    for path, layer in layers.items():
        delta = layer.delta_weight()
        delta = delta.T if type(layer.base).__name__ == "Conv1D" else delta
        torch.testing.assert_close(layer.base.weight - before[path], delta, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_logits(model, inputs), expected, rtol=1e-5, atol=1e-5)

    assert set(unmerge_adapters(model)) == set(layers)
    assert unmerge_adapters(model) == []
    for path, layer in layers.items():
        torch.testing.assert_close(layer.base.weight, before[path], rtol=0, atol=1e-6)
    torch.testing.assert_close(_logits(model, inputs), expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- export to PEFT


def _peft_logits(kind: str, base_state, folder, inputs, **model_kwargs) -> tuple[torch.Tensor, nn.Module]:
    fresh = _fresh(kind, base_state, **model_kwargs)
    peft_model = peft.PeftModel.from_pretrained(fresh, str(folder)).eval()
    return _logits(peft_model, inputs), peft_model


@pytest.mark.parametrize("kind", ["bert", "gpt2", "llama"])
def test_export_peft_reproduces_outputs(tmp_path, kind):
    """PeftModel.from_pretrained(fresh base, export) computes our outputs to 1e-5."""
    model, base_state = _adapted(kind)
    inputs = _inputs()
    ours = _logits(model, inputs)
    plain = _logits(_fresh(kind, base_state), inputs)
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

    model, _ = _adapted("bert")
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
    model, base_state = _adapted("bert")
    inputs = _inputs()
    head_free = {k: v for k, v in base_state.items() if not k.startswith("classifier.")}
    fresh = _make("bert", seed=321)
    fresh.load_state_dict(head_free, strict=False)
    assert not torch.equal(fresh.classifier.weight, model.classifier.weight)
    export_peft(model, tmp_path)
    peft_model = peft.PeftModel.from_pretrained(fresh, str(tmp_path)).eval()
    torch.testing.assert_close(_logits(peft_model, inputs), _logits(model, inputs), rtol=0, atol=1e-5)


@pytest.mark.parametrize("init", ["lora", "random"])
def test_export_peft_other_narrow_variants_exact(tmp_path, init):
    model, base_state = _adapted("bert", init=init)
    inputs = _inputs()
    export = export_peft(model, tmp_path)
    assert set(export.ranks.values()) == {8} and set(export.numerical_ranks.values()) == {None}
    theirs, _ = _peft_logits("bert", base_state, tmp_path, inputs)
    torch.testing.assert_close(theirs, _logits(model, inputs), rtol=0, atol=1e-5)


def _train_full_width(kind: str = "bert", steps: int = 5):
    """A full-width adapter after a few Adam steps: ΔW = low-rank update + an ε³-sized remainder."""
    model = _make(kind)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    add_adapters(model, DeepLoRAConfig(init="full", targets="attention-mlp"))
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=3e-2)
    batch = _batch(kind)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        model(**batch).loss.backward()
        optimiser.step()
    return model.eval(), base_state


def test_export_peft_full_width_via_svd(tmp_path):
    """Full width: exact export by SVD at rank min(m, n); numerical truncation keeps the outputs."""
    model, base_state = _train_full_width()
    inputs = _inputs()
    ours = _logits(model, inputs)
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

    model = _make("bert", layers=12)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    add_adapters(model, DeepLoRAConfig(init="random", rank=8, targets="attention-mlp"))
    _perturb(model)
    layers = adapter_layers(model)
    wanted = {}
    with torch.no_grad():
        for path, layer in layers.items():
            rank = 2 if ".layer.1." in path else 3 if ".layer.11." in path else 8
            layer.factors[0][rank:] = 0  # ΔW = F_K ⋯ F_2 F_1 has rank `rank` now
            wanted[path] = rank
    inputs = _inputs()
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
    torch.testing.assert_close(theirs, _logits(model, inputs), rtol=0, atol=1e-5)
    built = {
        name.removeprefix("base_model.model."): module.lora_A["default"].weight.shape[0]
        for name, module in peft_model.named_modules()
        if hasattr(module, "lora_A")
    }
    assert built == wanted


def test_numerically_zero_layer_exports_rank_one(tmp_path):
    """A compressed adapter right after initialisation has ‖ΔW‖₂ ≈ ε³: numerical rank 0, exported at
    PEFT's minimum rank 1."""
    model = _make("bert")
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=8, targets="query-value"))
    compress_from_batch(model, _batch("bert"))
    export = export_peft(model, tmp_path, truncate_rank="numerical")
    assert set(export.numerical_ranks.values()) == {0}
    assert set(export.ranks.values()) == {1}


def test_export_peft_errors(tmp_path):
    model, _ = _adapted("bert")
    for bad in (0, -2, "full", 2.5, True):
        with pytest.raises(ValueError, match=rf"truncate_rank must be None, 'numerical' or a positive int, got {bad!r}"):
            export_peft(model, tmp_path, truncate_rank=bad)
    with pytest.raises(ValueError, match=r"modules_to_save \['head'\] name no module"):
        export_peft(model, tmp_path, modules_to_save=["head"])
    with pytest.raises(ValueError, match="has no Deep LoRA adapters"):
        export_peft(_make("bert"), tmp_path)
