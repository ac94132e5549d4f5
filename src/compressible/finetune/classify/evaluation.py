"""Evaluating a GLUE classifier and probing what its head sees (dropout off, no gradients).

- :func:`evaluate`: the task's metrics and mean loss on a set of examples;
- :func:`head_input_probe`: the spread of the head's input over a batch and the share of saturated
  ``tanh`` pooler units (:data:`PROBES` per run, :data:`SATURATED`);
- the training loss of a classifier's logits and the singular-value snapshots of every ``Delta W``.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ...deeplora import adapter_layers, delta_weights
from ..backbones import HEAD_PREFIXES
from ..batches import eval_batches
from ..glue import Examples, is_regression
from ..metrics import glue_metrics
from ..precision import autocast_region

__all__ = ["evaluate", "head_input_probe", "PROBES", "SATURATED"]

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


def delta_snapshot(model: nn.Module, k_values: int, k_vectors: int) -> dict[str, tuple[Tensor, Tensor]]:
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


def classifier_loss(logits: Tensor, labels: Tensor, task: str) -> Tensor:
    """The loss transformers' sequence classifiers compute: MSE on the single output (STS-B), else cross-entropy."""
    if is_regression(task):
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))
