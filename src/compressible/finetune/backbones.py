"""The pretrained (or tiny random) models the fine-tuning experiments adapt, and the one loader.

:data:`BACKBONES` names every model of the GLUE and E2E chapters with its kind and where it comes
from; :func:`load_backbone` loads any of them (and, for classification, any other hub id or local
folder) into a :class:`Backbone`: the model and its tokenizer. Where the weights are read from
(hub, hub cache, local mirrors) is :mod:`compressible.hub`'s business.

Kinds:

- ``"classifier"``: a sequence classifier (GLUE, paper Sec. 4) -- ``bert-base-cased`` (the
  paper's), ``all-MiniLM-L6-v2`` (``ci``) and :data:`TINY_BERT` (``smoke`` and tests: a random
  2-layer BERT built from a ``BertConfig``, which borrows the MiniLM tokenizer; no weights are
  downloaded). The classification head (and anything the checkpoint lacks) is listed in
  :attr:`Backbone.random_parts`; each run re-draws it from its seed.
- ``"seq2seq"`` / ``"causal"``: a generator (E2E NLG, paper App. C) -- ``t5-base`` (the paper's),
  ``smollm2`` (SmolLM2-135M-Instruct, ``ci``; ``COMPRESSIBLE_SMOLLM`` points it at a local 4-bit
  GGUF, :func:`~compressible.finetune.smollm.load_smollm`) and the tiny random ``tiny-llama`` / ``tiny-t5`` with a word-level
  tokenizer trained on the E2E training split (:func:`word_tokenizer`, :func:`tiny_model`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from ..hub import E2E_HUB_ID, load_dataset, load_pretrained
from .glue import derived_seed
from .smollm import SMOLLM_HUB_ID, load_smollm, smollm_source

__all__ = [
    "BackboneSpec",
    "BACKBONES",
    "TINY_BERT",
    "Backbone",
    "backbone_spec",
    "load_backbone",
    "load_tokenizer",
    "word_tokenizer",
    "tiny_model",
    "HEAD_PREFIXES",
    "POOLERS",
    "pooler_names",
]


class BackboneSpec(NamedTuple):
    """What a backbone is (``kind``) and where it comes from (``source``: a hub id, or how it is built)."""

    kind: str
    source: str


TINY_BERT = "tiny-random-bert"
"""Name of a tiny randomly initialised BERT (2 layers, hidden 32) built from a ``BertConfig`` -- no
download; it borrows the tokenizer of ``all-MiniLM-L6-v2``. For smoke tests: it learns nothing
useful, but every code path runs in seconds."""

BACKBONES: dict[str, BackboneSpec] = {
    "bert-base-cased": BackboneSpec("classifier", "google-bert/bert-base-cased"),
    "all-MiniLM-L6-v2": BackboneSpec("classifier", "sentence-transformers/all-MiniLM-L6-v2"),
    TINY_BERT: BackboneSpec("classifier", "random BertConfig (2 layers, hidden 32), all-MiniLM-L6-v2 tokenizer"),
    "t5-base": BackboneSpec("seq2seq", "google-t5/t5-base"),
    "smollm2": BackboneSpec("causal", SMOLLM_HUB_ID),
    "tiny-llama": BackboneSpec("causal", "random LlamaConfig, word-level tokenizer (no download)"),
    "tiny-t5": BackboneSpec("seq2seq", "random T5Config, word-level tokenizer (no download)"),
}
"""Every backbone of the fine-tuning experiments, by name."""

HEAD_PREFIXES = ("classifier", "score")
"""Top-level module names of a sequence classifier's head."""

POOLERS = ("pretrained", "random")
"""Where a classifier's pooler (the dense layer on the [CLS] token) comes from: ``"pretrained"``, the
checkpoint's weights; ``"random"``, re-drawn at random for each run like the head (the authors'
protocol: their Flax ``bert-base-cased`` had no pooler weights)."""

_TINY_BERT_TOKENIZER = BACKBONES["all-MiniLM-L6-v2"].source


def backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` of ``name``: a key of :data:`BACKBONES`, else a classifier hub id
    or local folder (any sequence-classification checkpoint can be fine-tuned on GLUE)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"backbone must be one of {tuple(BACKBONES)}, a hub id or a local folder, got {name!r}")
    return BACKBONES.get(name, BackboneSpec("classifier", name))


@dataclass
class Backbone:
    """A loaded base model and its tokenizer (never trained: runs train adapters on a copy)."""

    name: str
    kind: str
    model: nn.Module
    tokenizer: Any
    eos_token_id: int | None
    pad_token_id: int | None
    chat: bool
    source: str
    load_seconds: float = 0.0
    random_parts: frozenset[str] = field(default_factory=frozenset)
    """Parameters the checkpoint did not provide (at least a classifier's head): runs re-draw them."""


def pooler_names(model: nn.Module) -> frozenset[str]:
    """Names of the parameters of ``model``'s pooler (every parameter under a module named ``pooler``,
    e.g. ``bert.pooler.dense.weight`` and ``.bias``).

    Raises:
        ValueError: when ``model`` has no pooler (it cannot be re-drawn).
    """
    names = frozenset(n for n, _ in model.named_parameters() if "pooler" in n.split(".")[:-1])
    if not names:
        raise ValueError(
            f"{type(model).__name__} has no pooler parameters (no module named 'pooler'); use pooler='pretrained'"
        )
    return names


def load_tokenizer(name: str):
    """The tokenizer of classifier backbone ``name`` (for :data:`TINY_BERT`: that of ``all-MiniLM-L6-v2``)."""
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer, _TINY_BERT_TOKENIZER if name == TINY_BERT else backbone_spec(name).source)


def load_backbone(
    name: str, *, labels: int | None = None, tokenizer: Any = None, device: str | torch.device = "cpu"
) -> Backbone:
    """Load backbone ``name`` (see :data:`BACKBONES`) with its tokenizer.

    Classifiers need ``labels`` (outputs of the head); ``tokenizer`` may pass one already loaded
    by :func:`load_tokenizer`. They are returned on the CPU as loaded, with the names of the
    parameters the checkpoint did not provide in :attr:`Backbone.random_parts`; the global RNG
    is not touched (transformers draws those weights from it; we fork it). Generators are moved
    to ``device`` and put in eval mode.
    """
    spec = backbone_spec(name)
    start = time.perf_counter()
    if spec.kind == "classifier":
        if labels is None:
            raise ValueError(f"classifier backbone {name!r} needs labels (the number of outputs of its head)")
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(name)
        model, missing = _load_classifier(name, labels, len(tokenizer))
        head = {n for n, _ in model.named_parameters() if n.split(".")[0] in HEAD_PREFIXES}
        return Backbone(name, spec.kind, model, tokenizer, None, tokenizer.pad_token_id, False, spec.source,
                        time.perf_counter() - start, frozenset(missing | head))
    if labels is not None:
        raise ValueError(f"labels={labels!r} only applies to classifier backbones, {name!r} is {spec.kind}")
    source = spec.source
    if name == "smollm2":
        model, tokenizer = load_smollm()
        source = smollm_source()
        eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        chat = tokenizer.chat_template is not None
    elif name == "t5-base":
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        tokenizer = load_pretrained(AutoTokenizer, spec.source)
        model = load_pretrained(AutoModelForSeq2SeqLM, spec.source, dtype=torch.float32)
        eos, chat = tokenizer.eos_token_id, False
    else:
        train = load_dataset(E2E_HUB_ID)["train"]
        head = train.select(range(3000))
        texts = list(head["meaning_representation"]) + list(head["human_reference"])
        tokenizer = word_tokenizer(texts)
        model = tiny_model(spec.kind, len(tokenizer))
        eos, chat = tokenizer.eos_token_id, False
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    model.to(device).eval()
    return Backbone(name, spec.kind, model, tokenizer, int(eos), int(pad), bool(chat), source, time.perf_counter() - start)


def _load_classifier(name: str, labels: int, vocab_size: int) -> tuple[nn.Module, set[str]]:
    from transformers import AutoModelForSequenceClassification

    with torch.random.fork_rng(devices=[]):
        if name == TINY_BERT:
            return _tiny_bert(labels, vocab_size), set()
        model, info = load_pretrained(
            AutoModelForSequenceClassification, backbone_spec(name).source, num_labels=labels, output_loading_info=True
        )
        return model, set(info.get("missing_keys", ()))


def _tiny_bert(labels: int, vocab_size: int) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=labels,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed("tiny-random-bert"))  # the same "pretrained" weights every time
        return BertForSequenceClassification(config)


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
