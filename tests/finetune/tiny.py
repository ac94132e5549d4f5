"""Tiny in-memory E2E stand-ins and random backbones shared by the finetune tests (no download)."""

from __future__ import annotations

import datasets
import numpy as np

from compressible.finetune.backbones import Backbone, tiny_model, word_tokenizer

NAMES = ["The Eagle", "Aromi", "Cotto", "The Vaults", "Zizzi", "Loch Fyne"]
FOODS = ["Chinese", "English", "Italian", "Japanese"]


def rows(n: int = 48, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    mrs, refs = [], []
    for i in range(n):
        name, food = NAMES[i % len(NAMES)], FOODS[rng.integers(len(FOODS))]
        mr = f"name[{name}], food[{food}]"
        mrs.append(mr)
        refs.append(f"{name} serves {food} food ." if i % 3 else f"{name} is a place with {food} food near the river .")
    return datasets.Dataset.from_dict({"meaning_representation": mrs, "human_reference": refs})


def backbone(kind: str) -> Backbone:
    rows_ = rows()
    tok = word_tokenizer(list(rows_["meaning_representation"]) + list(rows_["human_reference"]))
    model = tiny_model(kind, len(tok), seed=0, hidden=32, layers=1)
    name = "tiny-llama" if kind == "causal" else "tiny-t5"
    return Backbone(name, kind, model, tok, tok.eos_token_id, tok.pad_token_id, False, "test")


def tiny_bert_runner(device="cpu", threads=None):
    """A :class:`~compressible.finetune.classify.Runner` with the tiny BERT's tokenizer and the STS-B data
    loaded, or a skip when the GLUE mirror or the MiniLM tokenizer is missing."""
    import pytest

    from compressible.finetune.backbones import TINY_BERT
    from compressible.finetune.classify import RunConfig, Runner
    from compressible.hub import ResourceMissingError

    runner = Runner(device, progress=False, threads=threads)
    try:
        runner.tokenizer(TINY_BERT)
        runner.data(RunConfig("stsb", n_train=16, backbone=TINY_BERT))
    except (ResourceMissingError, OSError) as error:
        pytest.skip(f"needs the GLUE mirror and the MiniLM tokenizer: {error}")
    return runner
