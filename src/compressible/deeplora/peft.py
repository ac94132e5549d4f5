"""Export of Deep LoRA adapters as a standard PEFT LoRA adapter.

:func:`export_peft` writes a folder that anyone can use with
``peft.PeftModel.from_pretrained(base, folder)`` without this package. Each
``ΔW = scaling · F_K ⋯ F_1`` of shape ``(m, n)`` is written as ``lora_B @ lora_A`` with PEFT's
scaling ``lora_alpha / r = 1``: exactly (``lora_A = F_1``, ``lora_B = scaling · F_K ⋯ F_2``) when the
first factor is narrow, or through the SVD of ``ΔW`` when the adapter is full width or when a
truncation to a lower rank is asked for.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence

import torch
from torch import Tensor, nn

from .analysis import numerical_rank
from .layer import DeepLoRALinear
from .model import require_adapters

__all__ = ["PeftExport", "export_peft"]

logger = logging.getLogger(__name__)

#: PEFT's weights file name for a LoRA adapter (``peft.utils.constants``; ``LoraConfig.save_pretrained``
#: writes ``adapter_config.json``), and the prefix of its keys.
_PEFT_WEIGHTS_NAME = "adapter_model.safetensors"
_PEFT_PREFIX = "base_model.model."

#: Heads that PEFT itself wraps in ``modules_to_save`` for a task type (``peft.peft_model``): an
#: exported adapter carries their weights, since Deep LoRA leaves them at their random init and a
#: fresh base model would draw another one.
_PEFT_TASK_HEADS = {
    "SEQ_CLS": ("classifier", "score"),
    "TOKEN_CLS": ("classifier", "score"),
    "QUESTION_ANS": ("qa_outputs",),
}


def _chain(factors: Sequence[Tensor], dtype: torch.dtype = torch.float64) -> Tensor:
    """``F_K ⋯ F_1`` of factors listed first to last, computed in ``dtype``."""
    product = factors[0].detach().to(dtype)
    for factor in factors[1:]:
        product = factor.detach().to(dtype) @ product
    return product



@dataclass(frozen=True)
class PeftExport:
    """What :func:`export_peft` wrote.

    Attributes:
        directory: the folder holding ``adapter_config.json`` and ``adapter_model.safetensors``.
        ranks: exported LoRA rank per adapted module path.
        numerical_ranks: the numerical rank of each ``ΔW`` (the paper's Fig. 7 rule for deep adapters,
            :func:`~compressible.deeplora.analysis.numerical_rank` with ``rule="deep"``, uncapped), or ``None``
            for layers exported exactly from their factors without an SVD.
        relative_errors: ``‖ΔW − lora_B lora_A‖_F / ‖ΔW‖_F`` per module (0 when ``ΔW = 0``),
            measured in float64 on the written float32 tensors.
        task_type: PEFT task type written to the config (``None`` if unknown).
        modules_to_save: full paths of the head modules whose weights were written too.
    """

    directory: Path
    ranks: dict[str, int]
    numerical_ranks: dict[str, int | None]
    relative_errors: dict[str, float]
    task_type: str | None
    modules_to_save: list[str]


def _infer_task_type(model: nn.Module) -> str | None:
    """PEFT's task type for a transformers model class, from transformers' auto-class tables."""
    try:
        from transformers.models.auto import modeling_auto as auto
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    tables = [
        ("SEQ_CLS", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
        ("TOKEN_CLS", "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"),
        ("QUESTION_ANS", "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES"),
        ("SEQ_2_SEQ_LM", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
        ("CAUSAL_LM", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
        ("FEATURE_EXTRACTION", "MODEL_MAPPING_NAMES"),
    ]
    name = type(model).__name__
    for task_type, table in tables:
        names: set[str] = set()
        for value in getattr(auto, table, {}).values():
            names.update([value] if isinstance(value, str) else value)
        if name in names:
            return task_type
    return None


def _head_paths(model: nn.Module, names: Iterable[str]) -> list[str]:
    """Full paths of the modules PEFT's ``modules_to_save`` entry ``name`` would wrap."""
    paths = []
    for path, _ in model.named_modules():
        if path and any(path == name or path.endswith(f".{name}") for name in names):
            if not any(path.startswith(f"{kept}.") for kept in paths):
                paths.append(path)
    return paths


