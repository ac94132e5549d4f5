"""The one optimiser of every fine-tuning run, and the learning-rate defaults (paper Sec. 4, App. C, D.2).

Classification (:mod:`compressible.finetune.classify`) and generation (:mod:`compressible.finetune.generate`) both train adapters with Adam
as the authors' code does (``dlt/train.py``): betas 0.9/0.999, eps 1e-6, no weight decay
(:data:`ADAM`). :func:`adapter_optimizer` builds it over
:func:`compressible.deeplora.model.param_groups`: inner factors at ``lr``, the outer factors of
compressed adapters at ``gamma * lr``, with ``gamma`` read from the adapters' own
:class:`~compressible.deeplora.config.DeepLoRAConfig` (its only home).

Learning-rate defaults: compressed Deep LoRA trains its inner factors at :data:`COMPRESSED_LR`
(App. D.2: 1e-2, outer factors at ``gamma * 1e-2`` with ``DeepLoRAConfig.gamma = 1e-2``); every
other adapter kind at :data:`ADAPTER_LR` (1e-4, the paper's LoRA rate). :func:`default_lr` picks
between them.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..deeplora import param_groups
from ..deeplora.config import INITS

__all__ = ["ADAM", "COMPRESSED_LR", "ADAPTER_LR", "default_lr", "adapter_optimizer"]

ADAM = {"betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.0}
"""Adam's settings in every fine-tuning run (the authors': constant rate, no weight decay)."""

COMPRESSED_LR = 1e-2
"""Inner-factor learning rate of compressed Deep LoRA (App. D.2)."""

ADAPTER_LR = 1e-4
"""Learning rate of LoRA, random narrow and full-width adapters (the paper's LoRA rate)."""


def default_lr(init: str) -> float:
    """The default (inner) learning rate of adapter kind ``init`` (a ``DeepLoRAConfig.init``)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return COMPRESSED_LR if init == "compressed" else ADAPTER_LR


def adapter_optimizer(model: nn.Module, lr: float, extra_groups: Iterable[dict] = ()) -> torch.optim.Adam:
    """Adam (:data:`ADAM`) over the adapters of ``model`` plus ``extra_groups``.

    The adapter groups are :func:`compressible.deeplora.model.param_groups` ``(model, lr)`` (inner
    factors at ``lr``, outer factors of compressed adapters at ``gamma * lr`` with the adapters'
    ``gamma``); ``extra_groups`` (e.g. a trained classification head, ``{"params", "lr", "name"}``)
    are appended after them.
    """
    groups = param_groups(model, lr=lr)
    groups.extend(extra_groups)
    return torch.optim.Adam(groups, **ADAM)
