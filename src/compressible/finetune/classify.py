"""Fine-tuning a sequence classifier with Deep LoRA adapters on GLUE (paper Sec. 4).

One run is ``(RunConfig, seed)``; :func:`run` returns a JSON-ready dict that
:class:`compressible.store.ResultStore` can keep. The defaults are the authors' protocol
(``dlt/train.py``, ``dlt/finetune.py`` and their logged configs):

- backbone ``google-bert/bert-base-cased``; inputs of at most 128 tokens; batch 16, eval batch 32;
- Adam (beta 0.9/0.999, eps 1e-6, no weight decay), constant learning rate, no warm-up (a linear
  decay ``lr -> lr_end`` is available for Fig. 2);
- dropout on while training, off while evaluating and while computing the compression gradient;
- **only adapters train**: the classification head (and any part of the backbone missing from the
  checkpoint) stays at its random initialisation. ``train_head=True`` trains the classifier too
  (the usual PEFT practice; a different protocol -- say which one you run);
- STS-B is a regression: one output and MSE loss; every other task uses cross-entropy;
- the compressed Deep LoRA of the paper (depth 3, rank 8) with the App. D.2 learning rates:
  inner factors at ``1e-2``, outer factors at ``gamma * 1e-2`` with ``gamma = 1e-2``. Other
  adapters default to ``lr = 1e-4``.

Every random stream has its own generator derived from the seed (see
:func:`compressible.finetune.glue.derived_seed`): the training subset depends on ``(task, n, seed)``, the
batch order and the dropout masks on ``(task, seed)``, the random head on ``seed``, the adapters on
``seed`` -- so at a given seed every method sees the same data in the same order and starts from
the same head. Global RNG state is left as it was found.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..deeplora import (
    DeepLoRAConfig,
    adapter_layers,
    add_adapters,
    compress_from_batch,
    delta_weights,
    numerical_rank,
    param_groups,
)
from ..deeplora.config import INITS
from .glue import (
    Examples,
    GlueData,
    check_task,
    derived_seed,
    eval_batches,
    is_regression,
    load_glue,
    num_labels,
    train_batches,
)
from ..hub import BACKBONES, load_pretrained
from .metrics import glue_metrics, primary_metric

__all__ = [
    "TINY_BERT",
    "DTYPES",
    "RunConfig",
    "Runner",
    "run",
    "evaluate",
    "load_tokenizer",
    "load_backbone",
]

log = logging.getLogger(__name__)

TINY_BERT = "tiny-random-bert"
"""Backbone id of a tiny randomly initialised BERT (2 layers, hidden 32) built from a
``BertConfig`` -- no download; it borrows the tokenizer of ``TINY_BERT_TOKENIZER``. For smoke
tests: it learns nothing useful, but every code path runs in seconds."""

TINY_BERT_TOKENIZER = BACKBONES["ci"]

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}

_ADAM = {"betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.0}


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _positive_float(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """One fine-tuning experiment; run it at a seed with :func:`run`.

    ``None`` defaults are resolved when the config is created (so a stored config shows the
    values actually used): ``depth`` 3 (2 for ``"lora"``), ``lr`` 1e-2 for ``"compressed"`` and
    1e-4 otherwise, ``gamma`` 1e-2 for ``"compressed"``, ``head_lr`` 1e-4 when ``train_head``.
    """

    task: str
    """GLUE task, one of :data:`compressible.finetune.glue.TASKS`."""

    n_train: int | None = 1024
    """Training examples drawn per seed from the length-filtered train split; ``None`` = all of it."""

    steps: int = 1000
    """Optimiser steps (one batch each)."""

    adapter: str = "compressed"
    """Adapter kind, ``DeepLoRAConfig.init``: ``"compressed"``, ``"lora"``, ``"random"`` or ``"full"``."""

    depth: int | None = None
    """Factors of the adapter product (3 = Deep LoRA, 2 = LoRA)."""

    rank: int = 8
    """Adapter width ``r`` (ignored by ``"full"``)."""

    targets: str | tuple[str, ...] = "attention-mlp"
    """Adapted modules (a ``DeepLoRAConfig.targets`` value); ``"attention-mlp"`` = q, k, v, attention
    output, intermediate, output of every block (the paper's 72 for bert-base)."""

    epsilon: float = 1e-3
    """Scale of the orthogonal initialisation of deep factors."""

    alpha: float | None = None
    """LoRA ``alpha`` (scaling ``alpha / r``); ``None`` = no scaling, as the authors ran it."""

    lr: float | None = None
    """Learning rate of the (inner) adapter factors."""

    gamma: float | None = None
    """Learning-rate ratio of the outer factors of compressed adapters (only for ``"compressed"``)."""

    lr_end: float | None = None
    """``None``: constant ``lr``. A float: ``lr`` decays linearly to ``lr_end`` over ``steps`` (Fig. 2)."""

    backbone: str = BACKBONES["paper"]
    """Hub id (or local folder) of the pretrained encoder, or :data:`TINY_BERT`."""

    max_length: int = 128
    """Examples with more tokens are dropped from the training pool and the evaluation split."""

    batch_size: int = 16
    eval_batch_size: int = 32

    eval_every: int | None = None
    """Evaluate every ``eval_every`` steps and after the last; ``None``: after the last step only."""

    eval_limit: int | None = None
    """Evaluate on a fixed subset of this many validation examples (same for every seed and method);
    ``None`` = the whole split (the paper's protocol)."""

    replacement: bool = True
    """Draw the training subset with replacement (the authors' protocol) or without."""

    train_head: bool = False
    """Also train the classification head (not the paper's protocol; see the module docstring)."""

    head_lr: float | None = None
    """Learning rate of the classification head when ``train_head``."""

    spectrum_top: int = 0
    """When positive, store the top ``spectrum_top`` singular values and the numerical rank (Fig. 7 rules)
    of every final ``Delta W``."""

    checkpoints: tuple[int, ...] = ()
    """Steps (0 = before the first update) at which to record the spectra and top left singular
    vectors of every ``Delta W`` (Fig. 2); their alignment with the final ones is stored."""

    checkpoint_rank: int = 8
    """Dimension ``k`` of the left singular subspaces compared at checkpoints (Fig. 2: 8)."""

    dtype: str = "float32"
    """Dtype of the backbone, one of ``DTYPES``."""

    def __post_init__(self) -> None:
        check_task(self.task)
        if self.n_train is not None:
            _positive_int("n_train", self.n_train)
        _positive_int("steps", self.steps)
        if self.adapter not in INITS:
            raise ValueError(f"adapter must be one of {INITS}, got {self.adapter!r}")
        if isinstance(self.targets, list):
            object.__setattr__(self, "targets", tuple(self.targets))
        compressed = self.adapter == "compressed"
        if self.lr is None:
            object.__setattr__(self, "lr", 1e-2 if compressed else 1e-4)
        _positive_float("lr", self.lr)
        if self.gamma is None and compressed:
            object.__setattr__(self, "gamma", 1e-2)
        if self.gamma is not None:
            if not compressed:
                raise ValueError(
                    f"gamma (outer-factor learning-rate ratio) only applies to adapter='compressed', "
                    f"got gamma={self.gamma!r} with adapter={self.adapter!r}; leave gamma=None"
                )
            if not (math.isfinite(self.gamma) and self.gamma >= 0):
                raise ValueError(f"gamma must be >= 0 and finite, got {self.gamma!r}")
        if self.lr_end is not None:
            _positive_float("lr_end", self.lr_end)
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError(f"backbone must be a hub id, a local folder or {TINY_BERT!r}, got {self.backbone!r}")
        _positive_int("max_length", self.max_length, 2)
        _positive_int("batch_size", self.batch_size)
        _positive_int("eval_batch_size", self.eval_batch_size)
        if self.n_train is not None and self.n_train < self.batch_size:
            raise ValueError(
                f"n_train={self.n_train} is smaller than batch_size={self.batch_size}; "
                f"use batch_size <= {self.n_train} or more training examples"
            )
        if self.eval_every is not None:
            _positive_int("eval_every", self.eval_every)
        if self.eval_limit is not None:
            _positive_int("eval_limit", self.eval_limit)
        if self.train_head:
            if self.head_lr is None:
                object.__setattr__(self, "head_lr", 1e-4)
            _positive_float("head_lr", self.head_lr)
        elif self.head_lr is not None:
            raise ValueError(f"head_lr={self.head_lr!r} is set but train_head=False; set train_head=True or head_lr=None")
        _positive_int("spectrum_top", self.spectrum_top, 0)
        checkpoints = tuple(sorted(set(self.checkpoints)))
        bad = [c for c in checkpoints if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= self.steps]
        if bad:
            raise ValueError(f"checkpoints must be int steps in [0, steps={self.steps}], got {bad}")
        object.__setattr__(self, "checkpoints", checkpoints)
        _positive_int("checkpoint_rank", self.checkpoint_rank)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        resolved = self.adapter_config(0)  # validates depth, rank, targets, epsilon, alpha
        object.__setattr__(self, "depth", resolved.depth)

    def adapter_config(self, seed: int) -> DeepLoRAConfig:
        """The :class:`~compressible.deeplora.DeepLoRAConfig` of this run at ``seed``."""
        return DeepLoRAConfig(
            init=self.adapter,
            depth=self.depth,
            rank=self.rank,
            targets=self.targets,
            epsilon=self.epsilon,
            alpha=self.alpha,
            gamma=self.gamma if self.gamma is not None else 1e-2,
            seed=seed,
        )

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with ``changes`` applied (``None`` defaults are resolved again)."""
        fields = dataclasses.asdict(self)
        if "adapter" in changes:  # learning rates default per adapter kind
            for key in ("lr", "gamma", "depth"):
                changes.setdefault(key, None)
        if changes.get("train_head") is False:
            changes.setdefault("head_lr", None)
        fields.update(changes)
        return RunConfig(**fields)


@contextmanager
def _forked_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Seed torch's global RNG (used by dropout) with ``seed`` inside, restore it afterwards."""
    cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def load_tokenizer(backbone: str):
    """The tokenizer of ``backbone`` (for :data:`TINY_BERT`: that of ``TINY_BERT_TOKENIZER``)."""
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer, TINY_BERT_TOKENIZER if backbone == TINY_BERT else backbone)


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


