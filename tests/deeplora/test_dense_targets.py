"""The authors' "all dense" target presets (``"all-dense"``, ``"all-dense-embeddings"``) on tiny BERTs."""

import pytest
import torch
import transformers

from compressible.deeplora import DeepLoRAConfig, add_adapters
from compressible.deeplora.model import resolve_targets

from .tiny import bert_config

BLOCK = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
         "intermediate.dense", "output.dense")


def _bert(intermediate: int = 48) -> torch.nn.Module:
    config = bert_config()  # hidden 32, 2 blocks
    config.intermediate_size = intermediate
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def test_all_dense_is_the_six_per_block_plus_the_pooler():
    names = resolve_targets(_bert(), "all-dense")
    blocks = [f"bert.encoder.layer.{i}.{m}" for i in range(2) for m in BLOCK]
    assert names == blocks + ["bert.pooler.dense"]  # 12 + 1; the classifier (2 x 32) is below the hidden size
    with_embeddings = resolve_targets(_bert(), "all-dense-embeddings")
    assert with_embeddings == ["bert.embeddings.word_embeddings"] + blocks + ["bert.pooler.dense"]


def test_all_dense_leaves_out_weights_narrower_than_the_hidden_size():
    """With an MLP of width 16 < hidden 32 only the attention weights and the pooler are 'dense'."""
    names = resolve_targets(_bert(intermediate=16), "all-dense")
    assert len(names) == 2 * 4 + 1
    assert not any(n.endswith(("intermediate.dense", "layer.0.output.dense", "layer.1.output.dense")) for n in names)


def test_all_dense_adapts_the_pooler_and_embeddings_are_refused_clearly():
    model = _bert()
    report = add_adapters(model, DeepLoRAConfig(init="lora", rank=4, targets="all-dense"))
    assert len(report) == 13 and report.modules[-1] == "bert.pooler.dense"
    with pytest.raises(ValueError, match=r"bert.embeddings.word_embeddings.*cannot be adapted yet.*targets='all-dense'"):
        add_adapters(_bert(), DeepLoRAConfig(init="lora", rank=4, targets="all-dense-embeddings"))


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"targets 'all-dens' is not a preset .*'all-dense', 'all-dense-embeddings'"):
        DeepLoRAConfig(targets="all-dens")
