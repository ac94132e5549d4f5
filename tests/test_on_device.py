"""Device-aware tests: the package's tensors stay on the device they are given, and what it computes there
agrees with the CPU within the ledger's float32 tolerance.

Each test takes ``device`` and so runs once per device of ``$COMPRESSIBLE_TEST_DEVICE`` (default ``cpu``;
see ``tests/conftest.py``); ``make gpu-check`` runs them with ``cuda``. On the CPU the comparisons with
the CPU are trivial and the tests take a few seconds.
"""

import math

import pytest
import torch
import transformers
from torch import nn

from compressible.deeplora import DeepLoRAConfig, DeepLoRALinear, add_adapters, compress_from_batch
from compressible.ledger import TOLERANCES, Ledger, iter_records
from compressible.matrix.factorization import gradient_descent, scaled_orthogonal_init, truncated_gaussian_target

FLOAT32 = TOLERANCES["float32, other CPU or versions"]


def _on(tensors, device) -> bool:
    return all(t.device.type == torch.device(device).type for t in tensors)


def test_deep_lora_layer_forward_and_merge_on_device(device):
    """forward = x W0^T + b + x ΔW^T on the device; merge / unmerge give the base weight back bit for bit."""
    torch.manual_seed(0)
    layer = DeepLoRALinear(nn.Linear(64, 48).to(device), DeepLoRAConfig(init="random", rank=8, epsilon=0.5))
    assert _on(layer.parameters(), device)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for f in layer.factors:
            f.add_(0.3 * torch.randn(f.shape, generator=gen).to(f))
    x = torch.randn(5, 64, generator=gen).to(device)
    expected = x @ (layer.base.weight + layer.delta_weight()).T + layer.base.bias
    out = layer(x)
    assert out.device.type == torch.device(device).type
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    w0, before = layer.base.weight.detach().clone(), out.detach()
    layer.merge()
    torch.testing.assert_close(layer(x), before, rtol=1e-5, atol=1e-5)
    layer.unmerge()
    assert torch.equal(layer.base.weight, w0)


def _tiny_bert(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=48, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0, num_labels=2)
    return transformers.BertForSequenceClassification(config).eval()


def _batch() -> dict:
    gen = torch.Generator().manual_seed(2)
    return {"input_ids": torch.randint(0, 64, (4, 12), generator=gen), "attention_mask": torch.ones(4, 12, dtype=torch.long),
            "labels": torch.tensor([0, 1, 1, 0])}


def _compressed_then_trained(device) -> tuple[nn.Module, torch.Tensor]:
    model = _tiny_bert().to(device)
    add_adapters(model, DeepLoRAConfig(init="compressed", depth=3, rank=4, targets="attention-mlp"))
    batch = _batch()
    compress_from_batch(model, batch)  # moves the batch to the model's device
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    on_device = {k: v.to(device) for k, v in batch.items()}
    for _ in range(3):
        model(**on_device).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        return model, model(**on_device).logits


def test_compress_and_train_a_tiny_bert_on_device(device):
    """compress_from_batch and three Adam steps keep every tensor on the device; the logits agree with the CPU's."""
    model, logits = _compressed_then_trained(device)
    assert _on(model.parameters(), device) and _on([logits], device)
    assert torch.isfinite(logits).all()
    if torch.device(device).type != "cpu":
        _, cpu_logits = _compressed_then_trained("cpu")
        torch.testing.assert_close(logits.cpu(), cpu_logits, rtol=1e-3, atol=1e-4)


def test_deep_matrix_factorisation_gradient_descent_on_device(device):
    """Float64 gradient descent on a deep factorisation: the losses on the device equal the CPU's to 1e-10."""
    def losses(on):
        g = torch.Generator().manual_seed(0)
        target = truncated_gaussian_target(20, 20, 3, generator=g, device=on)
        factors = scaled_orthogonal_init([20] * 4, epsilon=1.0, generator=g, device=on)
        trajectory = gradient_descent(factors, target, steps=30, lr=1.0)
        assert _on(trajectory.factors[-1], on)
        return trajectory.losses

    here = losses(device)
    assert all(math.isfinite(x) for x in here) and here[-1] < here[0]
    if torch.device(device).type != "cpu":
        cpu = losses("cpu")
        assert max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(here, cpu)) < 1e-10


@pytest.fixture(scope="module")
def runner(device):
    from finetune.tiny import tiny_bert_runner  # tests/ is on the path

    return tiny_bert_runner(device)


def _smoke():
    from compressible.finetune.backbones import TINY_BERT
    from compressible.finetune.classify import RunConfig

    return RunConfig(task="stsb", n_train=32, steps=3, backbone=TINY_BERT, eval_limit=48, eval_every=None)


def _first_losses(runner, steps: int = 2) -> list[float]:
    """The first updates with dropout off: no device RNG in the losses, only the device's arithmetic."""
    state = runner.setup(_smoke(), seed=0)
    state.model.eval()
    batch, losses = state.first, []
    for step in range(1, steps + 1):
        losses.append(runner.step(state, batch, step))
        batch = next(state.batches)
    return losses


def test_glue_run_on_device_is_labelled_and_agrees_with_the_cpu(runner, device, tmp_path):
    """A smoke GLUE run through the sweep on ``device``: its ledger record names the device (and the GPU
    under CUDA); its first losses (dropout off) agree with the CPU's within the ledger's float32 tolerance."""
    from compressible.finetune.classify import Runner
    from compressible.sweeps import sweep

    summary = sweep([(_smoke(), (0,))], Ledger(tmp_path), device=device, progress=False)
    assert summary.done == 1 and not summary.failed
    (record,) = list(iter_records(tmp_path))
    provenance = record.provenance
    assert record.data["device"] == str(torch.device(device))
    assert provenance["device"] == torch.device(device).type
    assert (provenance["gpu"] is not None) == (torch.device(device).type == "cuda")
    assert all(math.isfinite(x) for x in record.data["train_loss"])
    here = _first_losses(runner)
    if torch.device(device).type != "cpu":
        cpu = _first_losses(Runner("cpu", progress=False))
        assert max(abs(a - b) / max(abs(a), abs(b), 1e-3) for a, b in zip(here, cpu)) <= FLOAT32
