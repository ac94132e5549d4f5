"""Injection into tiny random transformers models (no downloads) and the optimiser groups.

Facts checked: the presets find 6 adapted weights per BERT block (72 for bert-base's 12 blocks),
4 Conv1D per GPT-2 block, 7 per LLaMA block, 6 / 10 per T5 encoder / decoder block; every base
parameter is frozen; a compressed adapter has (m + n) r + L r^2 parameters; the adapted model's
output equals the base model with W0 + Delta W; merge -> unmerge gives back the base weights (bit
for bit) and a merged model computes what the unmerged one computes; param_groups puts inner factors at lr and outer
factors at gamma * lr (gamma = 0 freezes them) in Adam and in a transformers Trainer run.
"""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest
import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
    Trainer,
    TrainingArguments,
)

from compressible.deeplora import (
    AdapterReport,
    DeepLoRAConfig,
    DeepLoRALinear,
    adapter_layers,
    add_adapters,
    compress_from_batch,
    delta_weights,
    merge_adapters,
    param_groups,
    unmerge_adapters,
)

from . import tiny

VOCAB = 97


def tiny_bert(layers=2):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=2)
    return BertForSequenceClassification(cfg)


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                      bos_token_id=0, eos_token_id=0))


def tiny_llama():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg)


def tiny_t5():
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                   num_heads=4, decoder_start_token_id=0)
    return T5ForConditionalGeneration(cfg)


def lm_batch(seed=0, batch=4, length=12):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, length), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def cls_batch(seed=0, batch=8, length=12):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, length), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (batch,), generator=gen)}


def t5_batch(seed=0):
    b = lm_batch(seed)
    return {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"], "labels": b["labels"][:, :6].contiguous()}


MODELS = {
    "bert": (tiny_bert, cls_batch, 6 * 2),
    "gpt2": (tiny_gpt2, lm_batch, 4 * 2),
    "llama": (tiny_llama, lm_batch, 7 * 2),
    "t5": (tiny_t5, t5_batch, 6 * 2 + 10 * 2),
}


def test_bert_attention_mlp_is_six_per_block_the_papers_72_for_12_blocks():
    model = tiny_bert(layers=12)
    report = add_adapters(model, DeepLoRAConfig(rank=8))
    assert len(report) == 72
    per_block = {".".join(n.split(".")[4:]) for n in report.modules}  # bert.encoder.layer.<i>.
    assert per_block == {"attention.self.query", "attention.self.key", "attention.self.value",
                         "attention.output.dense", "intermediate.dense", "output.dense"}
    assert not any("pooler" in n or "classifier" in n for n in report.modules)


@pytest.mark.parametrize("family", sorted(MODELS))
def test_presets_count_freeze_and_parameter_counts(family):
    build, _, expected = MODELS[family]
    model = build()
    n_base = sum(p.numel() for p in model.parameters())
    cfg = DeepLoRAConfig(init="compressed", depth=3, rank=8)
    report = add_adapters(model, cfg)
    assert isinstance(report, AdapterReport) and len(report) == expected
    layers = adapter_layers(model)
    assert list(layers) == report.modules
    if family == "gpt2":
        assert all(layer.is_conv1d for layer in layers.values())
    for (m, n), count in zip(report.shapes, report.adapter_params):
        assert count == (m + n) * 8 + 3 * 8**2  # compressed: left, right and three r x r factors
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(".factors." in n for n in trainable)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == report.trainable_params
    assert report.frozen_params == n_base
    text = str(report)
    assert f"{len(report)} modules" in text and f"{report.trainable_params:,} trainable" in text
    frame = report.to_frame()
    assert list(frame.columns) == ["module", "out", "in", "factors", "params"] and len(frame) == expected


def test_parameter_counts_of_the_other_inits():
    for init, count in [("lora", lambda m, n, r: (m + n) * r),
                        ("random", lambda m, n, r: (m + n) * r + r * r),
                        ("full", lambda m, n, r: n * max(m, n) + max(m, n) ** 2 + max(m, n) * m)]:
        model = tiny_bert()
        report = add_adapters(model, DeepLoRAConfig(init=init, rank=4))
        assert all(c == count(m, n, 4) for (m, n), c in zip(report.shapes, report.adapter_params)), init


@pytest.mark.parametrize("family", sorted(MODELS))
def test_adapted_model_equals_base_model_with_updated_weights(family):
    build, make_batch, _ = MODELS[family]
    model = build().eval()
    reference = copy.deepcopy(model)
    add_adapters(model, DeepLoRAConfig(init="random", depth=3, rank=4, epsilon=0.5, targets="all-linear"))
    with torch.no_grad():
        deltas = delta_weights(model)
        ref_modules = dict(reference.named_modules())
        for name, delta in deltas.items():
            w = ref_modules[name].weight
            w.add_(delta if isinstance(ref_modules[name], nn.Linear) else delta.T)  # Conv1D: (in, out)
        batch = make_batch()
        out, ref = model(**batch), reference(**batch)
    assert torch.allclose(out.logits, ref.logits, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out.logits, build().eval()(**batch).logits, atol=1e-3)  # adapters matter


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
def test_compressed_adapters_start_near_the_base_model(family):
    build, make_batch, _ = MODELS[family]
    model = build().eval()
    batch = make_batch()
    with torch.no_grad():
        before = model(**batch).logits
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=8))
    compress_from_batch(model, batch)
    assert all(layer.initialized for layer in adapter_layers(model).values())
    assert all(float(torch.linalg.matrix_norm(d, ord=2)) <= 1e-9 * (1 + 1e-5) for d in delta_weights(model).values())
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, before, atol=1e-5)


