"""Saving and loading Deep LoRA adapters as themselves.

A trained adapter is **saved and loaded** (:func:`save_adapters`, :func:`load_adapters`) as a
folder with ``deep_lora.safetensors`` (every factor ``F_i`` of every adapted module, keyed
``<module path>.factors.<i>``) and ``deep_lora.json`` (the
:class:`~compressible.deeplora.config.DeepLoRAConfig`, and for each adapted module its factor
shapes and scaling). Only adapters are stored, never the base model.

The rest of an adapter's life cycle lives next door: merging into the frozen weights and back in
:mod:`compressible.deeplora.model` (:func:`~compressible.deeplora.model.merge_adapters`,
:func:`~compressible.deeplora.model.unmerge_adapters`), and the export as a standard PEFT LoRA
adapter in :mod:`compressible.deeplora.peft` (:func:`~compressible.deeplora.peft.export_peft`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .config import DeepLoRAConfig
from .model import adapter_layers, add_adapters, require_adapters

__all__ = ["ADAPTER_WEIGHTS_NAME", "ADAPTER_CONFIG_NAME", "save_adapters", "load_adapters"]

logger = logging.getLogger(__name__)

#: File names inside an adapter folder written by :func:`save_adapters`.
ADAPTER_WEIGHTS_NAME = "deep_lora.safetensors"
ADAPTER_CONFIG_NAME = "deep_lora.json"
_FORMAT = "compressible.deeplora"
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _config_to_dict(config: DeepLoRAConfig) -> dict[str, Any]:
    out = {}
    for field in fields(config):
        value = getattr(config, field.name)
        out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


def _config_from_dict(data: dict[str, Any], source: Path) -> DeepLoRAConfig:
    known = {field.name for field in fields(DeepLoRAConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"{source}: the stored DeepLoRAConfig has fields {unknown} that this version of "
            f"compressible does not know (known: {sorted(known)})"
        )
    return DeepLoRAConfig(**data)


def _shape(tensor: Tensor) -> list[int]:
    return [int(size) for size in tensor.shape]


# --------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------


def save_adapters(model: nn.Module, directory: str | Path) -> Path:
    """Write the adapters of ``model`` (not its base weights) to the folder ``directory``.

    Files: ``deep_lora.safetensors`` with one tensor per factor, key ``<module path>.factors.<i>``
    (``i`` counts first to last as the factors act on the input), and ``deep_lora.json`` with the
    :class:`~compressible.deeplora.config.DeepLoRAConfig` and, per adapted module, the base layer
    kind, ``in_features``, ``out_features``, the factor shapes and the scaling. Merged layers are saved all the same:
    their factors are unchanged by merging.

    Returns:
        The folder, created if needed.
    """
    from safetensors.torch import save_file

    layers = require_adapters(model, "save adapters")
    configs = {json.dumps(_config_to_dict(layer.config), sort_keys=True) for layer in layers.values()}
    if len(configs) != 1:
        raise ValueError(
            f"cannot save adapters added with {len(configs)} different DeepLoRAConfigs in one folder; "
            f"save_adapters expects the adapters of one add_adapters call"
        )
    config = next(iter(layers.values())).config
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    tensors: dict[str, Tensor] = {}
    modules: dict[str, Any] = {}
    for path, layer in layers.items():
        for index, factor in enumerate(layer.factors):
            tensors[f"{path}.factors.{index}"] = factor.detach().to("cpu").contiguous()
        modules[path] = {
            "base": layer.base_kind,
            "in_features": int(layer.in_features),
            "out_features": int(layer.out_features),
            "factor_shapes": [_shape(factor) for factor in layer.factors],
            "scaling": float(layer.scaling),
            "initialized": bool(getattr(layer, "initialized", True)),
        }
    save_file(tensors, str(directory / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
    meta = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "config": _config_to_dict(config),
        "modules": modules,
    }
    (directory / ADAPTER_CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("saved %d Deep LoRA adapters to %s", len(layers), directory)
    return directory


def _read_meta(directory: Path) -> dict[str, Any]:
    config_file = directory / ADAPTER_CONFIG_NAME
    weights_file = directory / ADAPTER_WEIGHTS_NAME
    missing = [str(file) for file in (config_file, weights_file) if not file.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a Deep LoRA adapter folder: missing {missing} "
            f"(write one with save_adapters(model, folder))"
        )
    meta = json.loads(config_file.read_text())
    if meta.get("format") != _FORMAT or meta.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"{config_file}: format {meta.get('format')!r} version {meta.get('format_version')!r} "
            f"is not {_FORMAT!r} version {_FORMAT_VERSION}"
        )
    return meta


def _check_base_modules(model: nn.Module, modules: dict[str, Any], directory: Path) -> None:
    """Before injecting adapters into a base model: every stored module exists there with its shape."""
    named = dict(model.named_modules())
    for path, info in modules.items():
        module = named.get(path)
        if module is None:
            raise ValueError(
                f"{directory} has an adapter for module {path!r}, which {type(model).__name__} does not have"
            )
        weight = getattr(module, "weight", None)
        if not isinstance(weight, Tensor) or weight.dim() != 2:
            raise ValueError(
                f"{directory} has an adapter for module {path!r}, but in {type(model).__name__} it is a "
                f"{type(module).__name__} without a 2-D weight (expected nn.Linear or Conv1D)"
            )
        # nn.Linear stores (out, in), transformers' Conv1D stores (in, out).
        kind = type(module).__name__
        out_in = tuple(weight.shape) if kind != "Conv1D" else tuple(weight.shape)[::-1]
        expected = (info["out_features"], info["in_features"])
        if out_in != expected:
            raise ValueError(
                f"module {path!r}: the adapter in {directory} was trained for (out, in) = {expected}, "
                f"but the {kind} in {type(model).__name__} has (out, in) = {out_in}"
            )


def load_adapters(model: nn.Module, directory: str | Path) -> list[str]:
    """Load adapters written by :func:`save_adapters` into ``model``.

    If ``model`` has no Deep LoRA adapters yet (a fresh base model), they are first injected with
    the stored config (:func:`~compressible.deeplora.model.add_adapters`, which also freezes the
    base); otherwise the existing adapters are filled. Either way the adapted module paths, the
    factor shapes and the scalings must match the stored ones exactly, and no adapter may be merged.

    Returns:
        The paths of the modules whose factors were loaded.

    Raises:
        FileNotFoundError: ``directory`` is not an adapter folder.
        ValueError: naming the first module whose path, shape or scaling does not match.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = _read_meta(directory)
    modules: dict[str, Any] = meta["modules"]
    config = _config_from_dict(meta["config"], directory / ADAPTER_CONFIG_NAME)

    layers = adapter_layers(model)
    if not layers:
        _check_base_modules(model, modules, directory)
        add_adapters(model, config)
        layers = adapter_layers(model)

    stored, present = set(modules), set(layers)
    if stored != present:
        only_stored, only_model = sorted(stored - present), sorted(present - stored)
        raise ValueError(
            f"adapted modules differ between {directory} and the model: "
            f"only in the folder {only_stored}, only in the model {only_model}"
        )
    merged = sorted(path for path, layer in layers.items() if layer.merged)
    if merged:
        raise ValueError(f"cannot load into merged adapters {merged}; call unmerge_adapters(model) first")

    tensors = load_file(str(directory / ADAPTER_WEIGHTS_NAME))
    for path, info in modules.items():
        layer = layers[path]
        shapes = [_shape(factor) for factor in layer.factors]
        if shapes != info["factor_shapes"]:
            raise ValueError(
                f"module {path!r}: the adapter in {directory} has factor shapes {info['factor_shapes']} "
                f"but the model's adapter has {shapes} (different init, depth or rank?)"
            )
        if not math.isclose(float(layer.scaling), info["scaling"], rel_tol=1e-12, abs_tol=0.0):
            raise ValueError(
                f"module {path!r}: the adapter in {directory} has scaling {info['scaling']} "
                f"but the model's adapter has {float(layer.scaling)} (different alpha?)"
            )
        for index in range(len(shapes)):
            key = f"{path}.factors.{index}"
            if key not in tensors:
                raise ValueError(f"{directory / ADAPTER_WEIGHTS_NAME} has no tensor {key!r}")
            if _shape(tensors[key]) != shapes[index]:
                raise ValueError(
                    f"module {path!r}: tensor {key!r} in {directory / ADAPTER_WEIGHTS_NAME} has shape "
                    f"{_shape(tensors[key])}, the model expects {shapes[index]}"
                )
    if _config_to_dict(next(iter(layers.values())).config) != meta["config"]:
        logger.warning(
            "the model's adapters were added with %s, the folder %s stores %s; loading the factors anyway "
            "since all shapes and scalings match",
            next(iter(layers.values())).config,
            directory,
            config,
        )
    with torch.no_grad():
        for path in modules:
            for index, factor in enumerate(layers[path].factors):
                factor.copy_(tensors[f"{path}.factors.{index}"])
            if hasattr(layers[path], "initialized"):
                # a compressed adapter counts as initialised once its outer factors are set
                layers[path].initialized = bool(modules[path].get("initialized", True))
    logger.info("loaded %d Deep LoRA adapters from %s", len(modules), directory)
    return list(modules)
