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

Objects here hold token ids as Python lists and labels as NumPy arrays. Batching them (dynamic
padding, the authors' training order, sub-batches of similar length) is :mod:`compressible.finetune.batches`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

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