def test_target_specs_lists_regex_and_all_linear():
    report = add_adapters(tiny_bert(), DeepLoRAConfig(init="lora", rank=4, targets="query-value"))
    assert len(report) == 4 and all(n.endswith(("query", "value")) for n in report.modules)
    report = add_adapters(tiny_bert(), DeepLoRAConfig(init="lora", rank=4, targets=["attention.output.dense"]))
    assert len(report) == 2
    report = add_adapters(tiny_bert(), DeepLoRAConfig(init="lora", rank=4, targets=r"re:.*layer\.1\..*(query|key)"))
    assert report.modules == ["bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.key"]
    report = add_adapters(tiny_bert(), DeepLoRAConfig(init="lora", rank=4, targets="all-linear"))
    assert len(report) == 13 and "bert.pooler.dense" in report.modules  # 12 + pooler, no classifier
    report = add_adapters(tiny_gpt2(), DeepLoRAConfig(init="lora", rank=4, targets="all-linear"))
    assert len(report) == 8 and "lm_head" not in report.modules
    report = add_adapters(tiny_llama(), DeepLoRAConfig(init="lora", rank=4, targets="query-value"))
    assert len(report) == 4 and all(n.endswith(("q_proj", "v_proj")) for n in report.modules)


def test_injection_errors_name_the_offender():
    with pytest.raises(ValueError, match=r"targets \['qkv'\] match no module of BertForSequenceClassification"):
        add_adapters(tiny_bert(), DeepLoRAConfig(targets=["query", "qkv"]))
    with pytest.raises(ValueError, match="match no nn.Linear/Conv1D module"):
        add_adapters(tiny_bert(), DeepLoRAConfig(targets="re:.*c_attn"))
    with pytest.raises(ValueError, match=r"select modules that are not nn.Linear/Conv1D: \[\('bert.embeddings.LayerNorm', 'LayerNorm'\)"):
        add_adapters(tiny_bert(), DeepLoRAConfig(targets="re:.*embeddings.LayerNorm"))
    with pytest.raises(ValueError, match=r"rank 34 exceeds min\(out, in\) = 32 for 'bert.encoder.layer.0.attention.self.query'"):
        add_adapters(tiny_bert(), DeepLoRAConfig(rank=34))
    with pytest.raises(ValueError, match=r"rank 3 exceeds min\(out, in\) = 2 for 'classifier'"):
        add_adapters(tiny_bert(), DeepLoRAConfig(init="lora", rank=3, targets=["classifier"]))
    model = tiny_bert()
    add_adapters(model, DeepLoRAConfig())
    with pytest.raises(RuntimeError, match="already holds Deep LoRA adapters"):
        add_adapters(model, DeepLoRAConfig())
    assert all(p.requires_grad is False for n, p in tiny_bert().named_parameters() if False)  # no side effects above
    fresh = tiny_bert()
    with pytest.raises(ValueError):
        add_adapters(fresh, DeepLoRAConfig(rank=34))
    assert all(p.requires_grad for p in fresh.parameters())  # a failed call leaves the model untouched
    with pytest.raises(ValueError, match="cannot build parameter groups: BertForSequenceClassification has no Deep LoRA"):
        param_groups(fresh, lr=1e-2)


