"""Tests of :mod:`compressible.finetune.e2e`: the few-shot sample, the evaluation set and the batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compressible.finetune.e2e import (
    batch_schedule,
    evaluation_set,
    few_shot_indices,
    generation_prompts,
    pad_sequences,
    training_batch,
)

from .tiny import backbone as _backbone
from .tiny import rows as _rows


def test_evaluation_set_keeps_every_reference_of_an_mr():
    rows = _rows()
    full = evaluation_set(rows)
    assert len(full) == len(set(rows["meaning_representation"]))
    for mr, refs in zip(full.mrs, full.references):
        expected = [r.strip() for m, r in zip(rows["meaning_representation"], rows["human_reference"]) if m == mr]
        assert list(refs) == expected
    subset = evaluation_set(rows, n_eval=5)
    assert len(subset) == 5 and subset == evaluation_set(rows, n_eval=5)  # fixed subset
    assert set(subset.mrs) <= set(full.mrs)
    with pytest.raises(ValueError, match="n_eval 999 exceeds"):
        evaluation_set(rows, n_eval=999)


def test_few_shot_sampling_is_seeded_filtered_and_with_replacement():
    rows = _rows(n=40)
    tok = _backbone("causal").tokenizer
    limit = 6  # the long references ("... near the river .") have more than 6 tokens
    picks = few_shot_indices(rows, tok, 200, seed=3, max_source_tokens=64, max_target_tokens=limit)
    assert np.array_equal(picks, few_shot_indices(rows, tok, 200, seed=3, max_source_tokens=64, max_target_tokens=limit))
    assert not np.array_equal(picks[:16], few_shot_indices(rows, tok, 16, seed=4, max_source_tokens=64,
                                                           max_target_tokens=limit))
    lengths = [len(tok(rows[int(i)]["human_reference"])["input_ids"]) for i in picks]
    assert max(lengths) <= limit
    eligible = {i for i in range(len(rows)) if len(tok(rows[i]["human_reference"])["input_ids"]) <= limit}
    assert set(picks.tolist()) <= eligible and len(set(picks.tolist())) < len(picks)  # repeats: with replacement
    with pytest.raises(ValueError, match="raise max_source_tokens"):
        few_shot_indices(rows, tok, 4, seed=0, max_source_tokens=1, max_target_tokens=1, max_draws=50)


def test_causal_batch_puts_the_loss_on_reference_tokens_only():
    backbone = _backbone("causal")
    pairs = [("name[Aromi], food[Chinese]", "Aromi serves Chinese food ."), ("name[Cotto], food[English]", "Cotto .")]
    batch = training_batch(backbone, pairs)
    for i, (mr, ref) in enumerate(pairs):
        prompt = generation_prompts(backbone, [mr])[0]
        target = backbone.tokenizer(" " + ref, add_special_tokens=False)["input_ids"] + [backbone.eos_token_id]
        row, labels = batch["input_ids"][i], batch["labels"][i]
        assert row[: len(prompt)].tolist() == prompt
        assert (labels[: len(prompt)] == -100).all()
        assert labels[len(prompt): len(prompt) + len(target)].tolist() == target
        assert (labels[len(prompt) + len(target):] == -100).all()
        assert batch["attention_mask"][i].sum() == len(prompt) + len(target)


def test_seq2seq_batch_has_source_and_target():
    backbone = _backbone("seq2seq")
    batch = training_batch(backbone, [("name[Aromi], food[Chinese]", "Aromi serves Chinese food ."), ("name[Cotto]", "Cotto .")])
    assert batch["labels"][1, -1] == -100  # shorter target padded with -100
    assert batch["labels"][0, -1] == backbone.eos_token_id  # targets end in </s>
    assert batch["input_ids"].shape[0] == batch["labels"].shape[0] == 2


def test_batch_schedule_covers_each_epoch_once():
    assert [b.tolist() for b in batch_schedule(4, 4, 3, seed=0)] == [[0, 1, 2, 3]] * 3  # the whole set every step
    batches = batch_schedule(10, 4, 5, seed=1)
    assert len(batches) == 5 and all(len(b) == 4 for b in batches)
    for epoch in (batches[0:2], batches[2:4]):  # 2 full batches per epoch, no index twice in an epoch
        flat = np.concatenate(epoch)
        assert len(set(flat.tolist())) == 8
    assert [b.tolist() for b in batch_schedule(10, 4, 5, seed=1)] == [b.tolist() for b in batches]


def test_pad_sequences_right_and_left():
    assert pad_sequences([[1, 2], [3]], 0).tolist() == [[1, 2], [3, 0]]
    assert pad_sequences([[1, 2], [3]], 9, left=True).tolist() == [[1, 2], [9, 3]]
    assert pad_sequences([[1]], 0).dtype == torch.long
