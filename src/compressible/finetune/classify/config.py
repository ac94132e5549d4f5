"""The configuration of one GLUE fine-tuning run: :class:`RunConfig` (a run is ``(RunConfig, seed)``).

Its class name and its fields' names, defaults and values key the runs in the result store and the
ledger (:func:`compressible.store.config_key`): renaming or re-defaulting a field changes every key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ...deeplora import DeepLoRAConfig
from ...store import KEY_OPTIONAL
from ..backbones import BACKBONES, POOLERS, backbone_spec
from ..glue import check_task
from ..optim import ADAPTER_LR, default_lr
from ..peft_family import PeftAdapter
from ..precision import AUTOCAST

__all__ = ["DTYPES", "COMPRESS_FROM", "RunConfig"]

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}

COMPRESS_FROM = ("first-batch", "sample")
"""Gradients the outer factors of compressed adapters come from (:attr:`RunConfig.compress_from`)."""


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _positive_float(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """One fine-tuning experiment; run it at a seed with :func:`~compressible.finetune.classify.training.run`.

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

    adapter: DeepLoRAConfig | PeftAdapter = field(default_factory=DeepLoRAConfig)
    """The adapters: kind (``init``), depth, rank, targets (``"attention-mlp"`` = q, k, v, attention
    output, intermediate, output of every block: the paper's 72 for bert-base), ``epsilon``,
    ``alpha`` and ``gamma`` (outer-factor rate ratio of compressed adapters). Its ``seed`` must be
    left at 0: the run's seed replaces it (:meth:`RunConfig.adapter_at`). A
    :class:`~compressible.finetune.peft_family.PeftAdapter` runs one of PEFT's LoRA variants instead."""

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
    """Also train the classification head (not the paper's protocol; see :mod:`compressible.finetune.classify`)."""

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
    """bf16 autocast of the model's forward/backward, one of :data:`~compressible.finetune.precision.AUTOCAST` (see :func:`~compressible.finetune.precision.autocast_dtype`);
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
    only to its own longest member (:func:`~compressible.finetune.batches.split_batch`), and sum them
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
        if not isinstance(self.adapter, (DeepLoRAConfig, PeftAdapter)):
            raise TypeError(
                f"adapter must be a DeepLoRAConfig (e.g. DeepLoRAConfig(init='lora')) or a PeftAdapter (PEFT's LoRA "
                f"family), got {self.adapter!r}"
            )
        if isinstance(self.adapter, PeftAdapter) and (self.spectrum_top or self.checkpoints):
            raise ValueError(f"spectrum_top={self.spectrum_top!r} and checkpoints={self.checkpoints!r} analyse Deep LoRA "
                             "adapters' updates; leave them at 0 and () for a PeftAdapter")
        if isinstance(self.adapter, DeepLoRAConfig) and self.adapter.seed != 0:
            raise ValueError(
                f"adapter.seed={self.adapter.seed!r}: leave it at 0, the run's seed replaces it "
                "(run(config, seed) draws the adapters from seed)"
            )
        if self.lr is None:
            lr = ADAPTER_LR if isinstance(self.adapter, PeftAdapter) else default_lr(self.adapter.init)
            object.__setattr__(self, "lr", lr)
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

    def adapter_at(self, seed: int) -> DeepLoRAConfig | PeftAdapter:
        """The adapters of a run at ``seed``: the :class:`~compressible.deeplora.config.DeepLoRAConfig` drawn from
        ``seed``, or the :class:`~compressible.finetune.peft_family.PeftAdapter` (drawn under the run's seeded
        generator)."""
        return dataclasses.replace(self.adapter, seed=seed) if isinstance(self.adapter, DeepLoRAConfig) else self.adapter

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with ``changes`` applied (``None`` defaults are resolved again: a new ``adapter``
        gets its kind's default ``lr`` unless ``lr`` is given)."""
        if "adapter" in changes:
            changes.setdefault("lr", None)
        if changes.get("train_head") is False:
            changes.setdefault("head_lr", None)
        return dataclasses.replace(self, **changes)
