"""Deep LoRA adapters in a model: injection, merge/unmerge, and the optimiser's parameter groups.

:func:`add_adapters` walks a model, finds the target modules by name, freezes every base
parameter and swaps each target for a :class:`~compressible.deeplora.layer.DeepLoRALinear`.
:func:`merge_adapters` adds every adapter's ``ΔW`` into its frozen base weight for inference and
:func:`unmerge_adapters` takes it out again. :func:`param_groups` puts inner factors at ``lr`` and
the outer factors of compressed adapters at ``gamma * lr`` (paper Sec. 3-4), with ``gamma`` read
from the adapters' :attr:`~compressible.deeplora.config.DeepLoRAConfig.gamma`, its one home.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

import pandas as pd
import torch
from torch import nn

from .config import HEAD_NAMES, TARGET_PRESETS, DeepLoRAConfig
from .layer import DeepLoRALinear, is_adaptable

__all__ = [
    "AdapterReport",
    "add_adapters",
    "adapter_layers",
    "require_adapters",
    "merge_adapters",
    "unmerge_adapters",
    "param_groups",
    "resolve_targets",
]


def _suffix_match(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def _head_names(model: nn.Module) -> set[str]:
    heads = set()
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    for name, module in model.named_modules():
        if out is not None and module is out:
            heads.add(name)
        elif any(part in HEAD_NAMES for part in name.split(".")):
            heads.add(name)
    return heads


def resolve_targets(model: nn.Module, targets) -> list[str]:
    """Names of the modules of ``model`` that ``targets`` selects, in ``named_modules`` order.

    - a preset (``"query-value"``, ``"attention-mlp"``): module names ending in one of the preset's
      dotted suffixes (:data:`~compressible.deeplora.config.TARGET_PRESETS`);
    - ``"all-linear"``: every ``nn.Linear`` / ``Conv1D`` except the output head (the output
      embeddings and modules under ``lm_head``, ``classifier``, ``score``, ...);
    - ``"all-dense"``: those of them whose weight has min dimension >= the model's hidden size (the
      authors' "all dense" set); ``"all-dense-embeddings"`` adds the input embeddings (see
      :data:`~compressible.deeplora.config.RULE_PRESETS`);
    - a list of names: each entry is a dotted suffix (``"query"``, ``"attention.output.dense"``)
      or a full name, and each must match at least one module;
    - ``"re:<pattern>"``: ``re.fullmatch`` against full module names.

    Modules already inside a :class:`~compressible.deeplora.layer.DeepLoRALinear` are skipped.

    Raises:
        ValueError: when nothing matches, when a list entry matches nothing, or when a selected
            module is not an ``nn.Linear`` / ``Conv1D``; the message names the module or the entry.
    """
    inside_adapters = {
        f"{name}.{sub}" if sub else name
        for name, module in model.named_modules()
        if isinstance(module, DeepLoRALinear)
        for sub, _ in module.named_modules()
    }
    named = [(n, m) for n, m in model.named_modules() if n and n not in inside_adapters]
    strict_types = True
    if isinstance(targets, str) and targets == "all-linear":
        heads = _head_names(model)
        selected = [n for n, m in named if is_adaptable(m) and n not in heads]
        strict_types = False
    elif isinstance(targets, str) and targets in ("all-dense", "all-dense-embeddings"):
        selected = _dense_names(model, named, embeddings=targets == "all-dense-embeddings")
        strict_types = False
    elif isinstance(targets, str) and targets.startswith("re:"):
        pattern = re.compile(targets[3:])
        selected = [n for n, _ in named if pattern.fullmatch(n)]
    elif isinstance(targets, str):
        suffixes = TARGET_PRESETS[targets]
        selected = [n for n, m in named if is_adaptable(m) and any(_suffix_match(n, s) for s in suffixes)]
        strict_types = False
    else:
        unmatched = [t for t in targets if not any(_suffix_match(n, t) for n, _ in named)]
        if unmatched:
            raise ValueError(
                f"targets {unmatched} match no module of {type(model).__name__}; "
                f"module names look like {[n for n, m in named if is_adaptable(m)][:6]}"
            )
        selected = [n for n, _ in named if any(_suffix_match(n, t) for t in targets)]
    if not selected:
        raise ValueError(
            f"targets {targets!r} match no nn.Linear/Conv1D module of {type(model).__name__}; "
            f"its linear modules are named like {[n for n, m in named if is_adaptable(m)][:6]}"
        )
    if strict_types:
        modules = dict(named)
        wrong = [(n, type(modules[n]).__name__) for n in selected if not is_adaptable(modules[n])]
        if wrong:
            raise ValueError(
                f"targets {targets!r} select modules that are not nn.Linear/Conv1D: {wrong[:5]}; "
                "narrow the pattern"
            )
    return selected


def _hidden_size(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    for attr in ("hidden_size", "d_model", "n_embd"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    raise ValueError(
        f"targets 'all-dense' need the model's hidden size, but {type(model).__name__} has no config.hidden_size "
        "(or d_model / n_embd); list the targets by name instead"
    )


def _dense_names(model: nn.Module, named: list[tuple[str, nn.Module]], embeddings: bool) -> list[str]:
    """The authors' "all dense" set: adaptable modules outside the head with min(weight.shape) >= hidden size,
    plus the input embeddings when ``embeddings``, in ``named_modules`` order."""
    hidden, heads = _hidden_size(model), _head_names(model)
    get_in = getattr(model, "get_input_embeddings", None)
    inputs = get_in() if embeddings and callable(get_in) else None
    if embeddings and inputs is None:
        raise ValueError(f"targets 'all-dense-embeddings': {type(model).__name__} has no input embeddings; use 'all-dense'")
    return [
        n for n, m in named
        if (m is inputs) or (is_adaptable(m) and n not in heads and min(m.weight.shape) >= hidden)
    ]


@dataclass(frozen=True)
class AdapterReport:
    """What :func:`add_adapters` did.

    Attributes:
        config: the configuration used.
        modules: adapted module names, in model order.
        shapes: ``(m, n)`` of each adapted weight.
        factor_shapes: the factor shapes of each adapter, first to last.
        adapter_params: trainable parameters of each adapter.
        frozen_params: parameters of the model that are frozen (every base parameter).
    """

    config: DeepLoRAConfig
    modules: list[str]
    shapes: list[tuple[int, int]]
    factor_shapes: list[list[tuple[int, int]]] = field(repr=False)
    adapter_params: list[int] = field(repr=False)
    frozen_params: int = 0

    @property
    def trainable_params(self) -> int:
        """Total number of adapter parameters."""
        return sum(self.adapter_params)

    def __len__(self) -> int:
        return len(self.modules)

    def to_frame(self) -> pd.DataFrame:
        """One row per adapted module: ``module, out, in, factors, params``."""
        return pd.DataFrame(
            {
                "module": self.modules,
                "out": [s[0] for s in self.shapes],
                "in": [s[1] for s in self.shapes],
                "factors": [" -> ".join(f"{a}x{b}" for a, b in fs) for fs in self.factor_shapes],
                "params": self.adapter_params,
            }
        )

    def __str__(self) -> str:
        cfg = self.config
        total = self.trainable_params + self.frozen_params
        head = (
            f"Deep LoRA adapters: init={cfg.init!r}, depth={cfg.depth}, rank={cfg.rank}, "
            f"{len(self.modules)} modules, {self.trainable_params:,} trainable parameters "
            f"({100 * self.trainable_params / max(total, 1):.3f}% of {total:,})"
        )
        return head + "\n" + self.to_frame().to_string(index=False)


def add_adapters(model: nn.Module, config: DeepLoRAConfig) -> AdapterReport:
    """Freeze ``model`` and wrap every target module in a :class:`~compressible.deeplora.layer.DeepLoRALinear` (in place).

    Every parameter that exists before the call is frozen (``requires_grad = False``), the output
    head included, as in the paper's protocol; only the adapter factors train. Random factors are
    drawn from one generator seeded with ``config.seed``, module by module in model order.
    Compressed adapters start with zero outer factors: call :func:`~compressible.deeplora.compress.compress_from_batch` next.

    Returns:
        an :class:`AdapterReport` (``print`` it, or ``report.to_frame()``).

    Raises:
        ValueError: for targets that match nothing, or a rank above ``min(m, n)`` of a module.
        RuntimeError: if ``model`` already holds adapters.
    """
    if any(isinstance(m, DeepLoRALinear) for m in model.modules()):
        raise RuntimeError(f"{type(model).__name__} already holds Deep LoRA adapters; add_adapters once per model")
    names = resolve_targets(model, config.targets)
    modules = dict(model.named_modules())
    unsupported = [(n, type(modules[n]).__name__) for n in names if not is_adaptable(modules[n])]
    if unsupported:
        raise ValueError(
            f"targets {config.targets!r} select {unsupported}, which cannot be adapted yet (only nn.Linear and "
            "transformers Conv1D); use targets='all-dense' to leave the embeddings out"
        )
    if config.init != "full":  # check all ranks before changing anything
        for name in names:
            w = modules[name].weight
            if config.rank > min(w.shape):
                m, n = (w.shape[1], w.shape[0]) if not isinstance(modules[name], nn.Linear) else tuple(w.shape)
                raise ValueError(
                    f"rank {config.rank} exceeds min(out, in) = {min(w.shape)} for {name!r} (shape {m} x {n}); "
                    "lower the rank or leave this module out of targets"
                )
    for p in model.parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in model.parameters())
    generator = torch.Generator().manual_seed(config.seed)
    shapes, factor_shapes, counts = [], [], []
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = DeepLoRALinear(modules[name], config, generator=generator, name=name)
        setattr(parent, child, layer)
        shapes.append((layer.out_features, layer.in_features))
        factor_shapes.append([tuple(f.shape) for f in layer.factors])
        counts.append(layer.num_trainable())
    return AdapterReport(config, names, shapes, factor_shapes, counts, frozen)


def adapter_layers(model: nn.Module) -> dict[str, DeepLoRALinear]:
    """``{module name: layer}`` for every :class:`~compressible.deeplora.layer.DeepLoRALinear` of ``model``, in model order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, DeepLoRALinear)}


