"""Configuration of Deep LoRA adapters (paper Sec. 4).

One frozen dataclass, :class:`DeepLoRAConfig`, says which weights get an adapter, of which kind
(``init``), how deep, how wide and how it is initialised. It is validated when it is created, so a
bad value fails before any model is touched.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence, Union

__all__ = ["DeepLoRAConfig", "INITS", "TARGET_PRESETS", "RULE_PRESETS", "HEAD_NAMES", "SVD_METHODS"]

INITS = ("compressed", "lora", "random", "full")
"""The adapter kinds.

- ``"compressed"``: the paper's method. Factors ``[right^T, W~_1, ..., W~_L, left]``; the inner
  ``r x r`` factors start at ``eps * I`` and ``left``/``right`` come from the gradient at
  initialisation (:func:`compressible.deeplora.compress.compress_from_batch`).
- ``"lora"``: vanilla LoRA as the official code runs it: ``B A`` with ``A ~ N(0, 1)``, ``B = 0``.
- ``"random"``: a narrow depth-``L`` factorisation of width ``r`` with scaled Haar-orthogonal
  factors (App. D.2 "Random", and what the camera-ready scripts run).
- ``"full"``: the uncompressed full-width depth-``L`` factorisation (width ``max(m, n)``) with
  scaled Haar-orthogonal factors (what the logged Table 1 runs used).
"""

SVD_METHODS = ("auto", "full", "lowrank")

# Module-name suffixes (whole dotted components) per preset. A preset is the union over the model
# families it knows; it must match at least one module of the model it is applied to.
TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "query-value": (
        "query", "value",  # BERT / RoBERTa
        "c_attn",  # GPT-2 (fused q, k, v)
        "q_proj", "v_proj",  # LLaMA, OPT, Mistral
        "q", "v",  # T5
    ),
    "attention-mlp": (
        # BERT: q, k, v, attention output, intermediate, output = 6 per block (72 for bert-base)
        "query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense",
        # GPT-2 (transformers Conv1D): attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj
        "c_attn", "c_proj", "c_fc",
        # LLaMA
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
        # T5 (wi_0 / wi_1 for the gated v1.1 feed-forward)
        "q", "k", "v", "o", "wi", "wo", "wi_0", "wi_1",
    ),
}
"""Target presets, resolved by module name (see :func:`compressible.deeplora.model.resolve_targets`)."""

RULE_PRESETS = ("all-linear", "all-dense", "all-dense-embeddings")
"""Presets resolved by a rule rather than by names (see :func:`compressible.deeplora.model.resolve_targets`):

- ``"all-linear"``: every ``nn.Linear`` / ``Conv1D`` except the output head;
- ``"all-dense"``: the authors' "all dense" set -- every ``nn.Linear`` / ``Conv1D`` outside the head
  whose weight has min dimension >= the model's hidden size (bert-base: the paper's 72 attention and
  MLP weights plus the pooler, 73);
