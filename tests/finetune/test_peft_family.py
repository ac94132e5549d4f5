"""PEFT's LoRA family as compressible builds it: the parameters each variant trains, a model that starts
unchanged, and errors as data."""

import copy

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from compressible.finetune.peft_family import VARIANTS, PeftAdapter, attach

HIDDEN, INTER, RANK = 32, 64, 4


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=INTER, num_labels=1)
    return BertForSequenceClassification(config).eval(), torch.randint(0, 100, (4, 7)), torch.randn(4)


def _step(x, labels):
    def step(model):
        model(input_ids=x, labels=labels).loss.backward()
    return step


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_trains_its_adapters_only_and_starts_as_the_model(model_and_batch, variant):
    base, x, labels = model_and_batch
    before = base(input_ids=x).logits
    model = copy.deepcopy(base)
    names = attach(model, PeftAdapter(variant, rank=RANK, targets="all-dense"), _step(x, labels))
    model.eval()
    assert len(names) == 7 and type(model) is type(base)
    trained = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    # all-dense of a one-block BERT: q, k, v, attention output and pooler (32 x 32), intermediate (64 x 32),
    # output (32 x 64); LoRA trains r (m + n) per weight, DoRA also a magnitude per output row
    square, mlp = 5 * RANK * (2 * HIDDEN), 2 * RANK * (HIDDEN + INTER)
    magnitudes = 5 * HIDDEN + INTER + HIDDEN if variant == "dora" else 0
    assert sum(trained.values()) == square + mlp + magnitudes
    assert not any("classifier" in n for n in trained)
    after = model(input_ids=x).logits
    # PiSSA and LoRA-GA move the adapter's start out of the frozen weight: equal up to float32 rounding of the
    # weights' sums (a few ulps of the logits' scale); the others add exactly zero
    bound = 0.0 if variant in ("lora", "rslora", "dora") else 64 * torch.finfo(torch.float32).eps * float(before.abs().max())
    assert float((after - before).abs().max()) <= bound


def test_bad_variants_and_a_gradient_free_lora_ga_are_refused(model_and_batch):
    base, _, _ = model_and_batch
    with pytest.raises(ValueError, match=r"variant must be one of \('lora', 'rslora', 'dora', 'pissa', 'loraga'\), got 'vera'"):
        PeftAdapter("vera")
    with pytest.raises(ValueError, match="rank must be an int >= 1, got 0"):
        PeftAdapter(rank=0)
    with pytest.raises(ValueError, match="give gradient_step"):
        attach(copy.deepcopy(base), PeftAdapter("loraga", rank=RANK))
    assert PeftAdapter("dora").init == "peft-dora" and PeftAdapter("loraga").needs_gradient


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_glue_run_with_a_peft_variant_is_reproducible_and_trains_only_its_adapters(variant):
    from compressible.finetune.backbones import TINY_BERT
    from compressible.finetune.classify import RunConfig
    from tests.finetune.tiny import tiny_bert_runner

    runner = tiny_bert_runner()
    config = RunConfig("stsb", n_train=16, steps=3, backbone=TINY_BERT, eval_limit=16, autocast="bf16",
                       adapter=PeftAdapter(variant, rank=4, targets="all-dense"), pooler="random")
    first, again = runner.run(config, 0), runner.run(config, 0)
    assert first["train_loss"] == again["train_loss"] and first["final"] == again["final"]
    assert first["adapter"] == f"peft-{variant}" and first["adapted_modules"] > 0
    assert runner.replay(config, 0, 2)["train_loss"] == first["train_loss"][:2]
    with pytest.raises(ValueError, match="leave them at 0 and \\(\\) for a PeftAdapter"):
        config.replace(spectrum_top=10)