def require_adapters(model: nn.Module, action: str) -> dict[str, DeepLoRALinear]:
    """:func:`adapter_layers` of ``model``, or a ``ValueError`` saying that ``action`` needs adapters."""
    layers = adapter_layers(model)
    if not layers:
        raise ValueError(
            f"cannot {action}: {type(model).__name__} has no Deep LoRA adapters; "
            f"call add_adapters(model, DeepLoRAConfig(...)) or load_adapters(model, folder) first"
        )
    return layers


def merge_adapters(model: nn.Module) -> list[str]:
    """Add every adapter's ``ΔW`` into its frozen base weight (faster inference, same outputs).

    Layers that are already merged are left alone. Returns the paths of the layers merged now.
    """
    done = []
    for path, layer in require_adapters(model, "merge adapters").items():
        if not layer.merged:
            layer.merge()
            done.append(path)
    return done


def unmerge_adapters(model: nn.Module) -> list[str]:
    """Undo :func:`merge_adapters`: subtract every merged ``ΔW`` from its base weight again.

    Returns the paths of the layers unmerged now.
    """
    done = []
    for path, layer in require_adapters(model, "unmerge adapters").items():
        if layer.merged:
            layer.unmerge()
            done.append(path)
    return done


def _iter_factors(model: nn.Module) -> Iterator[tuple[DeepLoRALinear, int, nn.Parameter]]:
    for layer in adapter_layers(model).values():
        for k, f in enumerate(layer.factors):
            yield layer, k, f


