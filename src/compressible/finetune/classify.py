"""Fine-tuning a sequence classifier with Deep LoRA adapters on GLUE (paper Sec. 4).

One run is ``(RunConfig, seed)``; :func:`run` returns a JSON-ready dict that
:class:`compressible.store.ResultStore` can keep. The defaults are the authors' protocol
(``dlt/train.py``, ``dlt/finetune.py`` and their logged configs):

- backbone ``bert-base-cased`` (:data:`compressible.finetune.backbones.BACKBONES`); inputs of at most 128 tokens; batch 16, eval batch 32;
- Adam with the authors' settings (:data:`compressible.finetune.optim.ADAM`), constant learning
  rate, no warm-up (a linear decay ``lr -> lr_end`` is available for Fig. 2);
- dropout on while training, off while evaluating and while computing the compression gradient;
- **only adapters train**: the classification head (and any part of the backbone missing from the
  checkpoint) stays at its random initialisation. ``train_head=True`` trains the classifier too
  (the usual PEFT practice; a different protocol -- say which one you run);
- ``pooler="random"`` re-draws the pooler at random too, as the authors' checkpoint had none (it
  then stays frozen unless the targets give it an adapter, as the authors' ``"all-dense"`` ones
  do); the default ``"pretrained"`` keeps the checkpoint's pooler;
- ``autocast="bf16"`` runs the model's forward (and so its backward) under bf16 autocast, while
  adapters, head, loss and optimiser state stay float32; ``"auto"`` does so where bf16 is fast
  (:func:`autocast_dtype`); the default ``"off"`` computes everything in float32;
- STS-B is a regression: one output and MSE loss; every other task uses cross-entropy;
- the compressed Deep LoRA of the paper (``DeepLoRAConfig()``: depth 3, rank 8) with the App. D.2
  learning rates: inner factors at ``1e-2``, outer factors at ``gamma * 1e-2`` with
  ``DeepLoRAConfig.gamma = 1e-2``. Other adapters default to ``lr = 1e-4``
  (:func:`compressible.finetune.optim.default_lr`).

A run is four steps of :class:`Runner`: :meth:`~Runner.setup` (data, model, adapters, compression,
optimiser, schedule), :meth:`~Runner.step` (one update), :meth:`~Runner.evaluate` and
:meth:`~Runner.report` (the result dict, spectra and Fig. 2 alignments).

Every random stream has its own generator derived from the seed (see
:func:`compressible.finetune.glue.derived_seed`): the training subset depends on ``(task, n, seed)``, the
batch order and the dropout masks on ``(task, seed)``, the random head on ``seed``, the random pooler
on ``seed`` (its own stream: the head is the same with either pooler), the adapters on ``seed`` -- so at a given seed every method sees the same data in the same order and starts from
the same head. Global RNG state is left as it was found.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..deeplora import (
    AdapterReport,
    DeepLoRAConfig,
    adapter_layers,
    add_adapters,
    basis_alignment,
    compress_from_batch,
    delta_weights,
    numerical_rank,
)
from ..deeplora.layer import is_adaptable
from ..store import KEY_OPTIONAL
from .glue import (
    Examples,
    GlueData,
    check_task,
    collate,
    derived_seed,
    eval_batches,
    split_batch,
    is_regression,
    load_glue,
    num_labels,
    train_batches,
)
from .backbones import (
    BACKBONES,
    HEAD_PREFIXES,
    POOLERS,
    TINY_BERT,
    Backbone,
    backbone_spec,
    load_backbone,
    load_tokenizer,
    pooler_names,
)
from .metrics import glue_metrics, has_trained, loss_baseline, primary_metric
from .optim import adapter_optimizer, default_lr

__all__ = ["DTYPES", "AUTOCAST", "COMPRESS_FROM", "RunConfig", "Runner", "RunState", "run", "evaluate", "autocast_dtype", "autocast_region", "cpu_has_bf16",
           "cast_frozen_linears", "head_input_probe", "PROBES", "SATURATED"]

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}

COMPRESS_FROM = ("first-batch", "sample")
"""Gradients the outer factors of compressed adapters come from (:attr:`RunConfig.compress_from`)."""

AUTOCAST = ("off", "bf16", "auto")
"""Autocast settings of a run: ``"off"`` (float32 throughout), ``"bf16"`` (bf16 autocast around the
model's forward), ``"auto"`` (``"bf16"`` on CUDA and on CPUs with native bf16, else ``"off"``)."""

_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively: torch's kernels are AVX-512 ones and ``/proc/cpuinfo``
    lists ``avx512_bf16`` or ``amx_bf16`` (elsewhere bf16 autocast is emulated and slower than float32)."""
    if "AVX512" not in torch.backends.cpu.get_cpu_capability():
        return False
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return any(flag in flags for flag in _BF16_CPU_FLAGS)


def autocast_dtype(mode: str, device: str | torch.device = "cpu") -> torch.dtype | None:
    """The autocast dtype of ``mode`` (one of :data:`AUTOCAST`) on ``device``: ``torch.bfloat16`` or ``None`` (off).

    ``"auto"`` gives bf16 on CUDA and on CPUs where :func:`cpu_has_bf16`, and otherwise ``None``
    with a log line saying why.
    """
    if mode not in AUTOCAST:
        raise ValueError(f"autocast must be one of {AUTOCAST}, got {mode!r}")
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    device = torch.device(device)
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()):
        return torch.bfloat16
    log.info("autocast='auto': no native bf16 on %s (CPU capability %s); computing in float32",
             device, torch.backends.cpu.get_cpu_capability())
    return None


def autocast_region(device: str | torch.device, dtype: torch.dtype | None):
    """A ``torch.autocast`` region in ``dtype`` on ``device``, or nothing when ``dtype`` is ``None`` (what
    :func:`autocast_dtype` returns for ``"off"``)."""
    return nullcontext() if dtype is None else torch.autocast(device_type=torch.device(device).type, dtype=dtype)


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
    values actually used): ``lr`` by :func:`compressible.finetune.optim.default_lr` (1e-2 for
    ``"compressed"``, 1e-4 otherwise), ``head_lr`` 1e-4 when ``train_head``.
    """

    task: str
    """GLUE task, one of :data:`compressible.finetune.glue.TASKS`."""

    n_train: int | None = 1024
    """Training examples drawn per seed from the length-filtered train split; ``None`` = all of it."""

    steps: int = 1000
    """Optimiser steps (one batch each)."""

    adapter: DeepLoRAConfig = field(default_factory=DeepLoRAConfig)
    """The adapters: kind (``init``), depth, rank, targets (``"attention-mlp"`` = q, k, v, attention
    output, intermediate, output of every block: the paper's 72 for bert-base), ``epsilon``,
    ``alpha`` and ``gamma`` (outer-factor rate ratio of compressed adapters). Its ``seed`` must be
    left at 0: the run's seed replaces it (:meth:`RunConfig.adapter_at`)."""

    lr: float | None = None
    """Learning rate of the (inner) adapter factors."""

    lr_end: float | None = None
    """``None``: constant ``lr``. A float: ``lr`` decays linearly to ``lr_end`` over ``steps`` (Fig. 2)."""

    backbone: str = "bert-base-cased"
    """A classifier of :data:`compressible.finetune.backbones.BACKBONES` (``"bert-base-cased"``,
    ``"all-MiniLM-L6-v2"``, ``"tiny-random-bert"``), or any hub id or local folder of an encoder."""

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

    pooler: str = "pretrained"
    """The classifier's pooler, one of :data:`~compressible.finetune.backbones.POOLERS`: the
    checkpoint's (``"pretrained"``) or re-drawn from the seed like the head and frozen unless
    adapted (``"random"``, the authors' protocol)."""

    autocast: str = "off"
    """bf16 autocast of the model's forward/backward, one of :data:`AUTOCAST` (see :func:`autocast_dtype`);
    adapters, head, loss and optimiser state stay float32. Training and evaluation both use it. On a
    CPU the model then uses eager attention (torch's CPU SDPA kernels are slower in bf16)."""

    holdout: int = 0
    """Training-pool examples set aside from every few-shot sample (a fixed draw per task, see
    :meth:`compressible.finetune.glue.GlueData.holdout`); when positive, the run is also evaluated
    on them after its last step (``result["holdout"]``): the split learning rates are tuned on."""

    compress_from: str = field(default="first-batch", metadata={KEY_OPTIONAL: True})
    """Where compressed adapters take the gradient their outer factors come from, one of
    :data:`COMPRESS_FROM`: the first training batch (``"first-batch"``, the paper's construction) or
    the whole training sample in one batch (``"sample"``: a diagnosis of the subspace one batch gives
    when ``n_train > batch_size``). Other adapter kinds must leave the default."""

    split_by_length: bool = field(default=False, metadata={KEY_OPTIONAL: True})
    """Compute each training step's loss and gradients in sub-batches of similar length, each padded
    only to its own longest member (:func:`~compressible.finetune.glue.split_batch`), and sum them
    weighted by their share of the batch: the same step as one padded batch up to rounding, except that
    dropout draws its masks in other shapes. Saves most of the padding on a CPU (the ``ci`` plan); the
    default, one padded batch, is the authors' protocol."""

    holdout_eval: bool = field(default=True, metadata={KEY_OPTIONAL: True})
    """Evaluate the run on its ``holdout`` examples after the last step (``result["holdout"]``). Runs that
    only hold the examples out, so that their samples match the tuning runs', can skip it (``False``)."""

    def __post_init__(self) -> None:
        check_task(self.task)
        for name in ("split_by_length", "holdout_eval"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.compress_from not in COMPRESS_FROM:
            raise ValueError(f"compress_from must be one of {COMPRESS_FROM}, got {self.compress_from!r}")
        if self.compress_from != "first-batch" and self.adapter.init != "compressed":
            raise ValueError(f"compress_from={self.compress_from!r} applies to compressed adapters only, "
                             f"not adapter.init={self.adapter.init!r}; leave it at 'first-batch'")
        if self.n_train is not None:
            _positive_int("n_train", self.n_train)
        _positive_int("steps", self.steps)
        if not isinstance(self.adapter, DeepLoRAConfig):
            raise TypeError(
                f"adapter must be a DeepLoRAConfig (e.g. DeepLoRAConfig(init='lora')), got {self.adapter!r}"
            )
        if self.adapter.seed != 0:
            raise ValueError(
                f"adapter.seed={self.adapter.seed!r}: leave it at 0, the run's seed replaces it "
                "(run(config, seed) draws the adapters from seed)"
            )
        if self.lr is None:
            object.__setattr__(self, "lr", default_lr(self.adapter.init))
        _positive_float("lr", self.lr)
        if self.lr_end is not None:
            _positive_float("lr_end", self.lr_end)
        if backbone_spec(self.backbone).kind != "classifier":
            classifiers = tuple(name for name, spec in BACKBONES.items() if spec.kind == "classifier")
            raise ValueError(f"backbone must be a classifier {classifiers}, a hub id or a local folder, got {self.backbone!r}")
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
        if self.pooler not in POOLERS:
            raise ValueError(f"pooler must be one of {POOLERS}, got {self.pooler!r}")
        if self.autocast not in AUTOCAST:
            raise ValueError(f"autocast must be one of {AUTOCAST}, got {self.autocast!r}")
        _positive_int("holdout", self.holdout, minimum=0)

    @property
    def outer_lr(self) -> float | None:
        """Learning rate of the outer factors of compressed adapters (``gamma * lr``); ``None`` for other kinds."""
        return self.adapter.gamma * self.lr if self.adapter.init == "compressed" else None

    def adapter_at(self, seed: int) -> DeepLoRAConfig:
        """The adapters' :class:`~compressible.deeplora.config.DeepLoRAConfig` of a run at ``seed``."""
        return dataclasses.replace(self.adapter, seed=seed)

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with ``changes`` applied (``None`` defaults are resolved again: a new ``adapter``
        gets its kind's default ``lr`` unless ``lr`` is given)."""
        if "adapter" in changes:
            changes.setdefault("lr", None)
        if changes.get("train_head") is False:
            changes.setdefault("head_lr", None)
        return dataclasses.replace(self, **changes)


@contextmanager
def _forked_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Seed torch's global RNG (used by dropout) with ``seed`` inside, restore it afterwards."""
    cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def _init_random_parts(model: nn.Module, names: set[str], seed: int, stream: str = "head") -> None:
    """Re-draw the parameters ``names`` (head, missing weights) from a generator seeded by ``seed``
    (and ``stream``: the random pooler has its own, so the head does not depend on the pooler).

    Matches transformers' BERT initialisation: weights ``N(0, initializer_range^2)``, biases 0,
    LayerNorm weights 1.
    """
    std = float(getattr(model.config, "initializer_range", 0.02))
    gen = torch.Generator().manual_seed(derived_seed(stream, seed))
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
    autocast: torch.dtype | None = None,
) -> dict[str, float]:
    """Metrics of ``model`` on ``examples`` (dropout off, no gradients), plus the mean ``loss``.

    With ``autocast`` (e.g. ``torch.bfloat16``) the model's forward runs under autocast in that
    dtype; metrics and loss are computed in float32 from its logits.

    The model's train/eval mode is restored afterwards. Full-width adapters form ``Delta W``
    (``O(w^3)``) in every forward; for them a copy of the model with the updates merged into the
    base weights is evaluated instead, so ``Delta W`` is formed once per evaluation, not once per
    batch (the model itself is left untouched).
    """
    if any(layer.config.init == "full" and not layer.merged for layer in adapter_layers(model).values()):
        model = _merged_copy(model)
    return _evaluate(model, examples, task, pad_token_id, batch_size, device, progress, autocast)


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


def _evaluate(model, examples, task, pad_token_id, batch_size, device, progress, autocast=None) -> dict[str, float]:
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
                with autocast_region(device, autocast):
                    logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
                logits = logits.float()
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
    """``{name: (top singular values, top-k_vectors left singular vectors (m, k))}`` of every Delta W (CPU, float64)."""
    out = {}
    for name, delta in delta_weights(model).items():
        u, s, _ = torch.linalg.svd(delta.double(), full_matrices=False)
        k = min(k_vectors, u.shape[1])
        out[name] = (s[:k_values].cpu(), u[:, :k].cpu())
    return out


PROBES = 10
"""Probes of the head's input per run (:func:`head_input_probe`): at step 0, every ``max(1, steps // PROBES)``
steps and after the last one. Each is a forward pass on the first batch; 10 keep the curves' shape
(Fig. 8's probe plot) for half the time of 20."""

SATURATED = 0.99
"""A pooler unit is saturated on an example when ``|tanh| > SATURATED`` (its gradient is below 2 % of tanh's at 0)."""


def head_input_probe(model: nn.Module, batch: dict[str, Tensor], device: str | torch.device = "cpu",
                     autocast: torch.dtype | None = None) -> dict[str, float | None]:
    """What the classification head sees on ``batch`` (dropout off, no gradients, no random numbers drawn):

    - ``spread``: the mean over features of the standard deviation over examples of the head's input
      (a sequence output is read at its first token). Near 0, every example looks the same to the head,
      so its prediction is one constant;
    - ``saturated``: the share of (example, unit) pairs where a ``tanh`` pooler's output exceeds
      :data:`SATURATED` in absolute value (``None`` without a module named ``pooler`` ending in ``Tanh``).

    Raises:
        ValueError: when ``model`` has none of the head modules :data:`~compressible.finetune.backbones.HEAD_PREFIXES` names.
    """
    head = next((getattr(model, name) for name in HEAD_PREFIXES if isinstance(getattr(model, name, None), nn.Module)), None)
    if head is None:
        raise ValueError(f"{type(model).__name__} has no head module named one of {HEAD_PREFIXES}")
    pooler = next((m for name, m in model.named_modules() if name.split(".")[-1] == "pooler"), None)
    tanh = None if pooler is None else next((m for m in pooler.modules() if isinstance(m, nn.Tanh)), None)
    seen: dict[str, Tensor] = {}
    hooks = [head.register_forward_pre_hook(lambda _m, args: seen.__setitem__("head", args[0].detach()))]
    if tanh is not None:
        hooks.append(tanh.register_forward_hook(lambda _m, _a, out: seen.__setitem__("tanh", out.detach())))
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        with torch.no_grad(), autocast_region(device, autocast):
            model(**inputs)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    x = seen["head"].float()
    x = x[:, 0] if x.dim() == 3 else x
    spread = float(x.std(0).mean()) if x.shape[0] > 1 else float("nan")
    saturated = float((seen["tanh"].float().abs() > SATURATED).float().mean()) if "tanh" in seen else None
    return {"spread": spread, "saturated": saturated}


class Runner:
    """Runs ``(RunConfig, seed)`` pairs, caching tokenizers, tokenised data and loaded backbones.

    A sweep makes one ``Runner`` and passes it to :meth:`compressible.store.ResultStore.run` as
    ``fn``: ``store.run(config, seeds, Runner(device="cuda"))``. The caches live in the object,
    not in the module.

    ``threads`` sets torch's CPU intra-op threads during each run (restored afterwards). By
    default runs of :data:`~compressible.finetune.backbones.TINY_BERT` use one thread: its matrices
    are too small to gain from more, and on a busy machine the thread synchronisation makes them
    several times slower.

    A run is :meth:`setup`, then :meth:`step` per batch (with :meth:`checkpoint` and
    :meth:`evaluate` where the config asks for them), then :meth:`report`; :meth:`fit` does all of
    it inside the run's seeded dropout RNG.
    """

    def __init__(self, device: str | torch.device = "cpu", progress: bool = True, threads: int | None = None):
        self.device = torch.device(device)
        self.progress = progress
        if threads is not None:
            _positive_int("threads", threads)
        self.threads = threads
        self._tokenizers: dict[str, Any] = {}
        self._data: dict[tuple, GlueData] = {}
        self._backbones: dict[tuple, Backbone] = {}

    def tokenizer(self, backbone: str):
        """The tokenizer of ``backbone`` (loaded once)."""
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
            self._backbones[key] = load_backbone(config.backbone, labels=key[1], tokenizer=self.tokenizer(config.backbone))
        backbone = self._backbones[key]
        model = copy.deepcopy(backbone.model)
        _init_random_parts(model, backbone.random_parts, seed)
        if config.pooler == "random":
            _init_random_parts(model, pooler_names(model), seed, stream="pooler")
        model = model.to(device=self.device, dtype=DTYPES[config.dtype])
        if (self.device.type == "cpu" and autocast_dtype(config.autocast, self.device) is not None
                and callable(getattr(model, "set_attn_implementation", None))):
            model.set_attn_implementation("eager")  # CPU SDPA in bf16 is slower than eager attention
        return model

    def __call__(self, config: RunConfig, seed: int) -> dict:
        return self.run(config, seed)

    def run(self, config: RunConfig, seed: int) -> dict:
        """Fine-tune at ``seed``; see :func:`run` for the result."""
        return self.fit(config, seed)[1]

    def fit(self, config: RunConfig, seed: int) -> tuple[nn.Module, dict]:
        """Fine-tune at ``seed``; returns the trained model (with its adapters) and the result of :func:`run`."""
        return self._with_threads(config, self._fit, config, seed)

    def replay(self, config: RunConfig, seed: int, steps: int) -> dict:
        """The first ``steps`` updates of ``(config, seed)`` exactly as :meth:`fit` takes them (the same sample,
        batch order, dropout stream and rate schedule), for checking a stored run against its re-execution
        (:mod:`compressible.ledger.verify`). Returns ``train_loss`` and ``lr`` of those steps and ``sample_idx``."""
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= config.steps:
            raise ValueError(f"steps must be an int in [1, {config.steps}] (the run's steps), got {steps!r}")
        return self._with_threads(config, self._fit, config, seed, steps)[1]

    def _with_threads(self, config: RunConfig, fn, *args):
        threads = self.threads if self.threads is not None else (1 if config.backbone == TINY_BERT else None)
        if threads is None:
            return fn(*args)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn(*args)
        finally:
            torch.set_num_threads(previous)

    def _fit(self, config: RunConfig, seed: int, until: int | None = None) -> tuple[nn.Module, dict]:
        state = self.setup(config, seed)
        if 0 in config.checkpoints:
            self.checkpoint(state, 0)
        state.model.train()
        bar = tqdm(range(1, config.steps + 1), disable=not self.progress, leave=False,
                   desc=f"{config.task} {config.adapter.init} seed {seed}")
        metric = primary_metric(config.task)
        every = max(1, config.steps // PROBES)
        self.probe(state, 0)
        with _forked_rng(self.device, derived_seed("dropout", config.task, seed)):
            batch = state.first
            for step in bar:
                self.step(state, batch, step)
                if step == until:  # a replay (see :meth:`replay`) stops here
                    bar.close()
                    state.restore_weights()
                    return state.model, {"train_loss": state.losses, "lr": state.lrs,
                                         "sample_idx": state.train_set.idx.tolist() if config.n_train is not None else None}
                if step % every == 0 or step == config.steps:
                    self.probe(state, step)
                if step in config.checkpoints:
                    self.checkpoint(state, step)
                if step == config.steps or (config.eval_every and step % config.eval_every == 0):
                    self.evaluate(state, step)
                if step == config.steps and config.holdout and config.holdout_eval:
                    self.evaluate_holdout(state)
                if step == config.steps:
                    bar.set_postfix(loss=f"{state.losses[-1]:.3g}", **{metric: f"{state.evals[-1][metric]:.3f}"})
                if step < config.steps:
                    batch = next(state.batches)
        result = self.report(state)
        state.restore_weights()
        state.model.eval()
        return state.model, result

    def setup(self, config: RunConfig, seed: int) -> "RunState":
        """Everything a run needs before its first step: the seed's training sample and batch order,
        the model with its random head and adapters (compressed from the first batch for
        ``"compressed"``), the optimiser and the learning-rate schedule."""
        if not isinstance(config, RunConfig):
            raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        start = time.perf_counter()
        data = self.data(config)
        train_set = data.sample(config.n_train, seed, config.replacement, holdout=config.holdout)
        if len(train_set) < config.batch_size:
            raise ValueError(
                f"{config.task}: {len(train_set)} training examples after filtering, fewer than batch_size={config.batch_size}"
            )
        eval_set = data.eval_subset(config.eval_limit)
        model = self.model(config, seed)
        report = add_adapters(model, config.adapter_at(seed))
        head = [p for n, p in model.named_parameters() if n.split(".")[0] in HEAD_PREFIXES]
        order = torch.Generator().manual_seed(derived_seed("order", config.task, seed))
        batches = train_batches(train_set, config.batch_size, data.pad_token_id, order)
        first = next(batches)

        # wall-clock seconds per phase, and CPU seconds of this process (all threads) for train/eval
        timings = {"setup": time.perf_counter() - start, "compress": 0.0, "train": 0.0, "eval": 0.0, "analysis": 0.0,
                   "train_cpu": 0.0, "eval_cpu": 0.0}
        if config.adapter.init == "compressed":
            tic = time.perf_counter()
            source = first if config.compress_from == "first-batch" else collate(train_set, data.pad_token_id)
            compress_from_batch(model, {k: v.to(self.device) for k, v in source.items()})
            timings["compress"] = time.perf_counter() - tic

        extra = []
        if config.train_head:
            for p in head:
                p.requires_grad_(True)
            extra.append({"params": head, "lr": config.head_lr, "name": "head"})
        optimizer = adapter_optimizer(model, config.lr, extra)
        if config.lr_end is None:
            schedule = None
        else:  # optax.linear_schedule: lr at update t is lr + (lr_end - lr) * t / steps
            ratio = config.lr_end / config.lr
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda t: 1.0 + (ratio - 1.0) * min(t, config.steps) / config.steps
            )
        autocast = autocast_dtype(config.autocast, self.device)
        # autocast re-casts every frozen float32 weight at every forward (only leaves that require grad are
        # cached); casting them once gives the same bf16 values for a tenth less step time
        originals = [] if autocast is None else cast_frozen_linears(model, autocast)
        return RunState(config, seed, start, data, train_set, eval_set, model, report, batches, first,
                        optimizer, schedule, timings, autocast=autocast, originals=originals)

    def step(self, state: "RunState", batch: dict[str, Tensor], step: int) -> float:
        """One optimiser update on ``batch`` (the ``step``-th, from 1); returns its loss.

        Raises:
            FloatingPointError: when the loss is not finite (the message suggests a lower ``lr``).
        """
        config, optimizer = state.config, state.optimizer
        tic, cpu = time.perf_counter(), time.process_time()
        state.lrs.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.zero_grad(set_to_none=True)
        parts = split_batch(batch) if config.split_by_length else [(1.0, batch)]
        loss = 0.0
        for share, part in parts:
            part = {k: v.to(self.device) for k, v in part.items()}
            if state.autocast is None and len(parts) == 1:
                part_loss = state.model(**part).loss
            else:  # only the model's forward is autocast; the loss is computed in float32 from its logits
                labels = part.pop("labels")
                with autocast_region(self.device, state.autocast):
                    logits = state.model(**part).logits
                part_loss = _loss(logits.float(), labels, config.task)
            (share * part_loss).backward()
            loss = loss + share * part_loss.detach()
        optimizer.step()
        if state.schedule is not None:
            state.schedule.step()
        state.losses.append(float(loss.detach()))
        state.timings["train"] += time.perf_counter() - tic
        state.timings["train_cpu"] += time.process_time() - cpu
        if not math.isfinite(state.losses[-1]):
            raise FloatingPointError(
                f"{config.task} {config.adapter.init} seed {state.seed}: training loss is {state.losses[-1]} "
                f"at step {step}; lower lr={config.lr}"
            )
        return state.losses[-1]

    def evaluate(self, state: "RunState", step: int) -> dict[str, float]:
        """Metrics of the model on the run's evaluation set after ``step`` updates (recorded in ``state.evals``)."""
        config = state.config
        tic, cpu = time.perf_counter(), time.process_time()
        metrics = evaluate(state.model, state.eval_set, config.task, state.data.pad_token_id, config.eval_batch_size,
                           self.device, autocast=state.autocast)
        state.evals.append({"step": step, **metrics})
        state.timings["eval"] += time.perf_counter() - tic
        state.timings["eval_cpu"] += time.process_time() - cpu
        return state.evals[-1]

    def evaluate_holdout(self, state: "RunState") -> dict[str, float]:
        """Metrics of the model on the ``config.holdout`` training examples set aside from every sample
        (recorded in ``state.holdout``)."""
        config = state.config
        tic = time.perf_counter()
        state.holdout = evaluate(state.model, state.data.holdout(config.holdout), config.task, state.data.pad_token_id,
                                 config.eval_batch_size, self.device, autocast=state.autocast)
        state.timings["eval"] += time.perf_counter() - tic
        return state.holdout

    def probe(self, state: "RunState", step: int) -> dict:
        """:func:`head_input_probe` on the run's first training batch after ``step`` updates (recorded in
        ``state.probes``)."""
        tic = time.perf_counter()
        state.probes.append({"step": step, **head_input_probe(state.model, state.first, self.device, state.autocast)})
        state.timings["analysis"] += time.perf_counter() - tic
        return state.probes[-1]

    def checkpoint(self, state: "RunState", step: int) -> None:
        """Record the top singular values and left singular vectors of every ``Delta W`` after ``step``
        updates (Fig. 2); :meth:`report` compares the vectors with the final ones
        (:func:`compressible.deeplora.analysis.basis_alignment`)."""
        tic = time.perf_counter()
        state.snapshots[step] = _snapshot(state.model, state.k_values, state.config.checkpoint_rank)
        state.timings["analysis"] += time.perf_counter() - tic

    def report(self, state: "RunState") -> dict:
        """The JSON-ready result of a finished run (see :func:`run`)."""
        config, data, model = state.config, state.data, state.model
        baseline = loss_baseline(config.task, state.train_set.labels)
        result: dict[str, Any] = {
            "task": config.task,
            "adapter": config.adapter.init,
            "metric": primary_metric(config.task),
            "evals": state.evals,
            "final": state.evals[-1],
            "train_loss": state.losses,
            "probes": state.probes,
            "loss_baseline": baseline,
            "trained": has_trained(state.losses, baseline),
            "lr": state.lrs,
            "trainable_params": state.trainable_params,
            "adapted_modules": len(state.report.modules),
            "n_train": len(state.train_set),
            "train_pool": len(data.train),
            "n_eval": len(state.eval_set),
            "eval_split": data.eval_split,
            "eval_dropped_by_filter": int(data.raw_sizes[data.eval_split] - len(data.eval)),
            "device": str(self.device),
            "autocast": "off" if state.autocast is None else str(state.autocast).removeprefix("torch."),
            "threads": torch.get_num_threads(),
        }
        if config.n_train is not None:
            result["sample_idx"] = state.train_set.idx.tolist()
        if state.holdout is not None:
            result["holdout"] = state.holdout
        tic = time.perf_counter()
        if config.spectrum_top:
            ranks = numerical_rank(model)
            result["spectra"] = {
                name: {"singular_values": s.tolist(), "rank": int(ranks[name])}
                for name, (s, _) in _snapshot(model, config.spectrum_top, 1).items()
            }
        if config.checkpoints:
            snapshots = state.snapshots
            final = snapshots[config.steps] if config.steps in snapshots else _snapshot(model, state.k_values, config.checkpoint_rank)
            steps = sorted(snapshots)
            result["checkpoints"] = {
                "steps": steps,
                "k": config.checkpoint_rank,
                "singular_values": {n: [snapshots[t][n][0].tolist() for t in steps] for n in final},
                "alignment": {n: [basis_alignment(snapshots[t][n][1], final[n][1]) for t in steps] for n in final},
            }
        state.timings["analysis"] += time.perf_counter() - tic
        result["timings"] = state.timings
        result["wall_time"] = time.perf_counter() - state.start
        return result


@dataclass
class RunState:
    """A run in progress (built by :meth:`Runner.setup`, advanced by :meth:`Runner.step`)."""

    config: RunConfig
    seed: int
    start: float
    """``time.perf_counter()`` when the run started."""
    data: GlueData
    train_set: Examples
    eval_set: Examples
    model: nn.Module
    report: AdapterReport
    batches: Iterator[dict[str, Tensor]]
    first: dict[str, Tensor]
    """The first training batch (also the one the compressed initialisation used)."""
    optimizer: torch.optim.Optimizer
    schedule: Any
    timings: dict[str, float]
    evals: list[dict] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)
    """``[{"step", "spread", "saturated"}]``: :func:`head_input_probe` on the first batch (:meth:`Runner.probe`)."""
    snapshots: dict[int, dict[str, tuple[Tensor, Tensor]]] = field(default_factory=dict)
    """``{step: {module: (top singular values, top left singular vectors)}}`` at the config's checkpoints."""
    autocast: torch.dtype | None = None
    """The dtype of the model's autocast region (``config.autocast`` resolved on the device), or ``None``."""
    holdout: dict[str, float] | None = None
    """Final metrics on the held-out training examples (``config.holdout > 0``), set after the last step."""
    originals: list[tuple[nn.Parameter, Tensor]] = field(default_factory=list)
    """The float32 data of the frozen weights cast to the autocast dtype for the run (:func:`cast_frozen_linears`)."""

    def restore_weights(self) -> None:
        """Give the frozen weights cast for autocast their original data back (merging and export then see float32)."""
        for param, data in self.originals:
            param.data = data
        self.originals = []

    @property
    def k_values(self) -> int:
        """Singular values kept per checkpoint."""
        return max(self.config.spectrum_top, self.config.checkpoint_rank)

    @property
    def trainable_params(self) -> int:
        return int(sum(p.numel() for g in self.optimizer.param_groups for p in g["params"]))


def cast_frozen_linears(model: nn.Module, dtype: torch.dtype) -> list[tuple[nn.Parameter, Tensor]]:
    """Cast the weights and biases of every frozen ``nn.Linear``/``Conv1D`` of ``model`` to ``dtype`` in place.

    Under autocast these layers' matmuls cast their float32 weights to ``dtype`` at every call (the
    autocast cache keeps only leaves that require grad); a weight cast once holds the same values, so
    the outputs are identical and the casts are saved. Layers with a trainable parameter, and every
    other module (embeddings, layer norms, the adapter factors), are left alone.

    Returns:
        ``[(parameter, original data)]``, to restore with ``parameter.data = original``.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.bfloat16, got {dtype!r}")
    originals = []
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if not is_adaptable(module) or not params or any(p.requires_grad for p in params):
            continue
        for param in params:
            if param.dtype != dtype and param.is_floating_point():
                originals.append((param, param.data))
                param.data = param.data.to(dtype)
    return originals


def _loss(logits: Tensor, labels: Tensor, task: str) -> Tensor:
    """The loss transformers' sequence classifiers compute: MSE on the single output (STS-B), else cross-entropy."""
    if is_regression(task):
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))


def run(config: RunConfig, seed: int, device: str | torch.device = "cpu", progress: bool = True) -> dict:
    """Fine-tune ``config.backbone`` on ``config.task`` at ``seed`` and evaluate it.

    Returns a JSON-ready dict:

    - ``evals``: ``[{"step", <metrics>, "loss"}]`` at every evaluation; ``final``: the last one;
      ``metric``: the paper's metric name (``final[metric]`` is the number to report);
    - ``train_loss``: the loss of every step's batch (dropout on); ``lr``: the (inner) learning
      rate of every step; ``loss_baseline``: the loss of the best constant predictor on the
      training sample (:func:`~compressible.finetune.metrics.loss_baseline`) and ``trained``
      whether the run's final loss fell well below it (:func:`~compressible.finetune.metrics.has_trained`);
    - ``probes``: ``[{"step", "spread", "saturated"}]``, what the head sees on the first training batch
      (:func:`head_input_probe`) at step 0, every ``steps // PROBES`` steps and after the last;
    - ``holdout`` (if ``config.holdout`` and ``config.holdout_eval``): final metrics on the held-out training examples;
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