def _pattern(path: str) -> str:
    """A ``rank_pattern`` key that matches the module ``path`` and nothing else.

    PEFT matches a key with ``re.match(rf"(.*\\.)?({key})$", module_path)`` and takes the first
    key that matches. Escaping makes dots literal; ``^`` pins the key to the start of the path, so
    ``layer.1.`` cannot match ``layer.11.`` nor a module path that merely ends with ``path``.
    """
    return "^" + re.escape(path)


def _export_layer(
    layer: DeepLoRALinear, truncate_rank: int | Literal["numerical"] | None
) -> tuple[Tensor, Tensor, int | None]:
    """``(lora_A (r, n), lora_B (m, r), numerical rank or None)`` with ``lora_B lora_A ≈ ΔW``."""
    factors = list(layer.factors)
    m, n = int(layer.out_features), int(layer.in_features)
    scaling = float(layer.scaling)
    width = int(factors[0].shape[0])
    if truncate_rank is None and len(factors) >= 2 and width <= min(m, n):
        # Exact: ΔW = (scaling · F_K ⋯ F_2) · F_1.
        lora_a = factors[0].detach().to(torch.float64)
        lora_b = scaling * _chain(factors[1:])
        return lora_a.float(), lora_b.float(), None
    delta = scaling * _chain(factors)  # (m, n), float64
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    # The rank rule of the paper's Fig. 7 for deep adapters, on ΔW as the layer computes it.
    with torch.no_grad():
        rank = int(numerical_rank(layer.delta_weight(), rule="deep", max_rank=min(m, n)))
    if truncate_rank is None:
        keep = min(m, n)
    elif truncate_rank == "numerical":
        keep = rank
    else:
        keep = min(int(truncate_rank), min(m, n))
    keep = max(keep, 1)  # PEFT needs r >= 1; rank 1 is then the best rank-1 approximation
    root = s[:keep].sqrt()
    lora_b = u[:, :keep] * root  # (m, keep)
    lora_a = root[:, None] * vh[:keep]  # (keep, n)
    return lora_a.float(), lora_b.float(), rank


