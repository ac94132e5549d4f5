"""The Deep LoRA layer: a frozen linear map plus a product of trainable factors (paper Sec. 4).

``DeepLoRALinear`` wraps an ``nn.Linear`` (weight ``(m, n)`` = out x in) or a transformers
``Conv1D`` (weight stored ``(n, m)``) and adds ``scaling * F_K ... F_1 x`` to its output. The
factors are stored first-to-last, in the order they act on the input: ``F_1`` has shape
``(w_1, n)`` and ``F_K`` has shape ``(m, w_{K-1})``.

====================  =====================================================  =============
``init``              factors (first to last)                                outer factors
====================  =====================================================  =============
``"compressed"``      ``right^T (r, n)``, ``L`` times ``eps I_r``, ``left``  first, last
``"lora"``            ``A (r, n) ~ N(0, 1)``, ``B (m, r) = 0``               none
``"random"``          ``L`` scaled Haar factors of width ``r``               none
``"full"``            ``L`` scaled Haar factors of width ``max(m, n)``       none
====================  =====================================================  =============

``left (m, r)`` and ``right (n, r)`` of a compressed adapter are zero until
:func:`compressible.deeplora.compress.compress_from_batch` sets them from the gradient at initialisation.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .config import DeepLoRAConfig

try:  # transformers is a dependency, but the layer also works without it
    from transformers.pytorch_utils import Conv1D
except ImportError:  # pragma: no cover
    Conv1D = None  # type: ignore[assignment,misc]

__all__ = ["DeepLoRALinear", "haar_stiefel", "is_adaptable"]

logger = logging.getLogger(__name__)

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def is_adaptable(module: nn.Module) -> bool:
    """Whether ``module`` is an ``nn.Linear`` or a transformers ``Conv1D`` (what can be wrapped)."""
    return isinstance(module, nn.Linear) or (Conv1D is not None and isinstance(module, Conv1D))


def haar_stiefel(
    rows: int, cols: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """A ``(rows, cols)`` slice of a Haar-orthogonal matrix, sampled without forming the square one.

    Same law as ``compressible.matrix.factorization.haar_orthogonal``, but from the thin QR of a
    ``(max, min)`` Gaussian matrix (with the sign correction that makes QR Haar), so the cost is
    ``O(max * min^2)`` instead of ``O(max^3)``. Orthonormal columns if ``rows >= cols``, else rows.
    """
    big, small = max(rows, cols), min(rows, cols)
    gaussian = torch.randn(big, small, generator=generator, dtype=torch.float64)
    if dtype == torch.float32:  # QR in the output precision: about twice as fast for big factors
        gaussian = gaussian.float()
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return (q if rows >= cols else q.T).to(dtype)


class DeepLoRALinear(nn.Module):
    """``y = base(x) + scaling * F_K ... F_1 x`` with a frozen ``base`` and trainable ``factors``.

    Args:
        base: the ``nn.Linear`` or transformers ``Conv1D`` to adapt; its parameters are frozen.
        config: the adapter's configuration.
        generator: random source of the initial factors (a CPU generator).
        name: the module's name in its model, used in error messages.

    Attributes:
        base: the wrapped module (frozen).
        factors: ``nn.ParameterList``, first-to-last, ``F_1 (w_1, n)`` ... ``F_K (m, w_{K-1})``.
            float32 when the base is bf16/fp16, otherwise the base's dtype.
        outer: indices of the outer factors (``(0, K - 1)`` for compressed adapters, else ``()``).
        scaling: multiplies the product (``alpha / r``, or 1 without ``alpha``).
        in_features, out_features: ``n`` and ``m``.
        merged: whether ``scaling * F_K ... F_1`` is currently added into the base weight.
        enabled: set to ``False`` to run the base model alone (ignored while merged).
        initialized: ``False`` for a compressed adapter until its outer factors are set.
    """

    def __init__(
        self,
        base: nn.Module,
        config: DeepLoRAConfig,
        *,
        generator: torch.Generator | None = None,
        name: str = "",
    ) -> None:
        super().__init__()
        if not is_adaptable(base):
            raise TypeError(
                f"{name or 'module'!r} is a {type(base).__name__}; only nn.Linear and transformers Conv1D can be adapted"
            )
        self.base = base
        self.config = config
        self.name = name
        self.is_conv1d = not isinstance(base, nn.Linear)
        weight = base.weight
        n, m = (weight.shape[0], weight.shape[1]) if self.is_conv1d else (weight.shape[1], weight.shape[0])
        self.in_features, self.out_features = int(n), int(m)
        r = config.rank
        if config.init != "full" and r > min(m, n):
            raise ValueError(
                f"rank {r} exceeds min(out, in) = {min(m, n)} for {name or 'module'!r} (shape {m} x {n}); "
                "lower the rank or leave this module out of targets"
            )
        for p in base.parameters():
            p.requires_grad_(False)

        dtype = torch.float32 if weight.dtype in _LOW_PRECISION or not weight.dtype.is_floating_point else weight.dtype
        self.scaling = float(config.scaling)
        self.merged = False
        self._unmerge_fix: tuple[Tensor | None, Tensor] | None = None  # set by merge(): see there
        self.enabled = True
        self.initialized = config.init != "compressed"
        self._warned = False
        shapes, self.outer = self._factor_shapes(m, n)
        factors = self._initial_factors(shapes, generator, dtype)
        self.factors = nn.ParameterList(
            [nn.Parameter(f.to(device=weight.device, dtype=dtype)) for f in factors]
        )

    # ------------------------------------------------------------------ construction
    def _factor_shapes(self, m: int, n: int) -> tuple[list[tuple[int, int]], tuple[int, ...]]:
        cfg, r, depth = self.config, self.config.rank, int(self.config.depth)  # type: ignore[arg-type]
        if cfg.init == "compressed":
            shapes = [(r, n)] + [(r, r)] * depth + [(m, r)]
            return shapes, (0, len(shapes) - 1)
        width = max(m, n) if cfg.init == "full" else r
        dims = [n] + [width] * (depth - 1) + [m]
        return [(dims[k + 1], dims[k]) for k in range(depth)], ()

    def _initial_factors(
        self, shapes: list[tuple[int, int]], generator: torch.Generator | None, dtype: torch.dtype
    ) -> list[Tensor]:
        cfg = self.config
        if cfg.init == "compressed":
            r = cfg.rank
            inner = [cfg.epsilon * torch.eye(r, dtype=torch.float64) for _ in shapes[1:-1]]
            return [torch.zeros(shapes[0], dtype=torch.float64), *inner, torch.zeros(shapes[-1], dtype=torch.float64)]
        if cfg.init == "lora":
            a = torch.randn(shapes[0], generator=generator, dtype=torch.float64)
            return [a, torch.zeros(shapes[1], dtype=torch.float64)]
        return [cfg.epsilon * haar_stiefel(rows, cols, generator=generator, dtype=dtype) for rows, cols in shapes]

    # ------------------------------------------------------------------ the maths
    @property
    def weight(self) -> Tensor:
        """The base weight as stored (``(m, n)`` for Linear, ``(n, m)`` for Conv1D)."""
        return self.base.weight

    @property
    def base_kind(self) -> str:
        """``"Conv1D"`` for a transformers ``Conv1D`` base, else ``"Linear"`` (as saved and exported)."""
        return "Conv1D" if type(self.base).__name__ == "Conv1D" else "Linear"

    @property
    def bias(self) -> Tensor | None:
        """The base bias ``(m,)`` (some model code reads ``module.weight`` / ``module.bias``)."""
        return self.base.bias

    def delta_weight(self) -> Tensor:
        """``scaling * F_K ... F_1`` of shape ``(m, n)`` in float32 (float64 if the adapters are float64).

        Differentiable with respect to the factors. Costs ``O(m n w)``; the forward does not use it
        (except for the full-width adapter).
        """
        dtype = torch.float64 if self.factors[0].dtype == torch.float64 else torch.float32
        product = self.factors[0].to(dtype)
        for f in list(self.factors)[1:]:
            product = f.to(dtype) @ product
        return self.scaling * product

    def adapter_output(self, x: Tensor) -> Tensor:
        """``scaling * F_K ... F_1 x`` applied to activations ``x (..., n)`` in the adapters' dtype.

        Low-rank adapters never form ``Delta W``: the factors act on the activations one by one,
        ``O(tokens * (m + n) * r)``. The full-width adapter has no low-rank structure to exploit and
        applies ``Delta W`` directly.
        """
        h = x.to(self.factors[0].dtype)
        if self.config.init == "full":
            return F.linear(h, self.delta_weight().to(h.dtype))
        for f in self.factors:
            h = F.linear(h, f)
        return self.scaling * h if self.scaling != 1.0 else h

    def forward(self, x: Tensor) -> Tensor:
        """``base(x) + scaling * F_K ... F_1 x`` for ``x (..., n)``; the base alone when merged or disabled."""
        out = self.base(x)
        if self.merged or not self.enabled:
            return out
        if self.training and not self.initialized and not self._warned:
            logger.warning(
                "compressed adapter %r is trained before compress_from_batch set its outer factors; "
                "its update stays zero", self.name
            )
            self._warned = True
        return out + self.adapter_output(x).to(out.dtype)

    # ------------------------------------------------------------------ merging
    def _stored_delta(self) -> Tensor:
        """``scaling * F_K ... F_1`` laid out, placed and typed as the base weight stores it."""
        delta = self.delta_weight()
        if self.is_conv1d:
            delta = delta.T
        weight = self.base.weight
        return delta.to(device=weight.device, dtype=weight.dtype)

    def merge(self) -> None:
        """Add ``scaling * F_K ... F_1`` into the base weight; the forward then skips the factors.

        Exact up to rounding in the base weight's dtype. Does nothing if already merged.

        ``fl(fl(W + ΔW) - ΔW)`` is not always ``W`` (an entry that adding ``ΔW`` carries into a larger
        binade loses its last bit; ties round to even), so the merge keeps the positions and old values
        of the entries that subtracting ``ΔW`` would not give back (a few percent of them when
        ``|ΔW| << |W|``; the whole old weight instead where that is smaller), and :meth:`unmerge`
        restores ``W`` bit for bit.
        """
        if self.merged:
            return
        with torch.no_grad():
            weight = self.base.weight
            before = weight.detach().clone()
            delta = self._stored_delta()
            weight.add_(delta)
            # torch.ne: a NaN (or inf - inf) is kept too (NaN != NaN), and so is restored as it was
            changed = torch.ne(weight - delta, before).flatten().nonzero().squeeze(1)
            if changed.numel() * (changed.element_size() + before.element_size()) < before.numel() * before.element_size():
                self._unmerge_fix = (changed, before.flatten()[changed])
            else:
                self._unmerge_fix = (None, before)
        self.merged = True

    def unmerge(self) -> None:
        """Subtract the product merged by :meth:`merge` (with the current factors). No-op if not merged.

        The base weight is then bit for bit the one :meth:`merge` found: the subtraction repeats the
        merge's computation of ``ΔW`` and the entries it does not restore are put back (see
        :meth:`merge`). If the factors, or the weight's device or dtype, changed while merged, the
        entries put back are still the old ones and the others are exact up to rounding.
        """
        if not self.merged:
            return
        with torch.no_grad():
            weight = self.base.weight
            index, values = self._unmerge_fix or (None, None)  # (None, None): merged by other means; subtract only
            if index is None and values is not None:  # merge kept the whole old weight
                weight.copy_(values)
            else:
                weight.sub_(self._stored_delta())
                if index is not None:
                    # put_ indexes the weight as if it were flattened (row-major), whatever its strides
                    weight.put_(index.to(weight.device), values.to(device=weight.device, dtype=weight.dtype))
            self._unmerge_fix = None
        self.merged = False

    # ------------------------------------------------------------------ compression
    def set_outer(self, left: Tensor, right: Tensor) -> None:
        """Set ``left (m, r)`` and ``right (n, r)`` of a compressed adapter (factors ``K-1`` and ``0``)."""
        if self.config.init != "compressed":
            raise ValueError(f"{self.name!r} has init={self.config.init!r}; only compressed adapters have left/right")
        if self.merged:
            raise RuntimeError(f"{self.name!r} is merged; unmerge it before changing its factors")
        r = self.config.rank
        m, n = self.out_features, self.in_features
        if tuple(left.shape) != (m, r) or tuple(right.shape) != (n, r):
            raise ValueError(
                f"{self.name!r} needs left {(m, r)} and right {(n, r)}, got {tuple(left.shape)} and {tuple(right.shape)}"
            )
        with torch.no_grad():
            first, last = self.factors[0], self.factors[len(self.factors) - 1]
            first.copy_(right.T.to(first.dtype))
            last.copy_(left.to(last.dtype))
        self.initialized = True

    @property
    def left(self) -> Tensor:
        """The last factor ``(m, w)`` (``left`` of a compressed adapter)."""
        return self.factors[len(self.factors) - 1]

    @property
    def right(self) -> Tensor:
        """The transposed first factor ``(n, w)`` (``right`` of a compressed adapter)."""
        return self.factors[0].T

    def num_trainable(self) -> int:
        """Number of adapter parameters."""
        return sum(f.numel() for f in self.factors)

    def extra_repr(self) -> str:
        shapes = " -> ".join(f"{tuple(f.shape)}" for f in self.factors)
        return (
            f"init={self.config.init!r}, in={self.in_features}, out={self.out_features}, "
            f"factors={shapes}, outer={self.outer}, scaling={self.scaling:g}, merged={self.merged}"
        )