def _compressed_bert(gamma=1e-2):
    model = tiny_bert()
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=4, gamma=gamma))
    compress_from_batch(model, cls_batch())
    return model


def test_param_groups_lr_and_gamma_semantics():
    model = _compressed_bert()
    groups = param_groups(model, lr=1e-2)
    by_name = {g["name"]: g for g in groups}
    layers = adapter_layers(model).values()
    assert by_name["inner"]["lr"] == 1e-2 and by_name["outer"]["lr"] == pytest.approx(1e-4)
    assert len(by_name["inner"]["params"]) == 3 * len(layers) and len(by_name["outer"]["params"]) == 2 * len(layers)
    outer_ids = {id(layer.factors[k]) for layer in layers for k in layer.outer}
    assert {id(p) for p in by_name["outer"]["params"]} == outer_ids
    assert param_groups(_compressed_bert(gamma=0.5), lr=1e-3)[1]["lr"] == pytest.approx(5e-4)
    # gamma = 0: outer factors frozen and left out
    model = _compressed_bert(gamma=0)
    layers = adapter_layers(model).values()
    groups = param_groups(model, lr=1e-2)
    assert [g["name"] for g in groups] == ["inner"]
    assert not any(p.requires_grad for layer in layers for k, p in enumerate(layer.factors) if k in layer.outer)
    # non-compressed adapters: one group at lr
    lora = tiny_bert()
    add_adapters(lora, DeepLoRAConfig(init="lora", rank=4))
    groups = param_groups(lora, lr=1e-4)
    assert len(groups) == 1 and groups[0]["lr"] == 1e-4 and len(groups[0]["params"]) == 2 * 12


def test_param_groups_reads_gamma_from_the_adapters_and_rejects_disagreement():
    model = _compressed_bert(gamma=0.25)
    assert [g["lr"] for g in param_groups(model, lr=1e-2)] == [1e-2, pytest.approx(2.5e-3)]
    layers = adapter_layers(model)
    last = list(layers)[-1]
    layers[last].config = dataclasses.replace(layers[last].config, gamma=0.5)
    with pytest.raises(ValueError, match=rf"disagree on gamma: '.*' has 0.25, '{re.escape(last)}' has 0.5"):
        param_groups(model, lr=1e-2)