def load_backbone(backbone: str, labels: int, vocab_size: int | None = None) -> tuple[nn.Module, set[str]]:
    """``(model, missing)``: a sequence classifier with ``labels`` outputs and the names of the
    parameters its checkpoint did not provide (at least the classification head).

    Global RNG state is not touched (transformers draws the missing weights from it; we fork it).
    """
    from transformers import AutoModelForSequenceClassification

    with torch.random.fork_rng(devices=[]):
        if backbone == TINY_BERT:
            if vocab_size is None:
                raise ValueError(f"{TINY_BERT!r} needs the vocab_size of its tokenizer")
            model = _tiny_bert(labels, vocab_size)
            missing: set[str] = set()
        else:
            model, info = load_pretrained(
                AutoModelForSequenceClassification, backbone, num_labels=labels, output_loading_info=True
            )
            missing = set(info.get("missing_keys", ()))
    head = {name for name, _ in model.named_parameters() if name.split(".")[0] in ("classifier", "score")}
    return model, missing | head


def _init_random_parts(model: nn.Module, names: set[str], seed: int) -> None:
    """Re-draw the parameters ``names`` (head, missing weights) from a generator seeded by ``seed``.

    Matches transformers' BERT initialisation: weights ``N(0, initializer_range^2)``, biases 0,
    LayerNorm weights 1.
    """
    std = float(getattr(model.config, "initializer_range", 0.02))
    gen = torch.Generator().manual_seed(derived_seed("head", seed))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(names):
            p = params.get(name)
            if p is None:
                continue
            if name.endswith("bias"):
                p.zero_()
            elif p.ndim == 1:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).mul_(std).to(p.dtype))


