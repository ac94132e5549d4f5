"""Few-shot data-to-text generation on E2E NLG with LoRA and Deep LoRA adapters (paper App. C).

Each seed draws 16 training pairs (MR, one human reference; :mod:`compressible.finetune.e2e`), the adapters are
trained on them (:func:`train_adapters`), and the model generates a sentence for every MR of a
fixed evaluation set (:func:`generate`); the sentences are scored against *all* human references
of their MR (:func:`compressible.finetune.metrics.generation_metrics`). :func:`run_generation` is
one such run.

The backbones (``t5-base``, the paper's; ``smollm2``, the ``ci`` model; the tiny random
``tiny-llama`` / ``tiny-t5``) are described and loaded by :mod:`compressible.finetune.backbones`.

A run is ``(GenerationConfig, seed)``; the chapter's plan, the runs through the result store and
the tables are in :mod:`compressible.experiments.generation`; :class:`compressible.finetune.runner.Runner`
computes runs with cached backbones and data.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..deeplora import DeepLoRAConfig, add_adapters, compress_from_batch
from ..deeplora.config import INITS
from .backbones import BACKBONES, Backbone
from .e2e import batch_schedule, few_shot_indices, generation_prompts, pad_sequences, training_batch
from ..store import KEY_OPTIONAL
from .precision import AUTOCAST, autocast_dtype, autocast_region, forked_rng as _forked_rng
from .glue import derived_seed
from .metrics import generation_metrics
from .optim import ADAPTER_LR, adapter_optimizer

__all__ = ["AdapterSpec", "GenerationConfig", "train_adapters", "generate", "run_generation", "replay_generation"]

GENERATOR_KINDS = ("seq2seq", "causal")


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdapterSpec:
    """One adapter method: the :class:`~compressible.deeplora.config.DeepLoRAConfig` fields and its rates."""

    label: str
    """Name shown in tables and figures, e.g. ``"vanilla LoRA"``."""

    init: str
    """``DeepLoRAConfig.init``: ``"lora"``, ``"compressed"``, ``"random"`` or ``"full"``."""

    depth: int
    """Number of factors of the (uncompressed) product -- 2 for LoRA, 3 for Deep LoRA."""

    rank: int = 8
    """Adapter width ``r``."""

    lr: float = ADAPTER_LR
    """Adam learning rate of the inner factors (all factors of a LoRA adapter)."""

    gamma: float = DeepLoRAConfig.gamma
    """Outer factors (``left``, ``right``) of compressed adapters train at ``gamma * lr``."""

    epsilon: float = DeepLoRAConfig.epsilon
    """Scale of the ``eps * I`` inner factors of compressed adapters."""

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if not self.label:
            raise ValueError("label must be a non-empty string")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be positive and finite, got {self.lr!r}")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"gamma must be >= 0 and finite, got {self.gamma!r}")

    def deeplora_config(self, targets: Any, seed: int) -> DeepLoRAConfig:
        """The :class:`~compressible.deeplora.config.DeepLoRAConfig` of this method for ``seed``."""
        return DeepLoRAConfig(
            init=self.init,
            depth=self.depth,
            rank=self.rank,
            targets=targets,
            epsilon=self.epsilon,
            gamma=self.gamma,
            seed=seed,
        )


@dataclass(frozen=True)
class GenerationConfig:
    """One few-shot generation experiment on E2E NLG; a run is ``(config, seed)``."""

    backbone: str
    """A generator of :data:`compressible.finetune.backbones.BACKBONES` (kind ``"seq2seq"`` or ``"causal"``)."""

    adapter: AdapterSpec
    """The adapter method and its learning rates."""

    targets: str = "attention-mlp"
    """Adapted modules (``DeepLoRAConfig.targets``): ``"attention-mlp"`` is every dense weight of
    every block (T5: q, k, v, o, wi, wo; LLaMA: q, k, v, o, gate, up, down)."""

    n_train: int = 16
    """Training pairs per seed, drawn with replacement from the length-filtered training split."""

    max_source_tokens: int = 64
    """Length filter on the MR (tokens of the backbone's tokenizer), as in the authors' code."""

    max_target_tokens: int = 64
    """Length filter on the reference."""

    steps: int = 400
    """Adam steps."""

    batch_size: int = 16
    """Training pairs per step; equal to ``n_train`` means the full few-shot set every step."""

    eval_split: str = "validation"
    """Split whose unique MRs are evaluated."""

    n_eval: int | None = None
    """How many unique MRs are evaluated -- ``None`` = all of them, else a fixed random subset (same for every
    seed and method, drawn with seed 0)."""

    num_beams: int = 4
    """Beam width of decoding (1 = greedy)."""

    max_new_tokens: int = 64
    """Longest generated sentence, in tokens."""

    eval_batch_size: int = 32
    """MRs decoded at once."""

    autocast: str = field(default="off", metadata={KEY_OPTIONAL: True})
    """bf16 autocast of the training steps' forward (and so backward), one of
    :data:`~compressible.finetune.precision.AUTOCAST` (``"auto"``: where the device computes bf16 natively,
    :func:`~compressible.finetune.precision.autocast_dtype`); adapters, their gradients and Adam's state stay
    float32, and decoding runs in float32. ``"off"``: float32 throughout (the paper's)."""

    def __post_init__(self) -> None:
        if self.autocast not in AUTOCAST:
            raise ValueError(f"autocast must be one of {AUTOCAST}, got {self.autocast!r}")
        generators = tuple(name for name, spec in BACKBONES.items() if spec.kind in GENERATOR_KINDS)
        if self.backbone not in generators:
            raise ValueError(f"backbone must be one of {generators}, got {self.backbone!r}")
        if not isinstance(self.adapter, AdapterSpec):
            raise TypeError(f"adapter must be an AdapterSpec, got {type(self.adapter).__name__}")
        for name in ("n_train", "max_source_tokens", "max_target_tokens", "steps", "batch_size",
                     "num_beams", "max_new_tokens", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.batch_size > self.n_train:
            raise ValueError(f"batch_size {self.batch_size} exceeds n_train {self.n_train}; lower it to <= {self.n_train}")
        if self.eval_split not in ("validation", "test"):
            raise ValueError(f"eval_split must be 'validation' or 'test', got {self.eval_split!r}")
        if self.n_eval is not None and (not isinstance(self.n_eval, int) or self.n_eval < 1):
            raise ValueError(f"n_eval must be None (all MRs) or a positive int, got {self.n_eval!r}")

    @property
    def kind(self) -> str:
        """``"seq2seq"`` or ``"causal"``."""
        return BACKBONES[self.backbone].kind


# ------------------------------------------------------------------------------------------------
# training and decoding
# ------------------------------------------------------------------------------------------------


def train_adapters(
    model: nn.Module,
    batches: Sequence[Mapping[str, Tensor]],
    spec: AdapterSpec,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
    autocast: torch.dtype | None = None,
) -> list[float]:
    """Adam (:func:`compressible.finetune.optim.adapter_optimizer`, constant rate) on the adapters, one
    step per batch.

    Inner factors train at ``spec.lr``, the outer factors of compressed adapters at ``gamma * spec.lr``
    with the adapters' ``gamma`` (``spec.gamma`` when they were added with :meth:`AdapterSpec.deeplora_config`). Dropout is on (``model.train()``).
    With ``autocast`` (e.g. ``torch.bfloat16``) each forward runs under autocast in that dtype. Returns the loss of every step.
    """
    optimizer = adapter_optimizer(model, spec.lr)
    model.train()
    losses = []
    device = torch.device(device)
    for batch in tqdm(batches, disable=not progress, desc=f"train {spec.label}", leave=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast_region(device, autocast):
            loss = model(**batch).loss.float()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{spec.label}: loss became {loss.item()} at step {len(losses)}; lower lr={spec.lr}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@torch.no_grad()
def generate(
    model: nn.Module,
    backbone: Backbone,
    mrs: Sequence[str],
    *,
    num_beams: int,
    max_new_tokens: int,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> list[str]:
    """Decode one sentence per MR (beam search with ``num_beams``, greedy for 1), special tokens removed."""
    model.eval()
    prompts = generation_prompts(backbone, mrs)
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        left = backbone.kind == "causal"  # decoders continue the prompt, so pad on the left
        input_ids = pad_sequences(chunk, backbone.pad_token_id, left=left).to(device)
        mask = pad_sequences([[1] * len(p) for p in chunk], 0, left=left).to(device)
        generated = model.generate(
            input_ids=input_ids, attention_mask=mask, num_beams=num_beams, do_sample=False,
            max_new_tokens=max_new_tokens, eos_token_id=backbone.eos_token_id, pad_token_id=backbone.pad_token_id,
            early_stopping=num_beams > 1,
        )
        if left:
            generated = generated[:, input_ids.shape[1]:]
        outputs.extend(
            text.strip() for text in backbone.tokenizer.batch_decode(generated, skip_special_tokens=True)
        )
    return outputs


# ------------------------------------------------------------------------------------------------
# one run
# ------------------------------------------------------------------------------------------------


def _prepare(config: "GenerationConfig", seed: int, backbone: Backbone, data: Any, device: str | torch.device):
    """The model with its adapters (compressed from the first batch), every training batch, the few-shot
    rows and the adapter report of ``(config, seed)``."""
    spec = config.adapter
    indices = few_shot_indices(data.train_rows, backbone.tokenizer, config.n_train, seed,
                               config.max_source_tokens, config.max_target_tokens)
    pairs = [(data.train_rows[int(i)]["meaning_representation"], data.train_rows[int(i)]["human_reference"]) for i in indices]
    schedule = batch_schedule(config.n_train, config.batch_size, config.steps, seed)
    batches = [training_batch(backbone, [pairs[j] for j in idx]) for idx in schedule]
    model = copy.deepcopy(backbone.model).to(device)
    report = add_adapters(model, spec.deeplora_config(config.targets, seed))
    if spec.init == "compressed":
        compress_from_batch(model, batches[0])  # the first training batch, dropout off
    return model, batches, indices, report


def replay_generation(config: "GenerationConfig", seed: int, backbone: Backbone, data: Any, steps: int, *,
                      device: str | torch.device = "cpu", autocast: str | None = None) -> dict:
    """The first ``steps`` training steps of ``(config, seed)`` exactly as :func:`run_generation` takes them
    (``autocast`` overrides the config's), for checking a stored run: ``train_loss`` and ``train_indices``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= config.steps:
        raise ValueError(f"steps must be an int in [1, {config.steps}] (the run's steps), got {steps!r}")
    model, batches, indices, _ = _prepare(config, seed, backbone, data, device)
    with _forked_rng(torch.device(device), derived_seed("dropout", "e2e", seed)):
        losses = train_adapters(model, batches[:steps], config.adapter, device=device,
                                autocast=autocast_dtype(autocast or config.autocast, device))
    return {"train_loss": losses, "train_indices": [int(i) for i in indices]}


def run_generation(
    config: GenerationConfig,
    seed: int,
    backbone: Backbone,
    data: Any,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict:
    """Train adapters for ``(config, seed)`` on a copy of ``backbone.model`` and score the generations.

    ``data`` holds ``train_rows`` (the E2E training split the few-shot pairs are drawn from) and
    ``eval_set`` (an :class:`~compressible.finetune.e2e.EvalSet`).

    Returns a JSON-ready dict: ``metrics``, ``predictions`` (one per evaluated MR), ``mrs``,
    ``train_indices`` (the few-shot rows), ``train_loss`` (per step), ``trainable_parameters``,
    ``adapted_modules``, and ``seconds`` (``init``, ``train``, ``eval``).
    """
    spec = config.adapter
    start = time.perf_counter()
    model, batches, indices, report = _prepare(config, seed, backbone, data, device)
    init_seconds = time.perf_counter() - start

    start = time.perf_counter()
    # dropout draws from its own stream per seed (T5's dropout; SmolLM2 and LLaMA have none), so that a run
    # gives the same numbers whichever process computes it and whatever ran there before
    with _forked_rng(torch.device(device), derived_seed("dropout", "e2e", seed)):
        losses = train_adapters(model, batches, spec, device=device, progress=progress,
                                autocast=autocast_dtype(config.autocast, device))
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    predictions = generate(
        model, backbone, data.eval_set.mrs, num_beams=config.num_beams, max_new_tokens=config.max_new_tokens,
        batch_size=config.eval_batch_size, device=device,
    )
    metrics = generation_metrics(predictions, data.eval_set.references)
    eval_seconds = time.perf_counter() - start
    del model
    return {
        "metrics": metrics,
        "predictions": predictions,
        "mrs": list(data.eval_set.mrs),
        "train_indices": [int(i) for i in indices],
        "train_loss": losses,
        "trainable_parameters": int(report.trainable_params),
        "adapted_modules": len(report),
        "backbone_source": backbone.source,
        "seconds": {"init": init_seconds, "train": train_seconds, "eval": eval_seconds},
    }
