"""Tiny randomly initialised transformers models with Deep LoRA adapters, shared by the tests of
:mod:`compressible.deeplora.io`, :mod:`compressible.deeplora.model` and :mod:`compressible.deeplora.peft`
(no downloads)."""

from __future__ import annotations

import torch
import transformers
from torch import nn

from compressible.deeplora import DeepLoRAConfig, adapter_layers, add_adapters, compress_from_batch

VOCAB, SEQ, BATCH = 64, 12, 3



def bert_config(layers: int = 2, hidden: int = 32, labels: int = 2):
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


def make(kind: str, seed: int = 0, **kwargs) -> nn.Module:
    """A tiny randomly initialised transformers model (no downloads), in eval mode."""
    torch.manual_seed(seed)
    if kind == "bert":
        model = transformers.BertForSequenceClassification(bert_config(**kwargs))
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


def inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=generator)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    mask[0, -3:] = 0  # some padding, so that masking paths are exercised
    return {"input_ids": ids, "attention_mask": mask}


def batch(kind: str) -> dict[str, torch.Tensor]:
    """A training batch (inputs and labels) for the compressed initialisation."""
    batch = inputs(seed=2)
    if kind == "bert":
        batch["labels"] = torch.tensor([0, 1, 1])
    else:
        batch["labels"] = batch["input_ids"].clone()
    return batch


def logits(model: nn.Module, inputs) -> torch.Tensor:
    """Logits and last hidden states, flattened into one vector: a classification head's logits
    are tiny at random init, the hidden states show every adapter's effect."""
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    return torch.cat([out.logits.flatten(), out.hidden_states[-1].flatten()])


def perturb(model: nn.Module, seed: int = 3, scale: float = 0.5) -> None:
    """Stand-in for training: move every factor so that each ΔW is far from zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            for factor in layer.factors:
                rows, cols = factor.shape
                noise = torch.randn(rows, cols, generator=generator, dtype=torch.float64)
                factor.copy_(noise * scale / cols**0.5)


def adapted(kind: str, init: str = "compressed", rank: int = 8, **model_kwargs):
    """(model with trained-looking adapters, state dict of its base before adaptation)."""
    model = make(kind, **model_kwargs)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    add_adapters(model, DeepLoRAConfig(init=init, rank=rank, targets="attention-mlp"))
    if init == "compressed":
        compress_from_batch(model, batch(kind))
    perturb(model)
    model.eval()
    return model, base_state


def fresh(kind: str, base_state, **model_kwargs) -> nn.Module:
    """The same base model, rebuilt from scratch (another seed, then the base weights loaded)."""
    model = make(kind, seed=123, **model_kwargs)
    model.load_state_dict(base_state)
    return model
