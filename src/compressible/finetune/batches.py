"""Batches of tokenised GLUE examples (:class:`~compressible.finetune.glue.Examples`) for training and evaluation.

Batches are padded dynamically to their longest example. The training order follows the
authors' iterator (:func:`train_batches`): a full batch every step when ``n`` equals the batch size,
otherwise epochs of fresh permutations whose incomplete last batch is skipped. A batch is a dict of
tensors ``input_ids, attention_mask, token_type_ids`` of shape ``(batch, longest)`` and
``labels`` of shape ``(batch,)`` (``float32`` for the regression task STS-B, ``int64`` otherwise);
:func:`split_batch` cuts one into sub-batches of similar length (:func:`length_groups`).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from .glue import Examples

__all__ = ["collate", "train_batches", "eval_batches", "length_groups", "split_batch", "LENGTH_GROUP_OVERHEAD"]


def collate(examples: Examples, pad_token_id: int) -> dict[str, Tensor]:
    """Pad ``examples`` to their longest member: a batch dict for ``model(**batch)``.

    Returns ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when present), each
    ``(B, longest)`` ``int64``, and ``labels`` ``(B,)``.
    """
    if len(examples) == 0:
        raise ValueError("cannot collate an empty batch")
    lengths = examples.lengths()
    width = int(lengths.max())
    ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    types = None if examples.token_type_ids is None else torch.zeros((len(examples), width), dtype=torch.long)
    for row, seq in enumerate(examples.input_ids):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
        if types is not None:
            types[row, : len(seq)] = torch.as_tensor(examples.token_type_ids[row], dtype=torch.long)
    batch = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        batch["token_type_ids"] = types
    batch["labels"] = torch.from_numpy(np.ascontiguousarray(examples.labels))
    return batch


def train_batches(
    examples: Examples, batch_size: int, pad_token_id: int, generator: torch.Generator
) -> Iterator[dict[str, Tensor]]:
    """An endless stream of training batches, as the authors' ``create_train_iterator``.

    If ``len(examples) == batch_size`` every batch is the whole set (in its stored order);
    otherwise each epoch is a fresh permutation from ``generator`` cut into
    ``len(examples) // batch_size`` batches, the incomplete remainder skipped.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(examples) < batch_size:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {len(examples)} training examples; "
            f"use batch_size <= {len(examples)} or more examples"
        )
    if len(examples) == batch_size:
        batch = collate(examples, pad_token_id)
        while True:
            yield {k: v.clone() for k, v in batch.items()}
    per_epoch = len(examples) // batch_size
    while True:
        order = torch.randperm(len(examples), generator=generator)[: per_epoch * batch_size]
        for rows in order.view(per_epoch, batch_size):
            yield collate(examples.subset(rows.numpy()), pad_token_id)


def eval_batches(
    examples: Examples, batch_size: int, pad_token_id: int
) -> Iterator[tuple[np.ndarray, dict[str, Tensor]]]:
    """``(rows, batch)`` pairs covering ``examples`` once, ``batch_size`` at a time.

    Examples are grouped by length so that dynamic padding wastes little; ``rows`` says which
    positions of ``examples`` a batch holds, so predictions can be put back in order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(examples.lengths(), kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        yield rows, collate(examples.subset(rows), pad_token_id)


LENGTH_GROUP_OVERHEAD = 256
"""What one more forward/backward pass costs, in padded tokens, to :func:`length_groups`. On the ci plan's
STS-B batches (one-thread MiniLM steps on a CPU), ``benchmarks/length_groups.py`` measured 1.46x less step
time than one padded batch at 256, 1.41x at 64 and at 128 and 1.36x at 32. Two such runs side by side (the
ci sweep) gained less, about 1.1-1.2x: each extra pass reads every weight again, and the two runs share the
memory bus; so the largest value measured, with the fewest passes, is the default."""


def length_groups(lengths: Sequence[int] | np.ndarray | Tensor, overhead: int = LENGTH_GROUP_OVERHEAD) -> list[np.ndarray]:
    """Rows of a batch in groups of similar length, each to be padded only to its own longest member.

    The groups are runs of the rows sorted by length, chosen (exactly, by dynamic programming) to
    minimise the padded tokens ``sum(len(group) * max length in group)`` plus ``overhead`` tokens per
    group. ``overhead=0`` would give every distinct length its own group; a large one keeps one group.
    Every row appears in exactly one group; each group's rows are in increasing order of length.

    Raises:
        ValueError: for an empty batch, a length below 1 or a negative ``overhead``.
    """
    lengths = np.asarray(lengths.cpu() if isinstance(lengths, Tensor) else lengths)
    if lengths.ndim != 1 or len(lengths) == 0:
        raise ValueError(f"lengths must be a non-empty 1-D sequence, got shape {lengths.shape}")
    if (lengths < 1).any():
        raise ValueError(f"every length must be >= 1, got {lengths.tolist()}")
    if not (isinstance(overhead, (int, np.integer)) and not isinstance(overhead, bool)) or overhead < 0:
        raise ValueError(f"overhead must be an int >= 0 (tokens per pass), got {overhead!r}")
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    size = len(order)
    best = [0] + [None] * size  # best[j]: cheapest cost of the first j sorted rows
    cut = [0] * (size + 1)
    for end in range(1, size + 1):
        for start in range(end):
            cost = best[start] + (end - start) * int(sorted_lengths[end - 1]) + overhead
            if best[end] is None or cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], size
    while end > 0:
        groups.append(order[cut[end]:end])
        end = cut[end]
    return groups[::-1]


def split_batch(batch: dict[str, Tensor], overhead: int = LENGTH_GROUP_OVERHEAD) -> list[tuple[float, dict[str, Tensor]]]:
    """A :func:`collate` batch as sub-batches of similar length (:func:`length_groups` on its
    ``attention_mask``), each cut to its own longest member: ``[(share of the rows, sub-batch)]``.

    A padded position changes no real token's output in a BERT-style encoder, so a loss averaged over
    the batch equals the share-weighted sum of the sub-batches' mean losses (up to rounding, and
    dropout masks aside): the gradients of one step are those of the whole batch, at less padding.
    """
    mask = batch["attention_mask"]
    total = mask.shape[0]
    out = []
    for rows in length_groups(mask.sum(dim=1), overhead):
        index = torch.as_tensor(rows, dtype=torch.long)
        width = int(mask[index].sum(dim=1).max())
        sub = {k: (v[index, :width] if v.dim() == 2 else v[index]) for k, v in batch.items()}
        out.append((len(rows) / total, sub))
    return out
