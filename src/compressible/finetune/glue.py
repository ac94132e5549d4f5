"""GLUE for few-shot Deep LoRA experiments (paper Sec. 4, Table 1 and Figs. 2, 6-8).

The protocol of the authors' code (``dlt/data.py``), step by step:

1. ``load_dataset("nyu-mll/glue", task)`` through :func:`compressible.hub.load_dataset`, so that
   ``COMPRESSIBLE_GLUE`` can point it at a local mirror;
2. tokenise every split once with the backbone's tokenizer (sentence pairs as pairs);
3. drop every example longer than ``max_length`` (128) tokens -- in *every* split, the validation
   split included, exactly as the authors' loop over ``raw_datasets.items()`` does;
4. per seed, draw ``n`` training examples uniformly **with replacement** from the filtered training
   split. The draw depends only on ``(task, n, seed)`` (and the replacement flag), never on the
   method, so every method sees the same subset at a seed;
5. evaluate on the whole (filtered) validation split; MNLI uses ``validation_matched``.

Batches are padded dynamically to their longest example. The training order follows the
authors' iterator: a full batch every step when ``n`` equals the batch size, otherwise epochs of
fresh permutations whose incomplete last batch is skipped.

Objects here hold token ids as Python lists and labels as NumPy arrays; a batch is a dict of
tensors ``input_ids, attention_mask, token_type_ids`` of shape ``(batch, longest)`` and
``labels`` of shape ``(batch,)`` (``float32`` for the regression task STS-B, ``int64`` otherwise).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ..hub import dataset_source, load_dataset

__all__ = [
    "HUB_ID",
    "TASKS",
    "TEXT_FIELDS",
    "OFFICIAL_SIZES",
    "check_task",
    "is_regression",
    "num_labels",
    "eval_split",
    "derived_seed",
    "Examples",
    "GlueData",
    "load_glue",
    "sample_indices",
    "collate",
    "train_batches",
    "eval_batches",
    "length_groups",
    "split_batch",
    "LENGTH_GROUP_OVERHEAD",
    "data_card",
]

log = logging.getLogger(__name__)

HUB_ID = "nyu-mll/glue"

TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")
"""The eight GLUE tasks of the paper's Table 1 (WNLI is not used)."""

TEXT_FIELDS: dict[str, tuple[str, str | None]] = {
    "cola": ("sentence", None),
    "sst2": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "stsb": ("sentence1", "sentence2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
}
"""The text column(s) of each task; a second column means the input is a sentence pair."""

OFFICIAL_SIZES: dict[str, dict[str, int]] = {
    "cola": {"train": 8551, "validation": 1043},
    "sst2": {"train": 67349, "validation": 872},
    "mrpc": {"train": 3668, "validation": 408},
    "qqp": {"train": 363846, "validation": 40430},
    "stsb": {"train": 5749, "validation": 1500},
    "mnli": {"train": 392702, "validation_matched": 9815},
    "qnli": {"train": 104743, "validation": 5463},
    "rte": {"train": 2490, "validation": 277},
}
"""Rows of the official GLUE splits (``nyu-mll/glue`` on the hub), to check a mirror against."""

_NUM_LABELS = {"stsb": 1, "mnli": 3}


def check_task(task: str) -> str:
    """Return ``task`` if it is one of :data:`TASKS`, else raise a ``ValueError`` naming it."""
    if task not in TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; valid tasks are {TASKS}")
    return task


def is_regression(task: str) -> bool:
    """STS-B is a regression (one output, MSE loss); every other task is classification."""
    return check_task(task) == "stsb"


def num_labels(task: str) -> int:
    """Outputs of the classification head: 1 for STS-B, 3 for MNLI, 2 otherwise."""
    return _NUM_LABELS.get(check_task(task), 2)


def eval_split(task: str) -> str:
    """The split the paper evaluates on: ``validation_matched`` for MNLI, else ``validation``."""
    return "validation_matched" if check_task(task) == "mnli" else "validation"


def derived_seed(*parts: Any) -> int:
    """A seed in ``[0, 2**63)`` determined by ``parts`` only (stable across runs and machines).

    Used to give every random stream of an experiment (sampling, batch order, head, dropout) its
    own generator: ``derived_seed("sample", task, n, seed)``.
    """
    text = "/".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)