- ``"all-dense-embeddings"``: ``"all-dense"`` plus the input word embeddings (bert-base: 74, the
  authors' logged count). Selecting the embeddings works, adapting them does not yet
  (:func:`~compressible.deeplora.model.add_adapters` only wraps ``nn.Linear`` / ``Conv1D``).
"""

HEAD_NAMES = ("lm_head", "classifier", "score", "qa_outputs", "cls", "pred_layer")
"""Module names treated as the output head and left out of ``targets="all-linear"``."""

Targets = Union[str, Sequence[str]]


@dataclass(frozen=True)
class DeepLoRAConfig:
    """Which weights get a Deep LoRA adapter and how it starts.

    For an adapted weight ``W0`` of shape ``(m, n)`` (out x in) the layer computes
    ``y = W0 x + scaling * F_K ... F_1 x`` with factors ``F_k`` described by ``init``.
    """

    init: str = "compressed"
    """``"compressed"`` (the paper's method), ``"lora"``, ``"random"`` or ``"full"``; see :data:`INITS`."""

    depth: int | None = None
    """Number of factors of the (uncompressed) product; 2 is LoRA-like, 3 is Deep LoRA.
    ``None`` means 3, or 2 for ``init="lora"`` (which only exists at depth 2). A compressed
    adapter of depth ``L`` holds ``L`` inner ``r x r`` factors plus ``left`` and ``right``."""

    rank: int = 8
    """Width ``r`` of the adapter, at most ``min(m, n)`` of every adapted weight (ignored by
    ``"full"``, whose width is ``max(m, n)``). Must be even for ``"compressed"``: ``r/2`` gradient directions
    come from each side of the weight."""

    targets: Targets = "attention-mlp"
    """Which modules to adapt, given as a preset (``"query-value"``, ``"attention-mlp"``, ``"all-linear"``,
    ``"all-dense"``, ``"all-dense-embeddings"``; see :data:`TARGET_PRESETS` and :data:`RULE_PRESETS`),
    a list of module-name suffixes (``["query", "value"]``, matched on whole dotted components), or
    a regular expression ``"re:<pattern>"`` matched with ``re.fullmatch`` against full module names.
    Only ``nn.Linear`` and transformers ``Conv1D`` modules can be adapted."""

    epsilon: float = 1e-3
    """Scale ``eps`` of the orthogonal initialisation of the deep factors (paper: 1e-3)."""

    alpha: float | None = None
    """``None``: no ``alpha / r`` scaling (the authors' LoRA and Deep LoRA). A float gives the usual
    LoRA scaling ``alpha / r``."""

    gamma: float = 1e-2
    """Learning-rate ratio of the outer factors (``left``, ``right``) of compressed adapters (paper
    App. D.2: 1e-2); 0 freezes them. This field is the one home of ``gamma``:
    :func:`compressible.deeplora.model.param_groups` reads it from the adapters."""

    seed: int = 0
    """Seed of every random draw of the adapters (LoRA's ``A``, orthogonal factors, the ``Q`` of the
    compression)."""

    svd: str = "auto"
    """How the top singular vectors of the gradient are computed for ``"compressed"``: ``"full"``
    (``torch.linalg.svd``), ``"lowrank"`` (randomized, ``torch.svd_lowrank``) or ``"auto"``
    (``"lowrank"`` when ``min(m, n) >= lowrank_threshold``, see below)."""

    lowrank_threshold: int = 256
    """``min(m, n)`` from which ``svd="auto"`` switches to the randomized SVD. Only the top ``r/2``
    singular vectors are needed, so from a few hundred on the randomized SVD (4 power iterations,
    10 extra columns) is much cheaper than a full one: on the MiniLM encoder (``min(m, n) = 384``)
    it brings the compressed initialisation from 1.99x to 1.00x the cost of one forward+backward
    (``benchmarks/deep_lora.py``)."""

    svd_tol: float | str | None = "auto"
    """Accuracy of the randomized SVD (``svd="lowrank"``, or ``"auto"`` above the threshold).
    ``"auto"`` (the default): ``1e-6`` when the gradient is float64, and the fixed 4 power
    iterations of ``None`` in lower precision, where the gradient itself defines the subspace only
    to about 1e-4 (MiniLM, float32: even the exact SVD of the float32 gradient is that far from the
    float64 one). ``None``: a fixed 4 power iterations, which leaves the top ``r/2`` singular
    subspaces of MiniLM's gradients accurate to only 1e-4 (median over its 36 weights) to 1e-2 (worst). A float such as ``1e-6``:
    power iterations until Wedin's a-posteriori bound on the largest principal angle between the
    computed and the exact top ``r/2`` left and right singular subspaces is at most ``svd_tol``
    (in the gradient's dtype; float32 cannot go below about ``1e-7 s_1 / (s_h - s_{h+1})``). This
    holds whenever the gradient's spectrum has a gap after the ``r/2``-th singular value; without
    a gap the subspace is not defined (see
    :func:`compressible.deeplora.compress.top_singular_vectors`). ``svd="full"`` is exact and
    ignores it."""

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        depth = self.depth
        if depth is None:
            depth = 2 if self.init == "lora" else 3
            object.__setattr__(self, "depth", depth)
        if not isinstance(depth, int) or isinstance(depth, bool):
            raise TypeError(f"depth must be an int, got {depth!r}")
        if self.init == "lora" and depth != 2:
            raise ValueError(
                f"init='lora' is the depth-2 adapter B A, got depth={depth}; "
                "use init='random', 'full' or 'compressed' for deeper adapters"
            )
        if depth < 2:
            raise ValueError(f"depth must be >= 2 (2 = LoRA-like, 3 = Deep LoRA), got {depth}")
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1:
            raise ValueError(f"rank must be a positive int, got {self.rank!r}")
        if self.init == "compressed" and self.rank % 2:
            raise ValueError(
                f"init='compressed' needs an even rank (r/2 gradient directions from each side), "
                f"got rank={self.rank}; use {self.rank + 1} or {self.rank - 1 or 2}"
            )
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"epsilon must be positive and finite, got {self.epsilon!r}")
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"alpha must be None or a positive float, got {self.alpha!r}")
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"gamma must be >= 0 and finite, got {self.gamma!r}")
        if self.svd not in SVD_METHODS:
            raise ValueError(f"svd must be one of {SVD_METHODS}, got {self.svd!r}")
        if self.svd_tol is not None and self.svd_tol != "auto" and not (
            isinstance(self.svd_tol, (int, float)) and not isinstance(self.svd_tol, bool) and 0 < self.svd_tol < 1
        ):
            raise ValueError(f"svd_tol must be 'auto', None or a float in (0, 1), e.g. 1e-6; got {self.svd_tol!r}")
        if self.lowrank_threshold < 1:
            raise ValueError(f"lowrank_threshold must be >= 1, got {self.lowrank_threshold}")
        self._check_targets()

    def _check_targets(self) -> None:
        targets = self.targets
        if isinstance(targets, str):
            if targets.startswith("re:"):
                try:
                    re.compile(targets[3:])
                except re.error as err:
                    raise ValueError(f"targets regex {targets[3:]!r} does not compile: {err}") from None
            elif targets not in (*TARGET_PRESETS, *RULE_PRESETS):
                raise ValueError(
                    f"targets {targets!r} is not a preset {(*TARGET_PRESETS, *RULE_PRESETS)}, "
                    "a list of module names or a regex 're:<pattern>'"
                )
            return
        if isinstance(targets, (list, tuple)) and targets and all(isinstance(t, str) and t for t in targets):
            object.__setattr__(self, "targets", tuple(targets))  # hashable and immutable
            return
        raise ValueError(
            f"targets must be a preset name, a non-empty list of module names or 're:<pattern>', got {targets!r}"
        )

    @property
    def scaling(self) -> float:
        """``alpha / r`` when ``alpha`` is set, else 1."""
        return 1.0 if self.alpha is None else self.alpha / self.rank

