"""PEFT's LoRA family, built with PEFT itself, to set beside Deep LoRA (issue #26).

A reader's question about Deep LoRA is whether it beats the LoRA they would actually use. That LoRA is
PEFT's: :class:`PeftAdapter` names one variant of ``peft.LoraConfig`` and :func:`attach` puts it on a
model with ``peft.inject_adapter_in_model``, so that what runs is PEFT's own code, at the version the
project pins:

- ``"lora"``: PEFT's default LoRA (Kaiming-uniform ``A``, ``B = 0``, scaling ``alpha / r``);
- ``"rslora"``: rank-stabilised LoRA (scaling ``alpha / sqrt(r)``; Kalajdzievski, 2023);
- ``"dora"``: weight-decomposed LoRA (a trained magnitude per output row; Liu et al., 2024);
- ``"pissa"``: the adapter starts at the weight's top ``r`` singular triplets and the frozen weight keeps
  the rest (Meng et al., 2024);
- ``"loraga"``: the adapter starts from the SVD of the loss gradient on a first batch, the frozen weight
  compensated so that the model starts unchanged (Wang et al., 2024) -- the same data as compressed Deep
  LoRA's initialisation.

The adapted weights are chosen with Deep LoRA's own resolution
(:func:`compressible.deeplora.model.resolve_targets`), so that ``"all-dense"`` means the same matrices for
every method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..deeplora.config import Targets
from ..deeplora.model import resolve_targets

__all__ = ["VARIANTS", "PeftAdapter", "lora_config", "attach"]

VARIANTS = ("lora", "rslora", "dora", "pissa", "loraga")
"""The PEFT variants :class:`PeftAdapter` can build."""


@dataclass(frozen=True)
class PeftAdapter:
    """One of PEFT's LoRA variants on the weights ``targets`` selects, at rank ``rank``."""

    variant: str = "lora"
    """One of :data:`VARIANTS`."""
    rank: int = 8
    alpha: float = 8.0
    """PEFT's ``lora_alpha`` (its default, 8): the update is scaled by ``alpha / r`` (``alpha / sqrt(r)``
    for ``"rslora"``)."""
    targets: Targets = "all-dense"
    """As :attr:`compressible.deeplora.config.DeepLoRAConfig.targets`."""

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"PeftAdapter.variant must be one of {VARIANTS}, got {self.variant!r}")
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"PeftAdapter.rank must be an int >= 1, got {self.rank!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha > 0:
            raise ValueError(f"PeftAdapter.alpha must be a number > 0, got {self.alpha!r}")

    @property
    def init(self) -> str:
        """The method's name beside Deep LoRA's ``init`` values (``"peft-dora"``, ...)."""
        return f"peft-{self.variant}"

    @property
    def needs_gradient(self) -> bool:
        """Whether :func:`attach` needs a ``gradient_step`` (LoRA-GA starts from the loss gradient)."""
        return self.variant == "loraga"


def lora_config(adapter: PeftAdapter, target_names: list[str]):
    """The ``peft.LoraConfig`` of ``adapter`` on the modules ``target_names`` (full dotted names); no dropout
    (the backbone's own dropout stays on while training, as for Deep LoRA)."""
    from peft import LoraConfig
    from peft.tuners.lora.config import LoraGAConfig

    kwargs: dict = {}
    if adapter.variant == "rslora":
        kwargs["use_rslora"] = True
    elif adapter.variant == "dora":
        kwargs["use_dora"] = True
    elif adapter.variant == "pissa":
        kwargs["init_lora_weights"] = "pissa"
    elif adapter.variant == "loraga":
        kwargs.update(init_lora_weights="lora_ga", lora_ga_config=LoraGAConfig())
    return LoraConfig(r=adapter.rank, lora_alpha=adapter.alpha, lora_dropout=0.0, bias="none",
                      target_modules=list(target_names), **kwargs)


def attach(model: nn.Module, adapter: PeftAdapter, gradient_step: Callable[[nn.Module], None] | None = None) -> list[str]:
    """Put ``adapter`` on ``model`` in place (``peft.inject_adapter_in_model``: the model keeps its class and its
    modules their names) and freeze every other weight, the head included; returns the adapted modules' names.

    ``gradient_step(model)`` runs a forward and backward pass on the first batch; LoRA-GA needs it
    (:attr:`PeftAdapter.needs_gradient`), the others ignore it.

    Raises:
        ValueError: for LoRA-GA without ``gradient_step``, or ``targets`` that select nothing.
    """
    from peft import inject_adapter_in_model

    names = resolve_targets(model, adapter.targets)
    if not names:
        raise ValueError(f"targets {adapter.targets!r} select no module of {type(model).__name__}")
    config = lora_config(adapter, names)
    if adapter.needs_gradient:
        if gradient_step is None:
            raise ValueError("PeftAdapter(variant='loraga') starts from the loss gradient: give gradient_step")
        from peft.tuners.lora.loraga import preprocess_loraga

        preprocess_loraga(model, config, lambda: gradient_step(model))
    inject_adapter_in_model(config, model)
    for name, param in model.named_parameters():
        param.requires_grad_("lora_" in name)
    return names
