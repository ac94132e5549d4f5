"""Deep LoRA: compressed deep low-rank adapters for PyTorch / Hugging Face models (paper Sec. 4).

Rooms, as in PEFT's LoRA tuner:

- :mod:`.config` -- :class:`DeepLoRAConfig`, the frozen, validated configuration (the one home of
  every default: depth, rank, ``epsilon``, ``gamma``, ...);
- :mod:`.layer` -- :class:`DeepLoRALinear`, a frozen linear map plus a product of factors;
- :mod:`.model` -- :func:`add_adapters` (injection by module name), :func:`merge_adapters` /
  :func:`unmerge_adapters` and :func:`param_groups`;
- :mod:`.compress` -- the compressed initialisation from one batch's gradient;
- :mod:`.analysis` -- singular values, numerical ranks, subspace alignment of the learned updates;
- :mod:`.io` -- :func:`save_adapters` / :func:`load_adapters`;
- :mod:`.peft` -- :func:`export_peft`, a standard PEFT LoRA adapter.

Typical use::

    config = DeepLoRAConfig(init="compressed", depth=3, rank=8, targets="attention-mlp")
    report = add_adapters(model, config)
    compress_from_batch(model, first_batch)
    optimizer = torch.optim.Adam(param_groups(model, lr=1e-2), betas=(0.9, 0.999), eps=1e-6)
"""

from .analysis import (
    basis_alignment,
    delta_weights,
    numerical_rank,
    singular_values,
    subspace_alignment,
    subspace_residual,
)
from .compress import compress_from_batch, compressed_outer_factors, haar_actions
from .config import DeepLoRAConfig
from .io import load_adapters, save_adapters
from .layer import DeepLoRALinear
from .model import (
    AdapterReport,
    adapter_layers,
    add_adapters,
    merge_adapters,
    param_groups,
    resolve_targets,
    unmerge_adapters,
)
from .peft import PeftExport, export_peft

__all__ = [
    "DeepLoRAConfig",
    "DeepLoRALinear",
    "add_adapters",
    "AdapterReport",
    "compress_from_batch",
    "param_groups",
    "adapter_layers",
    "delta_weights",
    "singular_values",
    "numerical_rank",
    "subspace_alignment",
    "basis_alignment",
    "subspace_residual",
    "compressed_outer_factors",
    "haar_actions",
    "resolve_targets",
    "save_adapters",
    "load_adapters",
    "merge_adapters",
    "unmerge_adapters",
    "export_peft",
    "PeftExport",
]