def param_groups(model: nn.Module, lr: float) -> list[dict]:
    """Optimiser parameter groups for the adapters of ``model``.

    Inner factors train at ``lr``; the outer factors (``left``, ``right``) of compressed adapters
    at ``gamma * lr``, with ``gamma`` the adapters' ``config.gamma`` (set it in the
    :class:`~compressible.deeplora.config.DeepLoRAConfig` given to :func:`add_adapters`).
    ``gamma = 0`` freezes the outer factors: they get ``requires_grad = False`` and are left out of
    the groups. LoRA, random and full adapters have no outer factors: everything trains at ``lr``.
    Each group has a ``"name"`` (``"inner"`` / ``"outer"``); empty groups are omitted.

    Use as ``torch.optim.Adam(param_groups(model, lr), betas=(0.9, 0.999), eps=1e-6)``.

    Raises:
        ValueError: without adapters, for ``lr <= 0``, or when compressed adapters disagree on
            ``gamma`` (naming two modules and their values).
    """
    layers = require_adapters(model, "build parameter groups")
    if not (lr > 0):
        raise ValueError(f"lr must be positive, got {lr}")
    gammas = {name: layer.config.gamma for name, layer in layers.items() if layer.outer}
    if len(set(gammas.values())) > 1:
        first = next(iter(gammas))
        other = next(name for name, g in gammas.items() if g != gammas[first])
        raise ValueError(
            f"compressed adapters disagree on gamma: {first!r} has {gammas[first]}, {other!r} has "
            f"{gammas[other]}; add all adapters of a model with one DeepLoRAConfig"
        )
    inner, outer = [], []
    outer_gamma = next(iter(gammas.values()), None)
    for layer, k, f in _iter_factors(model):
        if k not in layer.outer:
            f.requires_grad_(True)
            inner.append(f)
            continue
        f.requires_grad_(outer_gamma > 0)
        if outer_gamma > 0:
            outer.append(f)
    groups = []
    if inner:
        groups.append({"params": inner, "lr": lr, "name": "inner"})
    if outer:
        groups.append({"params": outer, "lr": outer_gamma * lr, "name": "outer"})
    return groups