def _unit_gradient_step(model, groups):
    """One Adam step with every gradient set to 1: each trained coordinate moves by its lr."""
    opt = torch.optim.Adam(groups, betas=(0.9, 0.999), eps=1e-6)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = torch.ones_like(p)
    opt.step()
    return {n: (p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()}


def test_adam_step_moves_inner_at_lr_and_outer_at_gamma_lr():
    model = _compressed_bert(gamma=1e-2)
    change = _unit_gradient_step(model, param_groups(model, lr=1e-2))
    assert max(c for n, c in change.items() if ".factors." not in n) == 0.0
    inner = [c for n, c in change.items() if any(f".factors.{k}" in n for k in (1, 2, 3))]
    outer = [c for n, c in change.items() if ".factors.0" in n or ".factors.4" in n]
    assert min(inner) == pytest.approx(1e-2, rel=1e-3) and max(inner) == pytest.approx(1e-2, rel=1e-3)
    assert min(outer) == pytest.approx(1e-4, rel=1e-3) and max(outer) == pytest.approx(1e-4, rel=1e-3)
    model = _compressed_bert(gamma=0)
    change = _unit_gradient_step(model, param_groups(model, lr=1e-2))
    assert max(c for n, c in change.items() if ".factors.0" in n or ".factors.4" in n) == 0.0
    assert min(c for n, c in change.items() if ".factors.2" in n) == pytest.approx(1e-2, rel=1e-3)


def test_backward_reaches_only_adapter_factors():
    model = _compressed_bert()
    model.train()
    model(**cls_batch()).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {n for n, p in model.named_parameters() if ".factors." in n}
    assert all(torch.count_nonzero(model.get_parameter(n).grad) > 0 for n in with_grad)


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, batch):
        self.rows = [{k: v[i] for k, v in batch.items()} for i in range(len(batch["labels"]))]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def test_transformers_trainer_runs_with_param_groups(tmp_path):
    gamma = 1e-2  # gamma = 0 (outer factors frozen) is covered with plain Adam above
    model = _compressed_bert(gamma=gamma)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(param_groups(model, lr=1e-2), betas=(0.9, 0.999), eps=1e-6)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, max_steps=2, per_device_train_batch_size=4,
                             report_to="none", save_strategy="no", disable_tqdm=True, logging_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=_ListDataset(cls_batch(batch=8)), optimizers=(optimizer, None))
    trainer.train()
    after = dict(model.named_parameters())
    moved = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert moved and all(".factors." in n for n in moved)
    outer_moved = {n for n in moved if ".factors.0" in n or ".factors.4" in n}
    assert bool(outer_moved) == (gamma > 0)
    assert any(isinstance(m, DeepLoRALinear) for m in model.modules())


def test_bf16_model_keeps_float32_adapters_and_trains():
    model = tiny_llama().to(torch.bfloat16)
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=4))
    compress_from_batch(model, lm_batch(batch=2, length=8))
    assert all(f.dtype == torch.float32 for layer in adapter_layers(model).values() for f in layer.factors)
    change = _step_changes_lm(model)
    assert max(c for n, c in change.items() if ".factors." not in n) == 0.0
    assert max(c for n, c in change.items() if ".factors.2" in n) > 0


def _step_changes_lm(model):
    opt = torch.optim.Adam(param_groups(model, lr=1e-2), eps=1e-6)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    loss = model(**lm_batch(batch=2, length=8)).loss
    assert loss.dtype == torch.bfloat16 or loss.dtype == torch.float32
    loss.backward()
    opt.step()
    return {n: (p.detach().float() - before[n].float()).abs().max().item() for n, p in model.named_parameters()}


# ----------------------------------------------------------------------------- merge / unmerge


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_merge_unmerge_round_trip(kind):
    """merge: same outputs without the factors; unmerge: the base weights come back bit for bit."""
    model, _ = tiny.adapted(kind)
    inputs = tiny.inputs()
    layers = adapter_layers(model)
    before = {path: layer.base.weight.detach().clone() for path, layer in layers.items()}
    expected = tiny.logits(model, inputs)

    assert set(merge_adapters(model)) == set(layers)
    assert all(layer.merged for layer in layers.values())
    assert merge_adapters(model) == [], "merging twice must not add ΔW twice"
    for path, layer in layers.items():
        delta = layer.delta_weight()
        delta = delta.T if type(layer.base).__name__ == "Conv1D" else delta
        torch.testing.assert_close(layer.base.weight - before[path], delta, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tiny.logits(model, inputs), expected, rtol=1e-5, atol=1e-5)

    assert set(unmerge_adapters(model)) == set(layers)
    assert unmerge_adapters(model) == []
    for path, layer in layers.items():
        assert torch.equal(layer.base.weight, before[path]), path  # restored bit for bit
    assert torch.equal(tiny.logits(model, inputs), expected)  # the same weights and kernels as before the merge
