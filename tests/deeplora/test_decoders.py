"""Deep LoRA on the decoders the generation experiment uses: a tiny random LLaMA (decoder only,
as SmolLM2) and a tiny random T5 (encoder-decoder, as the paper's T5-base).

Checked end to end on each family, the way :mod:`compressible.finetune.generate` uses the library:
injection by the ``attention-mlp`` preset, the compressed initialisation from one batch,
training, merge / unmerge, save / load, and export to a standard PEFT LoRA adapter that
``peft.PeftModel.from_pretrained`` runs to the same outputs (1e-5).
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import transformers
from torch import nn

from compressible.deeplora import (
    DeepLoRAConfig,
    adapter_layers,
    add_adapters,
    compress_from_batch,
    param_groups,
)
from compressible.deeplora import export_peft, load_adapters, merge_adapters, save_adapters, unmerge_adapters

VOCAB = 50
FAMILIES = ("llama", "t5")


def _model(family: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if family == "llama":
        config = transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        )
        return transformers.LlamaForCausalLM(config).eval()
    config = transformers.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, dropout_rate=0.0,
        pad_token_id=0, eos_token_id=2, decoder_start_token_id=0,
    )
    return transformers.T5ForConditionalGeneration(config).eval()


def _batch(family: str, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (4, 10), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0  # some padding
    if family == "llama":
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, :4] = -100  # "prompt" positions carry no loss, as in generation.training_batch
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
    labels = torch.randint(3, VOCAB, (4, 7), generator=gen)
    labels[1, -2:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _logits(model: nn.Module, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def _expected_modules(family: str) -> int:
    # LLaMA: q, k, v, o, gate, up, down per block. T5: encoder q, k, v, o, wi, wo (6) and decoder
    # self-attention q, k, v, o, cross-attention q, k, v, o, wi, wo (10) per block.
    return 2 * 7 if family == "llama" else 2 * 6 + 2 * 10


def _trained(family: str):
    """A copy of the model :func:`_train` trains (trained once per family and module: the training is
    deterministic, and each test gets a copy it may merge, save or export)."""
    model, batch, report, losses = _train(family)
    return copy.deepcopy(model), {k: v.clone() for k, v in batch.items()}, report, list(losses)


@functools.cache
def _train(family: str, steps: int = 40, rank: int = 4):
    model = _model(family)
    batch = _batch(family)
    report = add_adapters(model, DeepLoRAConfig(init="compressed", depth=3, rank=rank, targets="attention-mlp", seed=0, gamma=1e-1))
    compress_from_batch(model, batch)
    optimizer = torch.optim.Adam(param_groups(model, lr=1e-2), betas=(0.9, 0.999), eps=1e-6)
    losses = []
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return model, batch, report, losses


@pytest.mark.parametrize("family", FAMILIES)
def test_injection_covers_every_dense_weight_and_freezes_the_base(family):
    model = _model(family)
    base_out = _logits(model, _batch(family))
    report = add_adapters(model, DeepLoRAConfig(init="compressed", depth=3, rank=4, targets="attention-mlp"))
    assert len(report) == _expected_modules(family)
    assert set(adapter_layers(model)) == set(report.modules)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".factors." in n for n in trainable)
    # Compressed adapters start with zero outer factors: the model computes exactly the base model.
    assert torch.equal(_logits(model, _batch(family)), base_out)
    # depth 3, rank r: right^T (r, n), three r x r inner factors, left (m, r)
    for shapes in report.factor_shapes:
        assert len(shapes) == 5 and shapes[1] == shapes[2] == shapes[3] == (4, 4)


@pytest.mark.parametrize("family", FAMILIES)
def test_compressed_subspaces_contain_the_top_gradient_directions(family):
    """Sec. 2.3 / 4: span(left) holds the top r/2 left singular vectors of G = dloss/dW and
    span(right) the top r/2 right ones, for every adapted weight; inner factors are eps I."""
    rank = 4
    model = _model(family).double()
    batch = _batch(family)
    # G computed independently, on an adapter-free copy in eval mode (dropout off).
    reference = copy.deepcopy(model)
    reference.zero_grad()
    reference(**batch).loss.backward()
    grads = {n[: -len(".weight")]: p.grad.clone() for n, p in reference.named_parameters() if n.endswith(".weight")}

    add_adapters(model, DeepLoRAConfig(init="compressed", depth=3, rank=rank, targets="attention-mlp"))
    compress_from_batch(model, batch)
    for name, layer in adapter_layers(model).items():
        g = grads[name]
        u, _, vh = torch.linalg.svd(g, full_matrices=False)
        u_h, v_h = u[:, : rank // 2], vh[: rank // 2].T
        for basis, vectors in ((layer.left.detach(), u_h), (layer.right.detach(), v_h)):
            q, _ = torch.linalg.qr(basis)
            residual = vectors - q @ (q.T @ vectors)
            assert torch.linalg.matrix_norm(residual) < 1e-8, name
        for inner in list(layer.factors)[1:-1]:
            torch.testing.assert_close(inner.detach(), 1e-3 * torch.eye(rank, dtype=torch.float64))


@pytest.mark.parametrize("family", FAMILIES)
def test_training_lowers_the_loss(family):
    _, _, _, losses = _trained(family)
    # Deep LoRA first leaves its eps^3 start (a plateau of ~15 steps here), then the loss falls.
    assert losses[-1] < 0.97 * losses[0], losses


@pytest.mark.parametrize("family", FAMILIES)
def test_merge_unmerge_and_generation_agree(family):
    model, batch, _, _ = _trained(family)
    weights = {n: m.base.weight.detach().clone() for n, m in adapter_layers(model).items()}
    before = _logits(model, batch)
    merge_adapters(model)
    torch.testing.assert_close(_logits(model, batch), before, atol=1e-5, rtol=1e-5)
    # greedy decoding gives the same tokens merged and unmerged
    prompt = {"input_ids": batch["input_ids"][:2, :6], "attention_mask": torch.ones(2, 6, dtype=torch.long)}
    merged_tokens = model.generate(**prompt, max_new_tokens=5, do_sample=False, pad_token_id=0)
    unmerge_adapters(model)
    # unmerge restores each base weight bit for bit, so the logits are those computed before the merge
    # (same weights, same kernels), on any CPU
    for name, layer in adapter_layers(model).items():
        assert torch.equal(layer.base.weight, weights[name]), name
    assert torch.equal(_logits(model, batch), before)
    assert torch.equal(model.generate(**prompt, max_new_tokens=5, do_sample=False, pad_token_id=0), merged_tokens)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_into_fresh_base(tmp_path, family):
    model, batch, _, _ = _trained(family)
    save_adapters(model, tmp_path / "adapters")
    fresh = _model(family)  # same seed: the same base weights
    load_adapters(fresh, tmp_path / "adapters")
    fresh.eval()
    torch.testing.assert_close(_logits(fresh, batch), _logits(model, batch), atol=0, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_peft_export_reproduces_outputs(tmp_path, family):
    from peft import PeftModel

    model, batch, report, _ = _trained(family)
    export = export_peft(model, tmp_path / "peft")
    assert export.task_type == ("CAUSAL_LM" if family == "llama" else "SEQ_2_SEQ_LM")
    assert set(export.ranks) == set(report.modules) and set(export.ranks.values()) == {4}
    assert max(export.relative_errors.values()) < 1e-6
    peft_model = PeftModel.from_pretrained(_model(family), str(tmp_path / "peft")).eval()
    torch.testing.assert_close(_logits(peft_model, batch), _logits(model, batch), atol=1e-5, rtol=1e-5)
    # and the PEFT model differs from the base: the adapters are really in there
    assert not torch.allclose(_logits(_model(family), batch), _logits(model, batch), atol=1e-4)