def export_peft(
    model: nn.Module,
    directory: str | Path,
    truncate_rank: int | Literal["numerical"] | None = None,
    base_model_name_or_path: str | None = None,
    *,
    task_type: str | None = "auto",
    modules_to_save: Sequence[str] | None | Literal["auto"] = "auto",
) -> PeftExport:
    """Write the adapters of ``model`` as a standard PEFT LoRA adapter in ``directory``.

    ``peft.PeftModel.from_pretrained(fresh_base_model, directory)`` then computes what ``model``
    computes (up to float32 rounding, or up to the truncation). Every adapted module gets
    ``lora_B @ lora_A`` equal to its ``ΔW = scaling · F_K ⋯ F_1`` (scaling included, so PEFT's own
    scaling ``lora_alpha / r`` is set to 1 with ``lora_alpha = r``):

    - ``truncate_rank=None``: exact. ``lora_A = F_1``, ``lora_B = scaling · F_K ⋯ F_2`` when the first
      factor has width ``≤ min(m, n)`` (compressed, LoRA and random narrow adapters); otherwise
      (full width) the SVD of ``ΔW`` at rank ``min(m, n)``.
    - ``truncate_rank="numerical"``: SVD truncated to the numerical rank of ``ΔW`` (0 if
      ``‖ΔW‖₂ ≤ 1e-3``, else the matrix rank with numpy's default tolerance; see
      :func:`~compressible.deeplora.analysis.numerical_rank`), at least 1 since PEFT needs ``r ≥ 1``.
    - ``truncate_rank=k``: SVD truncated to ``min(k, m, n)``.

    SVD factors are balanced: ``lora_B = U_r √S_r``, ``lora_A = √S_r V_rᵀ``. Ranks that differ from the
    most common one go to ``rank_pattern`` and ``alpha_pattern`` under keys that match exactly one
    full module path (``^`` followed by the escaped path).

    Args:
        model: a model with Deep LoRA adapters (merged or not).
        directory: output folder, created if needed.
        truncate_rank: ``None``, ``"numerical"`` or a positive int, as above.
        base_model_name_or_path: written to the config; default ``model.name_or_path`` if set.
        task_type: PEFT task type (``"SEQ_CLS"``, ``"CAUSAL_LM"``, ...); ``"auto"`` infers it from the
            transformers class of ``model``, ``None`` writes none.
        modules_to_save: extra modules stored whole, as PEFT's ``modules_to_save``. ``"auto"`` stores
            the heads PEFT wraps for the task type (``classifier``/``score`` for ``SEQ_CLS``), because
            Deep LoRA leaves them at their random init, which a fresh base model would not reproduce.

    Returns:
        A :class:`PeftExport` with the ranks and truncation errors per module.
    """
    from peft import LoraConfig
    from safetensors.torch import save_file

    if truncate_rank is not None and truncate_rank != "numerical":
        if isinstance(truncate_rank, bool) or not isinstance(truncate_rank, int) or truncate_rank < 1:
            raise ValueError(
                f"truncate_rank must be None, 'numerical' or a positive int, got {truncate_rank!r}"
            )
    layers = require_adapters(model, "export adapters to PEFT")
    if task_type == "auto":
        task_type = _infer_task_type(model)
    if modules_to_save == "auto":
        head_names = list(_PEFT_TASK_HEADS.get(task_type or "", ()))
    else:
        head_names = list(modules_to_save or [])
    head_paths = _head_paths(model, head_names)
    if modules_to_save != "auto":
        found = {name for name in head_names if any(p == name or p.endswith(f".{name}") for p in head_paths)}
        missing = sorted(set(head_names) - found)
        if missing:
            raise ValueError(f"modules_to_save {missing} name no module of {type(model).__name__}")
    for path in layers:
        for head in head_paths:
            if path == head or path.startswith(f"{head}."):
                raise ValueError(
                    f"module {path!r} is adapted and also inside the head {head!r} in modules_to_save; "
                    f"PEFT cannot do both: pass modules_to_save without {head!r}"
                )

    tensors: dict[str, Tensor] = {}
    ranks: dict[str, int] = {}
    numerical: dict[str, int | None] = {}
    errors: dict[str, float] = {}
    for path, layer in layers.items():
        lora_a, lora_b, rank = _export_layer(layer, truncate_rank)
        tensors[f"{_PEFT_PREFIX}{path}.lora_A.weight"] = lora_a.contiguous()
        tensors[f"{_PEFT_PREFIX}{path}.lora_B.weight"] = lora_b.contiguous()
        ranks[path] = int(lora_a.shape[0])
        numerical[path] = rank
        delta = float(layer.scaling) * _chain(list(layer.factors))
        norm = float(torch.linalg.matrix_norm(delta))
        residual = float(torch.linalg.matrix_norm(delta - lora_b.double() @ lora_a.double()))
        errors[path] = residual / norm if norm > 0 else residual

    named = dict(model.named_modules())
    for head in head_paths:
        for name, tensor in named[head].state_dict().items():
            tensors[f"{_PEFT_PREFIX}{head}.{name}"] = tensor.detach().to("cpu").contiguous()

    common = Counter(ranks.values()).most_common(1)[0][0]
    pattern = {_pattern(path): rank for path, rank in ranks.items() if rank != common}
    if base_model_name_or_path is None:
        base_model_name_or_path = getattr(model, "name_or_path", None) or None
    all_conv1d = all(layer.base_kind == "Conv1D" for layer in layers.values())
    config = LoraConfig(
        r=common,
        lora_alpha=common,
        rank_pattern=dict(pattern),
        alpha_pattern=dict(pattern),
        target_modules=list(layers),
        lora_dropout=0.0,
        bias="none",
        fan_in_fan_out=all_conv1d,
        use_rslora=False,
        modules_to_save=head_names or None,
        task_type=task_type,
        base_model_name_or_path=base_model_name_or_path,
        inference_mode=True,
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(directory))
    save_file(tensors, str(directory / _PEFT_WEIGHTS_NAME), metadata={"format": "pt"})
    logger.info(
        "exported %d Deep LoRA adapters as PEFT LoRA to %s (ranks %s)",
        len(ranks),
        directory,
        dict(Counter(ranks.values())),
    )
    return PeftExport(
        directory=directory,
        ranks=ranks,
        numerical_ranks=numerical,
        relative_errors=errors,
        task_type=task_type,
        modules_to_save=head_paths,
    )
