"""Tests of compressible.finetune.batches: dynamic padding, the authors' training order, evaluation batches
and sub-batches of similar length."""

import math

import numpy as np
import pytest
import torch

from compressible.finetune.batches import collate, eval_batches, length_groups, split_batch, train_batches
from compressible.finetune.glue import Examples


def _examples(lengths, regression=False):
    ids = [[5] * n for n in lengths]
    labels = np.arange(len(lengths), dtype=np.float32 if regression else np.int64)
    return Examples(ids, [[0] * n for n in lengths], labels, np.arange(len(lengths)))


def test_collate_pads_dynamically():
    batch = collate(_examples([3, 5, 2], regression=True), pad_token_id=0)
    assert batch["input_ids"].shape == (3, 5)
    assert batch["attention_mask"].sum(1).tolist() == [3, 5, 2]
    assert batch["input_ids"][2].tolist() == [5, 5, 0, 0, 0]
    assert batch["labels"].dtype == torch.float32
    assert collate(_examples([1, 2]), 0)["labels"].dtype == torch.int64


def test_train_batches_follow_the_authors_iterator():
    exact = train_batches(_examples([2] * 4), 4, 0, torch.Generator().manual_seed(0))
    first, second = next(exact), next(exact)
    assert first["labels"].tolist() == [0, 1, 2, 3] == second["labels"].tolist()  # full batch every step
    stream = train_batches(_examples([2] * 10), 4, 0, torch.Generator().manual_seed(0))
    epoch = [next(stream)["labels"].tolist() for _ in range(2)]  # 10 // 4 = 2 batches per epoch
    flat = sum(epoch, [])
    assert len(set(flat)) == 8  # no repeats within an epoch; the remainder of 2 is skipped
    again = train_batches(_examples([2] * 10), 4, 0, torch.Generator().manual_seed(0))
    assert [next(again)["labels"].tolist() for _ in range(2)] == epoch
    with pytest.raises(ValueError, match="batch_size 16 exceeds the 10 training examples"):
        next(train_batches(_examples([2] * 10), 16, 0, torch.Generator()))


def test_eval_batches_cover_every_example_once():
    examples = _examples([7, 1, 4, 4, 9, 2, 3])
    rows = np.concatenate([r for r, _ in eval_batches(examples, 3, 0)])
    assert sorted(rows.tolist()) == list(range(7))
    widths = [b["input_ids"].shape[1] for _, b in eval_batches(examples, 3, 0)]
    assert widths == sorted(widths)  # grouped by length


def _padded_cost(lengths, groups, overhead):
    return sum(len(g) * max(lengths[i] for i in g) + overhead for g in groups)


def _partitions(items):
    """Every way of cutting ``items`` into consecutive runs."""
    if not items:
        yield []
        return
    for cut in range(1, len(items) + 1):
        for rest in _partitions(items[cut:]):
            yield [items[:cut]] + rest


@pytest.mark.parametrize("lengths", [[7, 1, 4, 4, 9, 2, 3], [5], [3, 3, 3], [40, 2, 39, 3, 41, 2, 20, 21]])
@pytest.mark.parametrize("overhead", [0, 3, 10, 128])
def test_length_groups_are_the_cheapest_runs_of_sorted_rows(lengths, overhead):
    groups = length_groups(lengths, overhead)
    rows = np.concatenate(groups).tolist()
    assert sorted(rows) == list(range(len(lengths)))  # every row once
    assert all([lengths[i] for i in g] == sorted(lengths[i] for i in g) for g in groups)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    cheapest = min(_padded_cost(lengths, p, overhead) for p in _partitions(order))
    assert _padded_cost(lengths, groups, overhead) == cheapest  # the dynamic programme is exact
    assert len(length_groups(lengths, 10_000)) == 1


def test_length_groups_and_split_batch_refuse_bad_input_and_keep_every_token():
    for bad, message in (([], r"non-empty 1-D"), ([3, 0], r"every length must be >= 1, got \[3, 0\]")):
        with pytest.raises(ValueError, match=message):
            length_groups(bad)
    with pytest.raises(ValueError, match=r"overhead must be an int >= 0 \(tokens per pass\), got -1"):
        length_groups([2, 3], -1)
    batch = collate(_examples([40, 2, 39, 3, 41, 2], regression=True), pad_token_id=0)
    parts = split_batch(batch, overhead=8)
    assert len(parts) == 2 and math.isclose(sum(share for share, _ in parts), 1.0)
    for share, part in parts:  # each part cut to its own longest row, nothing real dropped
        assert part["attention_mask"].shape[1] == int(part["attention_mask"].sum(1).max())
        assert share == len(part["labels"]) / 6
    assert sorted(torch.cat([p["labels"] for _, p in parts]).tolist()) == batch["labels"].tolist()
    assert sum(int(p["attention_mask"].sum()) for _, p in parts) == int(batch["attention_mask"].sum())
