"""Compressing a deep factorisation from the gradient at initialisation (paper Sec. 2.3).

Theorem 2.1 says that a full-width depth-``L`` factorisation of a rank-``<= r`` target only ever
learns inside ``2r``-dimensional singular subspaces, and those subspaces can be read off the
gradient at initialisation. With ``G_1 = grad_{W_1} loss(Theta(0))`` (shape ``(d, d)``) and its full
SVD ``G_1 = U_g S V_g^T``, the right subspace of the first factor that never moves is

    ``S = N(G_1) ∩ N(G_1^T W_1(0))``,

so the part that *does* learn is its orthogonal complement

    ``S^⊥ = span(V_g[:, :r]) + span(W_1(0)^T U_g[:, :r] / eps_1)``   (at most ``2r`` columns).

The compressed model keeps an orthonormal basis ``V_{1,1}`` of ``S^⊥`` (shape ``(d, 2r)``), the
matching output basis ``U_{L,1} = f(Theta(0)) V_{1,1} / prod_l eps_l`` (shape ``(d, 2r)``) and
``L`` inner ``(2r, 2r)`` factors initialised at ``eps_l I``:

    ``f~ = U_{L,1} W~_L ... W~_1 V_{1,1}^T``.

With fixed outer factors and full observation, Proposition 2.2 bounds the distance between the
trajectories by ``m * sum_l eps_l^2`` (``m = d - 2r``); :func:`prop22_bound` evaluates it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from .factorization import end_to_end, factor_gradients

__all__ = [
    "compression_basis",
    "CompressedFactorization",
    "compress_from_gradient",
    "parameter_counts",
    "prop22_bound",
    "init_scales",
]


def init_scales(factors: Sequence[Tensor]) -> list[float]:
    """The scales ``eps_l`` of factors initialised as ``eps_l * (orthogonal slice)``.

    A ``(m, n)`` slice of an orthogonal matrix has ``min(m, n)`` unit singular values, so
    ``eps_l = ||W_l||_F / sqrt(min(m, n))``; batched factors ``(B, m, n)`` give the scale of member 0.
    """
    scales = []
    for w in factors:
        w0 = w[0] if w.dim() == 3 else w
        scales.append(float(torch.linalg.matrix_norm(w0.double())) / math.sqrt(min(w0.shape)))
    return scales


def compression_basis(gradient: Tensor, first_factor: Tensor, epsilon: float, rank: int) -> Tensor:
    """Orthonormal basis ``V_{1,1}`` (shape ``(d, 2 * rank)``) of ``S^⊥`` (see the module docstring).

    Args:
        gradient: ``G_1``, the gradient of the loss with respect to the first factor at
            initialisation, shape ``(d_1, d)``.
        first_factor: ``W_1(0)``, shape ``(d_1, d)``.
        epsilon: the scale ``eps_1`` of ``W_1(0) = eps_1 * Q_1``.
        rank: ``r``; the basis has ``2r`` columns, so ``2r < d`` is required.

    The span of ``[V_g[:, :r], W_1(0)^T U_g[:, :r] / eps_1]`` is taken through an SVD of that
    ``(d, 2r)`` matrix, so the ``2r`` columns stay orthonormal even when the two halves overlap.
    """
    if gradient.dim() != 2 or gradient.shape != first_factor.shape:
        raise ValueError(
            f"gradient {tuple(gradient.shape)} and first factor {tuple(first_factor.shape)} must be "
            "matrices of the same shape"
        )
    d = gradient.shape[1]
    if not (isinstance(rank, int) and rank >= 1):
        raise ValueError(f"rank must be a positive int, got {rank!r}")
    if 2 * rank >= d:
        raise ValueError(f"compression needs 2 * rank < d, got rank={rank} (2r={2 * rank}) for d={d}")
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon must be positive and finite, got {epsilon}")
    u_g, _, vh_g = torch.linalg.svd(gradient, full_matrices=False)
    right = vh_g[:rank].T  # (d, r): top right singular vectors of G_1
    mapped = first_factor.T @ u_g[:, :rank] / epsilon  # (d, r): W_1(0)^T times top left ones
    basis, _, _ = torch.linalg.svd(torch.cat([right, mapped], dim=1), full_matrices=False)
    return basis[:, : 2 * rank]


@dataclass(frozen=True)
class CompressedFactorization:
    """``f~ = left @ inner[L-1] @ ... @ inner[0] @ right.T``.

    Attributes:
        left: ``U_{L,1}``, shape ``(d_out, 2r)``.
        inner: ``[W~_1, ..., W~_L]``, each ``(2r, 2r)``, first-to-last.
        right: ``V_{1,1}``, shape ``(d_in, 2r)`` with orthonormal columns.
    """

    left: Tensor
    inner: tuple[Tensor, ...]
    right: Tensor

    def chain(self) -> list[Tensor]:
        """The model as a chain of ``L + 2`` factors ``[V^T, W~_1, ..., W~_L, U]`` (first-to-last)."""
        return [self.right.T, *self.inner, self.left]

    def end_to_end(self) -> Tensor:
        """The ``(d_out, d_in)`` matrix ``f~``."""
        return end_to_end(self.chain())

    @property
    def width(self) -> int:
        return self.right.shape[1]


def compress_from_gradient(
    factors: Sequence[Tensor],
    target: Tensor,
    rank: int,
    mask: Tensor | None = None,
    reduction: str = "mean",
    epsilons: Sequence[float] | None = None,
) -> CompressedFactorization:
    """The Sec. 2.3 construction from a full-width initialisation (depth ``L >= 2``).

    Args:
        factors: ``W_1(0), ..., W_L(0)``, square ``(d, d)``, scaled orthogonal.
        target: ``Phi``, shape ``(d, d)``.
        rank: ``r`` (use ``r >= rank(Phi)``); the compressed width is ``2r``.
        mask: optional observation mask for matrix completion (same shape as ``target``).
        epsilons: the init scales; measured from the factors (:func:`init_scales`) when omitted.

    Costs one gradient and one SVD of a ``(d, d)`` matrix, ``O(d^3)``, once.
    """
    if len(factors) < 2:
        raise ValueError(f"compression needs depth L >= 2, got L={len(factors)}")
    d = target.shape[-1]
    if any(w.shape != (d, d) for w in factors):
        raise ValueError(
            f"compress_from_gradient needs square (d, d) = ({d}, {d}) factors, got "
            f"{[tuple(w.shape) for w in factors]}"
        )
    eps = list(init_scales(factors)) if epsilons is None else [float(e) for e in epsilons]
    if len(eps) != len(factors):
        raise ValueError(f"got {len(eps)} init scales for a depth-{len(factors)} factorisation")
    grad_first = factor_gradients(factors, target, mask, reduction)[0]
    right = compression_basis(grad_first, factors[0], eps[0], rank)
    left = end_to_end(factors) @ right / math.prod(eps)
    eye = torch.eye(2 * rank, dtype=target.dtype, device=target.device)
    inner = tuple(e * eye for e in eps)
    return CompressedFactorization(left=left, inner=inner, right=right)


def parameter_counts(d: int, rank: int, depth: int, train_outer: bool = False) -> dict[str, int]:
    """Trainable parameters of the full-width ``(d, d)`` factorisation and of its compression.

    ``original = L d^2``; ``compressed = L (2r)^2``, plus ``2 * d * 2r`` when the outer factors
    train (``gamma > 0``). At the paper's Fig. 4 setting (d=1000, r=10, L=3): 3,000,000 vs 1,200.
    """
    for name, value in (("d", d), ("rank", rank), ("depth", depth)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if 2 * rank >= d:
        raise ValueError(f"compression needs 2 * rank < d, got rank={rank} for d={d}")
    compressed = depth * (2 * rank) ** 2 + (2 * d * 2 * rank if train_outer else 0)
    return {"original": depth * d * d, "compressed": compressed}


def prop22_bound(d: int, rank: int, epsilons: Sequence[float]) -> float:
    """Proposition 2.2: ``||f(Theta(t)) - f~(t)|| <= m * sum_l eps_l^2`` with ``m = d - 2r``."""
    m = d - 2 * rank
    if m <= 0:
        raise ValueError(f"Proposition 2.2 needs d - 2r > 0, got d={d}, rank={rank}")
    return m * sum(float(e) ** 2 for e in epsilons)
