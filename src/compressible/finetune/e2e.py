"""E2E NLG few-shot data (paper App. C): the training sample, the evaluation set, prompts, batches.

A meaning representation (MR) such as ``name[The Eagle], eatType[pub], area[riverside]`` is turned
into a sentence. Each seed draws a few training pairs (MR, one human reference) among those that
fit the length limits (:func:`few_shot_indices`); every run is scored on the same set of unique MRs
with *all* their human references (:func:`evaluation_set`). :func:`training_batch` and
:func:`generation_prompts` turn MRs into token ids for a loaded
:class:`~compressible.finetune.backbones.Backbone` (seq2seq: the MR is the encoder input, as in the
authors' code, no task prefix; causal: the MR goes into a chat prompt and the loss covers the
reference tokens only); :func:`batch_schedule` orders the few-shot pairs into steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch import Tensor

from ..hub import E2E_HUB_ID  # re-exported: where the E2E data come from (see compressible.hub)

if TYPE_CHECKING:
    from .backbones import Backbone

__all__ = [
    "E2E_HUB_ID",
    "CHAT_INSTRUCTION",
    "EvalSet",
    "fits_lengths",
    "few_shot_indices",
    "evaluation_set",
    "batch_schedule",
    "generation_prompts",
    "pad_sequences",
    "training_batch",
]


#: The system message of a chat (instruct) model; the MR is the user message. Kept short: every
#: prompt token is paid for at every training step.
CHAT_INSTRUCTION = "Describe the restaurant in one sentence."


def _token_lengths(tokenizer, texts: Sequence[str]) -> np.ndarray:
    encoded = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    return np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))


def fits_lengths(tokenizer, mrs: Sequence[str], references: Sequence[str], max_source_tokens: int,
                 max_target_tokens: int) -> np.ndarray:
    """Boolean mask: the MR has at most ``max_source_tokens`` and the reference at most
    ``max_target_tokens`` tokens, counted with the tokenizer's own special tokens (the authors' ``keep_fn``)."""
    source = _token_lengths(tokenizer, mrs)
    target = _token_lengths(tokenizer, references)
    return (source <= max_source_tokens) & (target <= max_target_tokens)


def few_shot_indices(rows, tokenizer, n: int, seed: int, max_source_tokens: int = 64,
                     max_target_tokens: int = 64, *, max_draws: int = 100_000) -> np.ndarray:
    """``n`` row indices of ``rows`` drawn uniformly *with replacement* among the pairs that fit the
    length limits (the authors' sampler: filter, then ``choice`` with replacement).

    Implemented by rejection: uniform draws over all rows, keeping those that fit. Each kept draw
    is uniform over the fitting rows and independent of the others, which is exactly sampling with
    replacement from the filtered split -- without tokenising the whole split. Depends on ``seed``
    only, so every method sees the same few-shot set for a seed.
    """
    rng = np.random.default_rng([seed, 20240604])
    kept: list[int] = []
    drawn = 0
    while len(kept) < n:
        if drawn >= max_draws:
            raise ValueError(
                f"only {len(kept)} of {drawn} random training pairs fit MR <= {max_source_tokens} and reference <= "
                f"{max_target_tokens} tokens; raise max_source_tokens / max_target_tokens"
            )
        candidates = rng.integers(0, len(rows), size=2 * n)
        drawn += len(candidates)
        chunk = rows.select(candidates.tolist())
        mask = fits_lengths(tokenizer, chunk["meaning_representation"], chunk["human_reference"],
                            max_source_tokens, max_target_tokens)
        kept.extend(int(c) for c in candidates[mask])
    return np.asarray(kept[:n], dtype=np.int64)


@dataclass(frozen=True)
class EvalSet:
    """Unique MRs of a split and all their human references (``references[i]`` belongs to ``mrs[i]``)."""

    mrs: tuple[str, ...]
    references: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.mrs)


def evaluation_set(rows, n_eval: int | None = None, seed: int = 0) -> EvalSet:
    """Group a split by MR (in order of first appearance) and keep ``n_eval`` MRs.

    ``n_eval=None`` keeps all of them; otherwise a fixed random subset drawn with ``seed`` (kept in
    order of first appearance), so every run is scored on the same MRs.
    """
    grouped: dict[str, list[str]] = {}
    for mr, ref in zip(rows["meaning_representation"], rows["human_reference"]):
        grouped.setdefault(mr, []).append(ref.strip())
    mrs = list(grouped)
    if n_eval is not None:
        if n_eval > len(mrs):
            raise ValueError(f"n_eval {n_eval} exceeds the {len(mrs)} unique MRs of the split; use <= {len(mrs)} or None")
        keep = np.sort(np.random.default_rng(seed).choice(len(mrs), size=n_eval, replace=False))
        mrs = [mrs[i] for i in keep]
    return EvalSet(tuple(mrs), tuple(tuple(grouped[mr]) for mr in mrs))


def _with_eos(ids: list[int], eos: int) -> list[int]:
    # T5's tokenizer appends </s> itself; the word-level tokenizer of the tiny models does not.
    return ids if ids and ids[-1] == eos else ids + [eos]


def _prompt_ids(backbone: Backbone, mr: str) -> list[int]:
    tokenizer = backbone.tokenizer
    if backbone.kind == "seq2seq":
        return _with_eos(tokenizer(mr, add_special_tokens=True)["input_ids"], backbone.eos_token_id)
    if backbone.chat:
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": CHAT_INSTRUCTION}, {"role": "user", "content": mr}],
            tokenize=False, add_generation_prompt=True,
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(f"{mr} :", add_special_tokens=False)["input_ids"]


def _target_ids(backbone: Backbone, reference: str) -> list[int]:
    if backbone.kind == "seq2seq":
        return _with_eos(backbone.tokenizer(reference, add_special_tokens=True)["input_ids"], backbone.eos_token_id)
    ids = backbone.tokenizer(" " + reference if not backbone.chat else reference, add_special_tokens=False)["input_ids"]
    return ids + [backbone.eos_token_id]


def generation_prompts(backbone: Backbone, mrs: Sequence[str]) -> list[list[int]]:
    """Token ids of the model input for each MR (encoder input, or the chat prompt up to the answer)."""
    return [_prompt_ids(backbone, mr) for mr in mrs]


def pad_sequences(seqs: Sequence[Sequence[int]], value: int, left: bool = False) -> Tensor:
    """``(len(seqs), longest)`` long tensor of ``seqs`` padded with ``value`` on the right (or the left)."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if left:
            out[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        else:
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def training_batch(backbone: Backbone, pairs: Sequence[tuple[str, str]]) -> dict[str, Tensor]:
    """A batch dict for ``model(**batch).loss`` from ``(MR, reference)`` pairs.

    Seq2seq: ``input_ids``/``attention_mask`` of the MRs (right-padded) and ``labels`` = reference
    tokens with padding at -100. Causal: prompt + reference + end-of-turn, right-padded, with
    ``labels`` = -100 on the prompt and the padding, so the loss covers the reference tokens (and
    the end token that stops generation) only. Shapes ``(batch, length)``.
    """
    if not pairs:
        raise ValueError("training_batch needs at least one (MR, reference) pair")
    if backbone.kind == "seq2seq":
        sources = [_prompt_ids(backbone, mr) for mr, _ in pairs]
        targets = [_target_ids(backbone, ref) for _, ref in pairs]
        input_ids = pad_sequences(sources, backbone.pad_token_id)
        mask = pad_sequences([[1] * len(s) for s in sources], 0)
        labels = pad_sequences(targets, -100)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
    sequences, labels = [], []
    for mr, ref in pairs:
        prompt, target = _prompt_ids(backbone, mr), _target_ids(backbone, ref)
        sequences.append(prompt + target)
        labels.append([-100] * len(prompt) + target)
    return {
        "input_ids": pad_sequences(sequences, backbone.pad_token_id),
        "attention_mask": pad_sequences([[1] * len(s) for s in sequences], 0),
        "labels": pad_sequences(labels, -100),
    }


def batch_schedule(n: int, batch_size: int, steps: int, seed: int) -> list[np.ndarray]:
    """Few-shot index batches for ``steps`` steps: the whole set every step when ``batch_size == n``, else
    a fresh permutation per epoch split into full batches (incomplete ones skipped), as the authors do."""
    if batch_size == n:
        return [np.arange(n)] * steps
    rng = np.random.default_rng([seed, 1])
    per_epoch = n // batch_size
    batches: list[np.ndarray] = []
    while len(batches) < steps:
        perm = rng.permutation(n)[: per_epoch * batch_size].reshape(per_epoch, batch_size)
        batches.extend(perm)
    return batches[:steps]