def evaluate(
    model: nn.Module,
    examples: Examples,
    task: str,
    pad_token_id: int,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, float]:
    """Metrics of ``model`` on ``examples`` (dropout off, no gradients), plus the mean ``loss``.

    The model's train/eval mode is restored afterwards. Full-width adapters form ``Delta W``
    (``O(w^3)``) in every forward; for them a copy of the model with the updates merged into the
    base weights is evaluated instead, so ``Delta W`` is formed once per evaluation, not once per
    batch (the model itself is left untouched).
    """
    if any(layer.config.init == "full" and not layer.merged for layer in adapter_layers(model).values()):
        model = _merged_copy(model)
    return _evaluate(model, examples, task, pad_token_id, batch_size, device, progress)


def _merged_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every adapter merged into its base weight.

    Only the adapted base weights are copied (they change); every other parameter and buffer,
    the adapter factors included, is shared with ``model``, so the extra memory is that of the
    adapted weights.
    """
    adapted = {id(layer.base.weight) for layer in adapter_layers(model).values()}
    shared = [t for t in (*model.parameters(), *model.buffers()) if id(t) not in adapted]
    clone = copy.deepcopy(model, {id(t): t for t in shared})
    with torch.no_grad():
        for layer in adapter_layers(clone).values():
            layer.merge()
    return clone


def _evaluate(model, examples, task, pad_token_id, batch_size, device, progress) -> dict[str, float]:
    device = torch.device(device)
    regression = is_regression(task)
    was_training = model.training
    model.eval()
    predictions = np.empty(len(examples), dtype=np.float64 if regression else np.int64)
    loss_sum = 0.0
    batches = eval_batches(examples, batch_size, pad_token_id)
    total = math.ceil(len(examples) / batch_size)
    try:
        with torch.no_grad():
            for rows, batch in tqdm(batches, total=total, disable=not progress, leave=False, desc="eval"):
                labels = batch.pop("labels").to(device)
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
                if regression:
                    scores = logits[:, 0]
                    loss_sum += float(F.mse_loss(scores, labels.float(), reduction="sum"))
                    predictions[rows] = scores.cpu().double().numpy()
                else:
                    loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
                    predictions[rows] = logits.argmax(-1).cpu().numpy()
    finally:
        model.train(was_training)
    metrics = glue_metrics(task, predictions, examples.labels)
    metrics["loss"] = loss_sum / len(examples)
    return metrics


def _snapshot(model: nn.Module, k_values: int, k_vectors: int) -> dict[str, tuple[Tensor, Tensor]]:
    """``{name: (top singular values, top-k_vectors left singular vectors (m, k))}`` of every Delta W."""
    out = {}
    for name, delta in delta_weights(model).items():
        u, s, _ = torch.linalg.svd(delta.double(), full_matrices=False)
        k = min(k_vectors, u.shape[1])
        out[name] = (s[:k_values].cpu(), u[:, :k].cpu())
    return out


class Runner:
    """Runs ``(RunConfig, seed)`` pairs, caching tokenizers, tokenised data and loaded backbones.

    A sweep makes one ``Runner`` and passes it to :meth:`compressible.store.ResultStore.run` as
    ``fn``: ``store.run(config, seeds, Runner(device="cuda"))``. The caches live in the object,
    not in the module.

    ``threads`` sets torch's CPU intra-op threads during each run (restored afterwards). By
    default runs of :data:`TINY_BERT` use one thread: its matrices are too small to gain from
    more, and on a busy machine the thread synchronisation makes them several times slower.
    """

    def __init__(self, device: str | torch.device = "cpu", progress: bool = True, threads: int | None = None):
        self.device = torch.device(device)
        self.progress = progress
        if threads is not None:
            _positive_int("threads", threads)
        self.threads = threads
        self._tokenizers: dict[str, Any] = {}
        self._data: dict[tuple, GlueData] = {}
        self._backbones: dict[tuple, tuple[nn.Module, set[str]]] = {}

    def tokenizer(self, backbone: str):
        if backbone not in self._tokenizers:
            self._tokenizers[backbone] = load_tokenizer(backbone)
        return self._tokenizers[backbone]

    def data(self, config: RunConfig) -> GlueData:
        """The tokenised, filtered task of ``config`` (loaded once per backbone, task and length)."""
        key = (config.backbone, config.task, config.max_length)
        if key not in self._data:
            self._data[key] = load_glue(config.task, self.tokenizer(config.backbone), config.max_length)
        return self._data[key]

    def model(self, config: RunConfig, seed: int) -> nn.Module:
        """A fresh copy of the backbone with its random parts drawn for ``seed``, on the device."""
        key = (config.backbone, num_labels(config.task))
        if key not in self._backbones:
            vocab = len(self.tokenizer(config.backbone)) if config.backbone == TINY_BERT else None
            self._backbones[key] = load_backbone(config.backbone, key[1], vocab)
        pristine, random_parts = self._backbones[key]
        model = copy.deepcopy(pristine)
        _init_random_parts(model, random_parts, seed)
        return model.to(device=self.device, dtype=DTYPES[config.dtype])

    def __call__(self, config: RunConfig, seed: int) -> dict:
        return self.run(config, seed)

    def run(self, config: RunConfig, seed: int) -> dict:
        """Fine-tune at ``seed``; see :func:`run` for the result."""
        return self.fit(config, seed)[1]

    def fit(self, config: RunConfig, seed: int) -> tuple[nn.Module, dict]:
        """Fine-tune at ``seed``; returns the trained model (with its adapters) and the result of :func:`run`."""
        threads = self.threads if self.threads is not None else (1 if config.backbone == TINY_BERT else None)
        if threads is None:
            return self._fit(config, seed)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return self._fit(config, seed)
        finally:
            torch.set_num_threads(previous)

    def _fit(self, config: RunConfig, seed: int) -> tuple[nn.Module, dict]:
        if not isinstance(config, RunConfig):
            raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        start = time.perf_counter()
        device = self.device
        data = self.data(config)
        train_set = data.sample(config.n_train, seed, config.replacement)
        if len(train_set) < config.batch_size:
            raise ValueError(
                f"{config.task}: {len(train_set)} training examples after filtering, fewer than batch_size={config.batch_size}"
            )
        eval_set = data.eval_subset(config.eval_limit)
        model = self.model(config, seed)
        report = add_adapters(model, config.adapter_config(seed))
        head = [p for n, p in model.named_parameters() if n.split(".")[0] in ("classifier", "score")]
        order = torch.Generator().manual_seed(derived_seed("order", config.task, seed))
        batches = train_batches(train_set, config.batch_size, data.pad_token_id, order)
        first = next(batches)

        # wall-clock seconds per phase, and CPU seconds of this process (all threads) for train/eval
        timings = {"setup": time.perf_counter() - start, "compress": 0.0, "train": 0.0, "eval": 0.0, "analysis": 0.0,
                   "train_cpu": 0.0, "eval_cpu": 0.0}
        if config.adapter == "compressed":
            tic = time.perf_counter()
            compress_from_batch(model, {k: v.to(device) for k, v in first.items()})
            timings["compress"] = time.perf_counter() - tic

        groups = param_groups(model, lr=config.lr, gamma=config.gamma)
        if config.train_head:
            for p in head:
                p.requires_grad_(True)
            groups.append({"params": head, "lr": config.head_lr, "name": "head"})
        trainable = sum(p.numel() for g in groups for p in g["params"])
        optimizer = torch.optim.Adam(groups, **_ADAM)
        if config.lr_end is None:
            schedule = None
        else:  # optax.linear_schedule: lr at update t is lr + (lr_end - lr) * t / steps
            ratio = config.lr_end / config.lr
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda t: 1.0 + (ratio - 1.0) * min(t, config.steps) / config.steps
            )

        k_values = max(config.spectrum_top, config.checkpoint_rank)
        snapshots: dict[int, dict[str, tuple[Tensor, Tensor]]] = {}

        def checkpoint(step: int) -> None:
            tic = time.perf_counter()
            snapshots[step] = _snapshot(model, k_values, config.checkpoint_rank)
            timings["analysis"] += time.perf_counter() - tic

        def run_eval(step: int) -> None:
            tic, cpu = time.perf_counter(), time.process_time()
            metrics = evaluate(model, eval_set, config.task, data.pad_token_id, config.eval_batch_size, device)
            evals.append({"step": step, **metrics})
            timings["eval"] += time.perf_counter() - tic
            timings["eval_cpu"] += time.process_time() - cpu

        evals: list[dict] = []
        losses: list[float] = []
        lrs: list[float] = []
        if 0 in config.checkpoints:
            checkpoint(0)
        model.train()
        bar = tqdm(range(1, config.steps + 1), disable=not self.progress, leave=False,
                   desc=f"{config.task} {config.adapter} seed {seed}")
        with _forked_rng(device, derived_seed("dropout", config.task, seed)):
            batch = first
            for step in bar:
                tic, cpu = time.perf_counter(), time.process_time()
                batch = {k: v.to(device) for k, v in batch.items()}
                loss = model(**batch).loss
                lrs.append(float(optimizer.param_groups[0]["lr"]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                losses.append(float(loss.detach()))
                timings["train"] += time.perf_counter() - tic
                timings["train_cpu"] += time.process_time() - cpu
                if not math.isfinite(losses[-1]):
                    raise FloatingPointError(
                        f"{config.task} {config.adapter} seed {seed}: training loss is {losses[-1]} at step {step}; "
                        f"lower lr={config.lr}"
                    )
                if step in config.checkpoints:
                    checkpoint(step)
                if step == config.steps or (config.eval_every and step % config.eval_every == 0):
                    run_eval(step)
                    bar.set_postfix(loss=f"{losses[-1]:.3g}", **{primary_metric(config.task): f"{evals[-1][primary_metric(config.task)]:.3f}"})
                if step < config.steps:
                    batch = next(batches)

        result: dict[str, Any] = {
            "task": config.task,
            "adapter": config.adapter,
            "metric": primary_metric(config.task),
            "evals": evals,
            "final": evals[-1],
            "train_loss": losses,
            "lr": lrs,
            "trainable_params": int(trainable),
            "adapted_modules": len(report.modules),
            "n_train": len(train_set),
            "train_pool": len(data.train),
            "n_eval": len(eval_set),
            "eval_split": data.eval_split,
            "eval_dropped_by_filter": int(data.raw_sizes[data.eval_split] - len(data.eval)),
            "device": str(device),
        }
        if config.n_train is not None:
            result["sample_idx"] = train_set.idx.tolist()
        tic = time.perf_counter()
        if config.spectrum_top:
            ranks = numerical_rank(model)
            result["spectra"] = {
                name: {"singular_values": s.tolist(), "rank": int(ranks[name])}
                for name, (s, _) in _snapshot(model, config.spectrum_top, 1).items()
            }
        if config.checkpoints:
            final = snapshots[config.steps] if config.steps in snapshots else _snapshot(model, k_values, config.checkpoint_rank)
            steps = sorted(snapshots)
            result["checkpoints"] = {
                "steps": steps,
                "k": config.checkpoint_rank,
                "singular_values": {n: [snapshots[t][n][0].tolist() for t in steps] for n in final},
                "alignment": {
                    n: [float(torch.linalg.matrix_norm(snapshots[t][n][1].T @ final[n][1], ord=2)) for t in steps]
                    for n in final
                },
            }
        timings["analysis"] += time.perf_counter() - tic
        result["timings"] = timings
        result["wall_time"] = time.perf_counter() - start
        model.eval()
        return model, result


def run(config: RunConfig, seed: int, device: str | torch.device = "cpu", progress: bool = True) -> dict:
    """Fine-tune ``config.backbone`` on ``config.task`` at ``seed`` and evaluate it.

    Returns a JSON-ready dict:

    - ``evals``: ``[{"step", <metrics>, "loss"}]`` at every evaluation; ``final``: the last one;
      ``metric``: the paper's metric name (``final[metric]`` is the number to report);
    - ``train_loss``: the loss of every step's batch (dropout on); ``lr``: the (inner) learning
      rate of every step;
    - ``trainable_params``, ``adapted_modules``, ``n_train``, ``train_pool``, ``n_eval``,
      ``eval_split``, ``eval_dropped_by_filter``, ``sample_idx`` (GLUE ``idx`` of the sample);
    - ``spectra`` (if ``spectrum_top``): ``{module: {"singular_values", "rank"}}`` of the final updates;
    - ``checkpoints`` (if any): ``steps``, ``singular_values[module][i]`` at ``steps[i]`` and
      ``alignment[module][i]`` = largest singular value of ``U_t^T U_final`` (top-``k`` left
      singular vectors);
    - ``timings`` (seconds of setup, compress, train, eval, analysis) and ``wall_time``.

    For several runs, use one :class:`Runner` (it caches the data and the backbone).
    """
    return Runner(device, progress).run(config, seed)