@dataclass(frozen=True)
class Examples:
    """Tokenised examples of one split (or a sample of one).

    Attributes:
        input_ids: token ids of each example (lengths vary; at most ``max_length``).
        token_type_ids: segment ids of each example, or ``None`` if the tokenizer has none.
        labels: ``(N,)`` labels, ``float32`` (STS-B scores) or ``int64`` (class indices).
        idx: ``(N,)`` GLUE ``idx`` of each example in its original split (repeats when sampled
            with replacement).
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: np.ndarray
    idx: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        """``(N,)`` number of tokens of each example."""
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self))

    def subset(self, rows: Sequence[int] | np.ndarray) -> "Examples":
        """The examples at positions ``rows`` (in that order, repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows must lie in [0, {len(self)}), got min {rows.min()} and max {rows.max()}")
        return Examples(
            input_ids=[self.input_ids[i] for i in rows],
            token_type_ids=None if self.token_type_ids is None else [self.token_type_ids[i] for i in rows],
            labels=self.labels[rows],
            idx=self.idx[rows],
        )


@dataclass(frozen=True)
class GlueData:
    """One GLUE task tokenised for one backbone, length-filtered, ready to sample from.

    Attributes:
        task: the GLUE task.
        tokenizer: ``name_or_path`` of the tokenizer used.
        max_length: examples with more tokens were dropped (from both splits).
        train: the filtered training split (the pool few-shot samples are drawn from).
        eval: the filtered evaluation split.
        eval_split: its name (``validation`` or ``validation_matched``).
        raw_sizes: rows of the training and evaluation split before filtering.
        pad_token_id: the tokenizer's padding id.
    """

    task: str
    tokenizer: str
    max_length: int
    train: Examples
    eval: Examples
    eval_split: str
    raw_sizes: dict[str, int]
    pad_token_id: int

    def sample(self, n: int | None, seed: int, replace: bool = True, holdout: int = 0) -> Examples:
        """The training examples of ``seed``: ``n`` rows drawn from :attr:`train`, or all if ``n is None``.

        With ``holdout > 0`` they are drawn from the pool without the :meth:`holdout` rows, so no
        sample ever contains one of them. The draw depends only on ``(task, n, seed, replace,
        holdout)``; see :func:`sample_indices`.
        """
        pool = self.train if holdout == 0 else self.train.subset(self._holdout_rows(holdout)[1])
        if n is None:
            return pool
        return pool.subset(sample_indices(self.task, len(pool), n, seed, replace))

    def holdout(self, size: int) -> Examples:
        """``size`` training examples set aside from every few-shot sample (a fixed draw per task):
        the split learning rates are tuned on, disjoint from :meth:`sample` ``(..., holdout=size)``
        and from the evaluation split."""
        return self.train.subset(self._holdout_rows(size)[0])

    def _holdout_rows(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(held-out rows, remaining rows)`` of :attr:`train`, both sorted; a permutation prefix seeded by the task."""
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size < len(self.train):
            raise ValueError(
                f"holdout must be a whole number in [1, {len(self.train) - 1}] (the {self.task} training pool "
                f"has {len(self.train)} examples), got {size!r}"
            )
        gen = torch.Generator().manual_seed(derived_seed("holdout", self.task))
        order = torch.randperm(len(self.train), generator=gen).numpy()
        return np.sort(order[:size]), np.sort(order[size:])

    def eval_subset(self, limit: int | None) -> Examples:
        """The evaluation examples, or a fixed subset of ``limit`` of them (the same for every seed).

        The subset is a permutation prefix seeded by the task alone; ``None`` (the paper's
        protocol) keeps the whole split.
        """
        if limit is None or limit >= len(self.eval):
            return self.eval
        if limit < 1:
            raise ValueError(f"eval limit must be >= 1 or None, got {limit}")
        gen = torch.Generator().manual_seed(derived_seed("eval-subset", self.task))
        rows = torch.randperm(len(self.eval), generator=gen)[:limit].sort().values.numpy()
        return self.eval.subset(rows)


def sample_indices(task: str, pool_size: int, n: int, seed: int, replace: bool = True) -> np.ndarray:
    """``(n,)`` row indices into a pool of ``pool_size`` training examples of ``task``.

    Uniform **with replacement** (the authors' ``jax.random.choice`` default) unless
    ``replace=False``. A ``torch.Generator`` seeded with ``derived_seed("sample", task, n, seed,
    replace)`` makes the draw a function of these arguments only: every method, run and
    machine gets the same rows.
    """
    check_task(task)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n (training examples per seed) must be a positive int, got {n!r}")
    if pool_size < 1:
        raise ValueError(f"the {task} training pool is empty; nothing to sample from")
    if not replace and n > pool_size:
        raise ValueError(
            f"cannot draw n={n} examples without replacement from {pool_size} {task} training examples; "
            "lower n or sample with replacement"
        )
    gen = torch.Generator().manual_seed(derived_seed("sample", task, n, seed, bool(replace)))
    if replace:
        rows = torch.randint(pool_size, (n,), generator=gen)
    else:
        rows = torch.randperm(pool_size, generator=gen)[:n]
    return rows.numpy().astype(np.int64)


def _tokenize(split, task: str, tokenizer) -> Examples:
    first, second = TEXT_FIELDS[task]
    texts = [list(split[first])] + ([list(split[second])] if second else [])
    encoded = tokenizer(*texts, truncation=False, padding=False, return_attention_mask=False)
    token_types = encoded.get("token_type_ids")
    label_dtype = np.float32 if is_regression(task) else np.int64
    return Examples(
        input_ids=list(encoded["input_ids"]),
        token_type_ids=None if token_types is None else list(token_types),
        labels=np.asarray(split["label"], dtype=label_dtype),
        idx=np.asarray(split["idx"], dtype=np.int64),
    )


def _keep_short(examples: Examples, max_length: int) -> Examples:
    keep = np.flatnonzero(examples.lengths() <= max_length)
    return examples if len(keep) == len(examples) else examples.subset(keep)


def load_glue(task: str, tokenizer, max_length: int = 128, filter_eval: bool = True) -> GlueData:
    """Load, tokenise and length-filter ``task`` with ``tokenizer`` (a transformers tokenizer).

    Args:
        task: one of :data:`TASKS`.
        tokenizer: the backbone's tokenizer (fast tokenizers are much quicker).
        max_length: drop examples with more tokens than this (the authors' 128).
        filter_eval: also filter the evaluation split (the authors do); ``False`` keeps every
            validation example and truncates none -- then ``max_length`` only bounds training data.

    Tokenising is the slow part (seconds for SST-2's 67k sentences); call this once per task and
    backbone and sample from the result.
    """
    check_task(task)
    if not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
    raw = load_dataset(HUB_ID, task)
    split = eval_split(task)
    missing = [s for s in ("train", split) if s not in raw]
    if missing:
        raise ValueError(f"GLUE {task!r} from {dataset_source(HUB_ID).location} lacks split(s) {missing}; has {list(raw)}")
    train = _tokenize(raw["train"], task, tokenizer)
    evaluation = _tokenize(raw[split], task, tokenizer)
    filtered_train = _keep_short(train, max_length)
    filtered_eval = _keep_short(evaluation, max_length) if filter_eval else evaluation
    log.info(
        "%s: kept %d/%d train and %d/%d %s examples of <= %d tokens",
        task, len(filtered_train), len(train), len(filtered_eval), len(evaluation), split, max_length,
    )
    pad = tokenizer.pad_token_id
    if pad is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no pad token; set tokenizer.pad_token first")
    return GlueData(
        task=task,
        tokenizer=str(tokenizer.name_or_path),
        max_length=max_length,
        train=filtered_train,
        eval=filtered_eval,
        eval_split=split,
        raw_sizes={"train": len(train), split: len(evaluation)},
        pad_token_id=int(pad),
    )


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


_MIRROR_NOTES = {
    "qqp": (
        "QQP validation here is NOT the official validation split: it holds pairs held out from the "
        "official training split (disjoint from this train split). QQP numbers on this mirror are "
        "not comparable to published QQP validation numbers."
    ),
}


def data_card(task: str, tokenizer=None, max_length: int = 128) -> dict[str, Any]:
    """Where ``task`` comes from and what it holds, with the caveats a reader must know.

    Returns a dict: ``task, hub_id, source, local_mirror, splits`` (rows per split),
    ``official_sizes``, ``train_split, eval_split, text_fields, num_labels, regression`` and
    ``caveats`` (a list of sentences; empty for an official copy). A split smaller than the
    official one is reported as a subset, and the QQP mirror's held-out validation is named. With a
    ``tokenizer``, also ``filtered`` (rows of at most ``max_length`` tokens per split).
    """
    check_task(task)
    source = dataset_source(HUB_ID)
    raw = load_dataset(HUB_ID, task)
    sizes = {name: len(split) for name, split in raw.items()}
    official = OFFICIAL_SIZES[task]
    caveats = []
    if source.is_local:
        for name, rows in official.items():
            have = sizes.get(name)
            if have is None:
                caveats.append(f"split {name!r} is missing from the mirror")
            elif have < rows and not (task == "qqp" and name == "validation"):
                caveats.append(
                    f"{name} is a subset: {have:,} of the official {rows:,} rows "
                    f"({100 * have / rows:.1f}%); few-shot samples are drawn from this smaller pool"
                )
        if task in _MIRROR_NOTES and sizes.get("validation") != official.get("validation"):
            caveats.append(_MIRROR_NOTES[task])
    card = {
        "task": task,
        "hub_id": HUB_ID,
        "source": source.location,
        "local_mirror": source.is_local,
        "splits": sizes,
        "official_sizes": dict(official),
        "train_split": "train",
        "eval_split": eval_split(task),
        "text_fields": [f for f in TEXT_FIELDS[task] if f],
        "num_labels": num_labels(task),
        "regression": is_regression(task),
        "caveats": caveats,
    }
    if tokenizer is not None:
        data = load_glue(task, tokenizer, max_length)
        card["filtered"] = {"max_length": max_length, "train": len(data.train), data.eval_split: len(data.eval)}
    return card
