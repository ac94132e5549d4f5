"""Few-shot data-to-text generation on E2E NLG with LoRA and Deep LoRA adapters (paper App. C).

A meaning representation (MR) such as ``name[The Eagle], eatType[pub], area[riverside]`` is turned
into a sentence. Each seed draws 16 training pairs (MR, one human reference), the adapters are
trained on them, and the model generates a sentence for every MR of a fixed evaluation set; the
sentences are scored against *all* human references of their MR (:func:`generation_metrics`).

Three backbones, one per scale (see :data:`BACKBONES` and :func:`protocol`):

- ``"t5-base"`` (``google-t5/t5-base``, seq2seq): the paper's model. The MR is the encoder input,
  the reference the decoder target, as in the authors' code (no task prefix).
- ``"smollm2"`` (``HuggingFaceTB/SmolLM2-135M-Instruct``, decoder only): the ``ci`` model. The MR
  goes into a chat prompt and the loss is taken on the reference tokens only.
  ``COMPRESSIBLE_SMOLLM`` points it at the local 4-bit GGUF (:func:`load_smollm`).
- ``"tiny-llama"`` and ``"tiny-t5"``: random, tiny models with a word-level tokenizer built from
  the E2E training split; nothing is downloaded (``smoke`` scale and tests).

An experiment is a frozen :class:`GenerationConfig`; :class:`GenerationExperiment` runs
``(config, seed)`` pairs through :class:`compressible.store.ResultStore`, loading the backbone
only when a run is missing.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..hub import ResourceMissingError, load_dataset, load_pretrained
from ..scales import check_scale
from ..store import ResultStore

__all__ = [
    "E2E_HUB_ID",
    "SMOLLM_HUB_ID",
    "SMOLLM_GGUF",
    "T5_HUB_ID",
    "BACKBONES",
    "METRICS",
    "AdapterSpec",
    "GenerationConfig",
    "GenerationProtocol",
    "Backbone",
    "EvalSet",
    "protocol",
    "load_smollm",
    "load_backbone",
    "word_tokenizer",
    "tiny_model",
    "fits_lengths",
    "few_shot_indices",
    "evaluation_set",
    "training_batch",
    "generation_prompts",
    "train_adapters",
    "generate",
    "meteor_available",
    "generation_metrics",
    "run_generation",
    "GenerationExperiment",
    "metrics_frame",
    "paired_differences",
    "summary_table",
    "examples_table",
]

log = logging.getLogger(__name__)

E2E_HUB_ID = "tuetschek/e2e_nlg"
SMOLLM_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM_VARIABLE = "COMPRESSIBLE_SMOLLM"
T5_HUB_ID = "google-t5/t5-base"

#: backbone name -> (kind, where it comes from)
BACKBONES: dict[str, tuple[str, str]] = {
    "t5-base": ("seq2seq", T5_HUB_ID),
    "smollm2": ("causal", SMOLLM_HUB_ID),
    "tiny-llama": ("causal", "random LlamaConfig, word-level tokenizer (no download)"),
    "tiny-t5": ("seq2seq", "random T5Config, word-level tokenizer (no download)"),
}

#: Metric columns of :func:`generation_metrics` (``meteor`` only when WordNet is installed).
METRICS = ("bleu", "rouge1", "rouge2", "rougeL")

#: The system message of a chat (instruct) model; the MR is the user message. Kept short: every
#: prompt token is paid for at every training step.
CHAT_INSTRUCTION = "Describe the restaurant in one sentence."


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdapterSpec:
    """One adapter method: the :class:`~compressible.deeplora.DeepLoRAConfig` fields and its rates."""

    label: str
    """Name shown in tables and figures, e.g. ``"vanilla LoRA"``."""

    init: str
    """``DeepLoRAConfig.init``: ``"lora"``, ``"compressed"``, ``"random"`` or ``"full"``."""

    depth: int
    """Number of factors of the (uncompressed) product -- 2 for LoRA, 3 for Deep LoRA."""

    rank: int = 8
    """Adapter width ``r``."""

    lr: float = 1e-4
    """Adam learning rate of the inner factors (all factors of a LoRA adapter)."""

    gamma: float = 1e-2
    """Outer factors (``left``, ``right``) of compressed adapters train at ``gamma * lr``."""

    epsilon: float = 1e-3
    """Scale of the ``eps * I`` inner factors of compressed adapters."""

    def __post_init__(self) -> None:
        from ..deeplora.config import INITS

        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if not self.label:
            raise ValueError("label must be a non-empty string")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be positive and finite, got {self.lr!r}")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"gamma must be >= 0 and finite, got {self.gamma!r}")

    def deeplora_config(self, targets: Any, seed: int):
        """The :class:`~compressible.deeplora.DeepLoRAConfig` of this method for ``seed``."""
        from ..deeplora import DeepLoRAConfig

        return DeepLoRAConfig(
            init=self.init,
            depth=self.depth,
            rank=self.rank,
            targets=targets,
            epsilon=self.epsilon,
            gamma=self.gamma,
            seed=seed,
        )


@dataclass(frozen=True)
class GenerationConfig:
    """One few-shot generation experiment on E2E NLG; a run is ``(config, seed)``."""

    backbone: str
    """A key of :data:`BACKBONES`."""

    adapter: AdapterSpec
    """The adapter method and its learning rates."""

    targets: str = "attention-mlp"
    """Adapted modules (``DeepLoRAConfig.targets``): ``"attention-mlp"`` is every dense weight of
    every block (T5: q, k, v, o, wi, wo; LLaMA: q, k, v, o, gate, up, down)."""

    n_train: int = 16
    """Training pairs per seed, drawn with replacement from the length-filtered training split."""

    max_source_tokens: int = 64
    """Length filter on the MR (tokens of the backbone's tokenizer), as in the authors' code."""

    max_target_tokens: int = 64
    """Length filter on the reference."""

    steps: int = 400
    """Adam steps."""

    batch_size: int = 16
    """Training pairs per step; equal to ``n_train`` means the full few-shot set every step."""

    eval_split: str = "validation"
    """Split whose unique MRs are evaluated."""

    n_eval: int | None = None
    """How many unique MRs are evaluated -- ``None`` = all of them, else a fixed random subset (same for every
    seed and method, drawn with seed 0)."""

    num_beams: int = 4
    """Beam width of decoding (1 = greedy)."""

    max_new_tokens: int = 64
    """Longest generated sentence, in tokens."""

    eval_batch_size: int = 32
    """MRs decoded at once."""

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {tuple(BACKBONES)}, got {self.backbone!r}")
        if not isinstance(self.adapter, AdapterSpec):
            raise TypeError(f"adapter must be an AdapterSpec, got {type(self.adapter).__name__}")
        for name in ("n_train", "max_source_tokens", "max_target_tokens", "steps", "batch_size",
                     "num_beams", "max_new_tokens", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.batch_size > self.n_train:
            raise ValueError(f"batch_size {self.batch_size} exceeds n_train {self.n_train}; lower it to <= {self.n_train}")
        if self.eval_split not in ("validation", "test"):
            raise ValueError(f"eval_split must be 'validation' or 'test', got {self.eval_split!r}")
        if self.n_eval is not None and (not isinstance(self.n_eval, int) or self.n_eval < 1):
            raise ValueError(f"n_eval must be None (all MRs) or a positive int, got {self.n_eval!r}")

    @property
    def kind(self) -> str:
        """``"seq2seq"`` or ``"causal"``."""
        return BACKBONES[self.backbone][0]


@dataclass(frozen=True)
class GenerationProtocol:
    """The configs (one per method, same everything else) and seeds of one scale."""

    scale: str
    configs: Mapping[str, GenerationConfig]
    seeds: tuple[int, ...]
    notes: str = ""

    @property
    def methods(self) -> list[str]:
        return list(self.configs)


VANILLA_LABEL = "vanilla LoRA"
DEEP_LABEL = "Deep LoRA"


def protocol(scale: str) -> GenerationProtocol:
    """The two methods (vanilla LoRA, compressed Deep LoRA) and seeds at ``scale``.

    - ``paper``: App. C -- T5-base, 16 examples, 400 steps, batch 16, every dense weight, beam
      search with 4 beams, at most 64 tokens, 10 seeds, every unique validation MR. Vanilla LoRA
      runs at the paper's lr 1e-4. The compressed Deep LoRA runs as in App. D.2: inner factors at
      1e-2 and the outer factors at ``gamma * lr`` = 1e-4 (the paper's lr).
    - ``ci``: SmolLM2-135M-Instruct (4-bit GGUF offline), few seeds and steps, greedy decoding on
      a fixed subset of validation MRs, chosen for a budget of 6 minutes on 2 CPU cores.
    - ``smoke``: a tiny random LLaMA and a handful of steps; seconds.
    """
    check_scale(scale)
    if scale == "paper":
        common = dict(backbone="t5-base", targets="attention-mlp", n_train=16, steps=400, batch_size=16,
                      num_beams=4, max_new_tokens=64, n_eval=None)
        vanilla = AdapterSpec(VANILLA_LABEL, "lora", 2, rank=8, lr=1e-4)
        deep = AdapterSpec(DEEP_LABEL, "compressed", 3, rank=8, lr=1e-2, gamma=1e-2)
        seeds = tuple(range(10))
        notes = "App. C protocol; Deep LoRA rates from App. D.2 (inner 1e-2, outer 1e-4)"
    elif scale == "ci":
        common = dict(backbone="smollm2", targets="attention-mlp", n_train=16, steps=40, batch_size=2,
                      num_beams=1, max_new_tokens=40, n_eval=16, eval_batch_size=16)
        vanilla = AdapterSpec(VANILLA_LABEL, "lora", 2, rank=8, lr=1e-4)
        deep = AdapterSpec(DEEP_LABEL, "compressed", 3, rank=8, lr=1e-2, gamma=1e-2)
        seeds = (0, 1)  # 3 seeds measured 9.2 CPU-minutes: over the 6-minute budget on 2 cores with slack
        notes = "SmolLM2-135M-Instruct, fewer steps and seeds, greedy decoding on a fixed MR subset"
    else:
        common = dict(backbone="tiny-llama", targets="attention-mlp", n_train=16, steps=4, batch_size=8,
                      num_beams=1, max_new_tokens=12, n_eval=8, eval_batch_size=8)
        vanilla = AdapterSpec(VANILLA_LABEL, "lora", 2, rank=8, lr=1e-3)
        deep = AdapterSpec(DEEP_LABEL, "compressed", 3, rank=8, lr=1e-2, gamma=1e-2)
        seeds = (0, 1)
        notes = "tiny random LLaMA: checks the pipeline, not the method"
    configs = {spec.label: GenerationConfig(adapter=spec, **common) for spec in (vanilla, deep)}
    return GenerationProtocol(scale, configs, seeds, notes)


# ------------------------------------------------------------------------------------------------
# backbones
# ------------------------------------------------------------------------------------------------


@dataclass
class Backbone:
    """A loaded base model and its tokenizer (never trained: runs train adapters on a copy)."""

    name: str
    kind: str
    model: nn.Module
    tokenizer: Any
    eos_token_id: int
    pad_token_id: int
    chat: bool
    source: str
    load_seconds: float = 0.0


def load_smollm(dtype: torch.dtype = torch.float32):
    """``(model, tokenizer)`` of SmolLM2-135M-Instruct.

    With ``COMPRESSIBLE_SMOLLM`` set, both are read from ``$COMPRESSIBLE_SMOLLM/SmolLM2-135M-Instruct.Q4_1.gguf``
    (4-bit weights, dequantised to ``dtype``); otherwise from the hub id ``HuggingFaceTB/SmolLM2-135M-Instruct``.

    Raises:
        ResourceMissingError: when ``COMPRESSIBLE_SMOLLM`` names a folder without the GGUF file,
            or when the hub model cannot be loaded (the message names the variable to set).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = os.environ.get(SMOLLM_VARIABLE)
    if folder:
        path = Path(folder).expanduser()
        if not (path / SMOLLM_GGUF).is_file():
            raise ResourceMissingError(
                f"{SMOLLM_VARIABLE}={folder} does not hold {SMOLLM_GGUF}; point {SMOLLM_VARIABLE} at a folder "
                f"containing it, or unset {SMOLLM_VARIABLE} to load {SMOLLM_HUB_ID!r} from the hub"
            )
        tokenizer = load_pretrained(AutoTokenizer, str(path), gguf_file=SMOLLM_GGUF)
        model = load_pretrained(AutoModelForCausalLM, str(path), gguf_file=SMOLLM_GGUF, dtype=dtype)
        # A GGUF-loaded model carries a quantizer that blocks save_pretrained; its weights are plain floats now.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        return model, tokenizer
    try:
        tokenizer = load_pretrained(AutoTokenizer, SMOLLM_HUB_ID)
        model = load_pretrained(AutoModelForCausalLM, SMOLLM_HUB_ID, dtype=dtype)
    except ResourceMissingError as error:
        raise ResourceMissingError(
            f"{SMOLLM_HUB_ID!r} is not available: set {SMOLLM_VARIABLE} to a folder holding {SMOLLM_GGUF} "
            f"to use the local 4-bit copy. {error}"
        ) from error
    return model, tokenizer


def word_tokenizer(texts: Sequence[str], vocab_size: int = 2000):
    """A word-level ``PreTrainedTokenizerFast`` trained on ``texts`` (no download).

    Words and punctuation runs are tokens; specials are ``<pad>`` (0), ``<unk>`` (1), ``<s>`` (2)
    and ``</s>`` (3). Decoding joins tokens with spaces.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    core = Tokenizer(models.WordLevel(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    core.train_from_iterator(list(texts), trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=specials))
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def tiny_model(kind: str, vocab_size: int, seed: int = 0, *, hidden: int = 64, layers: int = 2) -> nn.Module:
    """A tiny randomly initialised ``LlamaForCausalLM`` (``kind="causal"``) or ``T5ForConditionalGeneration``.

    Token ids follow :func:`word_tokenizer`: pad 0, bos 2, eos 3. The global RNG is left untouched.
    """
    from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "causal":
            config = LlamaConfig(
                vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=False,
            )
            model = LlamaForCausalLM(config)
        elif kind == "seq2seq":
            config = T5Config(
                vocab_size=vocab_size, d_model=hidden, d_kv=hidden // 4, d_ff=2 * hidden, num_layers=layers,
                num_heads=4, dropout_rate=0.0, pad_token_id=0, eos_token_id=3, decoder_start_token_id=0,
            )
            model = T5ForConditionalGeneration(config)
        else:
            raise ValueError(f"kind must be 'causal' or 'seq2seq', got {kind!r}")
    return model.float()


def load_backbone(name: str, *, device: str | torch.device = "cpu") -> Backbone:
    """Load the base model and tokenizer of backbone ``name`` (a key of :data:`BACKBONES`)."""
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {tuple(BACKBONES)}, got {name!r}")
    kind, source = BACKBONES[name]
    start = time.perf_counter()
    if name == "smollm2":
        model, tokenizer = load_smollm()
        folder = os.environ.get(SMOLLM_VARIABLE)
        source = f"{folder}/{SMOLLM_GGUF} (4-bit GGUF)" if folder else SMOLLM_HUB_ID
        eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        chat = tokenizer.chat_template is not None
    elif name == "t5-base":
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        tokenizer = load_pretrained(AutoTokenizer, T5_HUB_ID)
        model = load_pretrained(AutoModelForSeq2SeqLM, T5_HUB_ID, dtype=torch.float32)
        eos, chat = tokenizer.eos_token_id, False
    else:
        train = load_dataset(E2E_HUB_ID)["train"]
        head = train.select(range(3000))
        texts = list(head["meaning_representation"]) + list(head["human_reference"])
        tokenizer = word_tokenizer(texts)
        model = tiny_model(kind, len(tokenizer))
        eos, chat = tokenizer.eos_token_id, False
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    model.to(device).eval()
    return Backbone(name, kind, model, tokenizer, int(eos), int(pad), bool(chat), source, time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


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


def _pad(seqs: Sequence[Sequence[int]], value: int, left: bool = False) -> Tensor:
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
        input_ids = _pad(sources, backbone.pad_token_id)
        mask = _pad([[1] * len(s) for s in sources], 0)
        labels = _pad(targets, -100)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
    sequences, labels = [], []
    for mr, ref in pairs:
        prompt, target = _prompt_ids(backbone, mr), _target_ids(backbone, ref)
        sequences.append(prompt + target)
        labels.append([-100] * len(prompt) + target)
    return {
        "input_ids": _pad(sequences, backbone.pad_token_id),
        "attention_mask": _pad([[1] * len(s) for s in sequences], 0),
        "labels": _pad(labels, -100),
    }


# ------------------------------------------------------------------------------------------------
# training and decoding
# ------------------------------------------------------------------------------------------------


def _batch_schedule(n: int, batch_size: int, steps: int, seed: int) -> list[np.ndarray]:
    """Index batches for ``steps`` steps: the whole set every step when ``batch_size == n``, else
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


def train_adapters(
    model: nn.Module,
    batches: Sequence[Mapping[str, Tensor]],
    spec: AdapterSpec,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> list[float]:
    """Adam (0.9, 0.999, eps 1e-6, no weight decay, constant rate) on the adapters, one step per batch.

    Inner factors train at ``spec.lr``, the outer factors of compressed adapters at
    ``spec.gamma * spec.lr``. Dropout is on (``model.train()``). Returns the loss of every step.
    """
    from ..deeplora import param_groups

    optimizer = torch.optim.Adam(param_groups(model, lr=spec.lr, gamma=spec.gamma), betas=(0.9, 0.999), eps=1e-6)
    model.train()
    losses = []
    for batch in tqdm(batches, disable=not progress, desc=f"train {spec.label}", leave=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = model(**batch).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{spec.label}: loss became {loss.item()} at step {len(losses)}; lower lr={spec.lr}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@torch.no_grad()
def generate(
    model: nn.Module,
    backbone: Backbone,
    mrs: Sequence[str],
    *,
    num_beams: int,
    max_new_tokens: int,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> list[str]:
    """Decode one sentence per MR (beam search with ``num_beams``, greedy for 1), special tokens removed."""
    model.eval()
    prompts = generation_prompts(backbone, mrs)
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        left = backbone.kind == "causal"  # decoders continue the prompt, so pad on the left
        input_ids = _pad(chunk, backbone.pad_token_id, left=left).to(device)
        mask = _pad([[1] * len(p) for p in chunk], 0, left=left).to(device)
        generated = model.generate(
            input_ids=input_ids, attention_mask=mask, num_beams=num_beams, do_sample=False,
            max_new_tokens=max_new_tokens, eos_token_id=backbone.eos_token_id, pad_token_id=backbone.pad_token_id,
            early_stopping=num_beams > 1,
        )
        if left:
            generated = generated[:, input_ids.shape[1]:]
        outputs.extend(
            text.strip() for text in backbone.tokenizer.batch_decode(generated, skip_special_tokens=True)
        )
    return outputs


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------


def meteor_available() -> bool:
    """Whether nltk's METEOR can run: it needs the WordNet corpus installed (it is not downloaded here)."""
    try:
        import nltk

        nltk.data.find("corpora/wordnet")
    except (ImportError, LookupError):
        return False
    return True


def generation_metrics(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Multi-reference scores of ``predictions[i]`` against all of ``references[i]``, in percent.

    - ``bleu``: corpus BLEU of sacrebleu (13a tokenisation, variable number of references).
    - ``rouge1``, ``rouge2``, ``rougeL``: F1 of rouge-score (Porter stemming), per MR the *best*
      over its references (``RougeScorer.score_multi``), averaged over MRs.
    - ``meteor``: nltk's multi-reference METEOR, averaged over MRs -- only when WordNet is
      installed (:func:`meteor_available`); otherwise the key is absent.
    - ``length``: mean number of words of the predictions.
    """
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if not predictions or any(len(refs) == 0 for refs in references):
        raise ValueError("every prediction needs at least one reference, and there must be one prediction")
    width = max(len(refs) for refs in references)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    bleu = sacrebleu.corpus_bleu(list(predictions), streams).score
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    rouge = {key: [] for key in ("rouge1", "rouge2", "rougeL")}
    for pred, refs in zip(predictions, references):
        scores = scorer.score_multi(list(refs), pred)
        for key in rouge:
            rouge[key].append(scores[key].fmeasure)
    result = {"bleu": float(bleu), **{k: 100 * float(np.mean(v)) for k, v in rouge.items()}}
    if meteor_available():
        from nltk.translate.meteor_score import meteor_score

        result["meteor"] = 100 * float(
            np.mean([meteor_score([r.split() for r in refs], p.split()) for p, refs in zip(predictions, references)])
        )
    result["length"] = float(np.mean([len(p.split()) for p in predictions]))
    return result


# ------------------------------------------------------------------------------------------------
# one run, and a sweep through the result store
# ------------------------------------------------------------------------------------------------


@dataclass
class _Data:
    train_rows: Any
    eval_set: EvalSet


def run_generation(
    config: GenerationConfig,
    seed: int,
    backbone: Backbone,
    data: _Data,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict:
    """Train adapters for ``(config, seed)`` on a copy of ``backbone.model`` and score the generations.

    Returns a JSON-ready dict: ``metrics``, ``predictions`` (one per evaluated MR), ``mrs``,
    ``train_indices`` (the few-shot rows), ``train_loss`` (per step), ``trainable_parameters``,
    ``adapted_modules``, and ``seconds`` (``init``, ``train``, ``eval``).
    """
    from ..deeplora import add_adapters, compress_from_batch

    spec = config.adapter
    indices = few_shot_indices(data.train_rows, backbone.tokenizer, config.n_train, seed,
                               config.max_source_tokens, config.max_target_tokens)
    pairs = [(data.train_rows[int(i)]["meaning_representation"], data.train_rows[int(i)]["human_reference"]) for i in indices]
    schedule = _batch_schedule(config.n_train, config.batch_size, config.steps, seed)
    batches = [training_batch(backbone, [pairs[j] for j in idx]) for idx in schedule]

    start = time.perf_counter()
    model = copy.deepcopy(backbone.model).to(device)
    report = add_adapters(model, spec.deeplora_config(config.targets, seed))
    if spec.init == "compressed":
        compress_from_batch(model, batches[0])  # the first training batch, dropout off
    init_seconds = time.perf_counter() - start

    start = time.perf_counter()
    losses = train_adapters(model, batches, spec, device=device, progress=progress)
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    predictions = generate(
        model, backbone, data.eval_set.mrs, num_beams=config.num_beams, max_new_tokens=config.max_new_tokens,
        batch_size=config.eval_batch_size, device=device,
    )
    metrics = generation_metrics(predictions, data.eval_set.references)
    eval_seconds = time.perf_counter() - start
    del model
    return {
        "metrics": metrics,
        "predictions": predictions,
        "mrs": list(data.eval_set.mrs),
        "train_indices": [int(i) for i in indices],
        "train_loss": losses,
        "trainable_parameters": int(report.trainable_params),
        "adapted_modules": len(report),
        "backbone_source": backbone.source,
        "seconds": {"init": init_seconds, "train": train_seconds, "eval": eval_seconds},
    }


class GenerationExperiment:
    """Runs ``(config, seed)`` pairs through a :class:`ResultStore`, loading each backbone at most once.

    Nothing is loaded when every requested run is already stored. Each run trains adapters on a
    deep copy of the base model, so runs are independent and the base weights stay untouched.
    """

    def __init__(self, store: ResultStore | None = None, *, device: str | torch.device = "cpu", progress: bool = True):
        self.store = store if store is not None else ResultStore()
        self.device = torch.device(device)
        self.progress = progress
        self._backbones: dict[str, Backbone] = {}
        self._data: dict[tuple, _Data] = {}
        self._splits = None

    def backbone(self, name: str) -> Backbone:
        """The loaded backbone ``name`` (loaded on first use)."""
        if name not in self._backbones:
            log.info("loading backbone %s", name)
            self._backbones[name] = load_backbone(name, device=self.device)
        return self._backbones[name]

    def _dataset(self):
        if self._splits is None:
            self._splits = load_dataset(E2E_HUB_ID)
        return self._splits

    def data(self, config: GenerationConfig) -> _Data:
        """Training rows and the evaluation set of ``config``."""
        key = (config.eval_split, config.n_eval)
        if key not in self._data:
            splits = self._dataset()
            self._data[key] = _Data(splits["train"], evaluation_set(splits[config.eval_split], config.n_eval))
        return self._data[key]

    def run(self, config: GenerationConfig, seeds: Sequence[int]) -> list[dict]:
        """Stored or freshly computed results of ``config`` for every seed, in seed order."""

        def compute(cfg: GenerationConfig, seed: int) -> dict:
            return run_generation(cfg, seed, self.backbone(cfg.backbone), self.data(cfg), device=self.device)

        return self.store.run(config, list(seeds), compute, progress=self.progress, desc=config.adapter.label)

    def run_protocol(self, proto: GenerationProtocol) -> dict[str, list[dict]]:
        """``{method label: results per seed}`` for every config of ``proto``."""
        return {label: self.run(config, proto.seeds) for label, config in proto.configs.items()}


# ------------------------------------------------------------------------------------------------
# tidy results
# ------------------------------------------------------------------------------------------------


def metrics_frame(results: Mapping[str, Sequence[dict]]) -> pd.DataFrame:
    """One row per (method, seed) with every metric, the final training loss and the run times."""
    rows = []
    for label, runs in results.items():
        for run in runs:
            rows.append({
                "method": label,
                "seed": run["_seed"],
                **run["metrics"],
                "final_loss": run["train_loss"][-1],
                "trainable_parameters": run["trainable_parameters"],
                "train_seconds": run["seconds"]["train"],
                "eval_seconds": run["seconds"]["eval"],
            })
    return pd.DataFrame(rows)


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    return [m for m in (*METRICS, "meteor") if m in frame.columns]


def paired_differences(frame: pd.DataFrame, method: str, baseline: str) -> pd.DataFrame:
    """Per seed, ``method - baseline`` for every metric (the two share the few-shot set of a seed)."""
    cols = _metric_columns(frame)
    a = frame[frame["method"] == method].set_index("seed")[cols]
    b = frame[frame["method"] == baseline].set_index("seed")[cols]
    seeds = a.index.intersection(b.index)
    if len(seeds) == 0:
        raise ValueError(f"no seed has results for both {method!r} and {baseline!r}")
    return (a.loc[seeds] - b.loc[seeds]).reset_index()


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean ± standard deviation over seeds of every metric, one row per method."""
    cols = _metric_columns(frame) + ["final_loss"]
    grouped = frame.groupby("method", sort=False)[cols]
    mean, std = grouped.mean(), grouped.std(ddof=1).fillna(0.0)
    return pd.DataFrame({c: [f"{m:.2f} ± {s:.2f}" for m, s in zip(mean[c], std[c])] for c in cols}, index=mean.index)


def examples_table(results: Mapping[str, Sequence[dict]], references: EvalSet | None = None, *,
                   seed: int = 0, n: int = 4) -> pd.DataFrame:
    """The first ``n`` evaluated MRs with each method's sentence (for ``seed``) and one reference."""
    runs = {label: next(r for r in runs if r["_seed"] == seed) for label, runs in results.items()}
    mrs = next(iter(runs.values()))["mrs"][:n]
    table: dict[str, list[str]] = {"MR": mrs}
    for label, run in runs.items():
        table[label] = run["predictions"][:n]
    if references is not None:
        lookup = dict(zip(references.mrs, references.references))
        table["a human reference"] = [lookup[mr][0] for mr in mrs]
    return pd.DataFrame(table)
