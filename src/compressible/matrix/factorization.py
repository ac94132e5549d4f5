"""Deep matrix factorisations and their gradient dynamics (paper Sec. 2.1-2.2).

A depth-``L`` factorisation of an ``(m, n)`` matrix is a list ``[W_1, ..., W_L]`` with
``W_l`` of shape ``(d_l, d_{l-1})``, ``d_0 = n`` and ``d_L = m``; the model is the end-to-end
product ``f(Theta) = W_L ... W_1``. Factors are stored first-to-last, i.e. in the order they act
on a vector.

The loss is ``1/2 * ||mask * (f - Phi)||^2`` divided by the number of entries of ``Phi``
(``reduction="mean"``, what the authors' notebooks use and what all their step sizes assume) or
not divided (``reduction="sum"``, the paper's formulas).

Theorem 2.1 (invariant subspaces of these dynamics) is checked in :mod:`compressible.matrix.invariant`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

__all__ = [
    "haar_orthogonal",
    "scaled_orthogonal_init",
    "as_epsilons",
    "end_to_end",
    "half_mse",
    "factor_gradients",
    "gd_step",
    "GDTrajectory",
    "gradient_descent",
    "truncated_gaussian_target",
]

_REDUCTIONS = ("mean", "sum")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def haar_orthogonal(
    rows: int,
    cols: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """A ``(rows, cols)`` slice of a Haar-distributed orthogonal matrix of size ``max(rows, cols)``.

    The columns are orthonormal when ``rows >= cols`` and the rows are orthonormal otherwise.
    Haar measure comes from the QR decomposition of a Gaussian matrix with the signs of
    ``diag(R)`` moved into ``Q`` (Mezzadri, 2007); without that correction QR is not uniform.
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"haar_orthogonal needs positive sizes, got rows={rows}, cols={cols}")
    size = max(rows, cols)
    gaussian = torch.randn(size, size, generator=generator, dtype=torch.float64, device="cpu")
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q[:rows, :cols].to(dtype=dtype, device=device)


def scaled_orthogonal_init(
    dims: Sequence[int],
    epsilon: float | Sequence[float],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> list[Tensor]:
    """Factors ``W_l(0) = eps_l * Q_l`` with ``Q_l`` Haar orthogonal (paper Sec. 2.1).

    Args:
        dims: ``[d_0, d_1, ..., d_L]``; factor ``l`` has shape ``(d_l, d_{l-1})``, so the product
            has shape ``(d_L, d_0)``. For the square "full width" model all entries equal ``d``.
        epsilon: one scale for every layer, or one per layer (length ``L``).
        generator: the random source (seed it for reproducible factors).
    """
    dims = [int(d) for d in dims]
    if len(dims) < 2:
        raise ValueError(f"dims needs at least two sizes [d_0, d_1], got {dims}")
    if any(d < 1 for d in dims):
        raise ValueError(f"every size in dims must be positive, got {dims}")
    depth = len(dims) - 1
    epsilons = as_epsilons(epsilon, depth)
    return [
        eps * haar_orthogonal(dims[l + 1], dims[l], generator=generator, dtype=dtype, device=device)
        for l, eps in enumerate(epsilons)
    ]


def as_epsilons(epsilon: float | Sequence[float], depth: int) -> list[float]:
    """One init scale per layer from one scale or a sequence of ``depth`` scales (positive, finite)."""
    if isinstance(epsilon, (int, float)):
        epsilons = [float(epsilon)] * depth
    else:
        epsilons = [float(e) for e in epsilon]
        if len(epsilons) != depth:
            raise ValueError(f"got {len(epsilons)} init scales for a depth-{depth} factorisation")
    bad = [e for e in epsilons if not (e > 0 and math.isfinite(e))]
    if bad:
        raise ValueError(f"init scales must be positive and finite, got {bad}")
    return epsilons


def end_to_end(factors: Sequence[Tensor]) -> Tensor:
    """The product ``W_L ... W_1`` of factors stored first-to-last."""
    if len(factors) == 0:
        raise ValueError("end_to_end needs at least one factor")
    product = factors[0]
    for w in factors[1:]:
        if w.shape[-1] != product.shape[-2]:
            raise ValueError(
                f"factor shapes do not chain: {tuple(w.shape)} cannot follow {tuple(product.shape)}"
            )
        product = w @ product
    return product


def half_mse(
    prediction: Tensor, target: Tensor, mask: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """``1/2 * ||mask * (prediction - target)||_F^2``, divided by ``target.numel()`` for "mean".

    With "mean" the divisor is the number of *all* entries, observed or not, as in the authors'
    notebooks; the observed fraction therefore changes the effective step size.
    """
    _check_reduction(reduction)
    residual = prediction - target
    if mask is not None:
        residual = residual * mask
    loss = 0.5 * residual.pow(2).sum()
    return loss / target.numel() if reduction == "mean" else loss


def factor_gradients(
    factors: Sequence[Tensor], target: Tensor, mask: Tensor | None = None, reduction: str = "mean"
) -> list[Tensor]:
    """Exact gradients of :func:`half_mse` of the end-to-end product with respect to each factor.

    ``grad W_l = (W_L ... W_{l+1})^T R (W_{l-1} ... W_1)^T`` with ``R = mask * (f - Phi)``
    (times ``1 / numel`` for "mean"). Prefix and suffix products are shared, so one call costs
    ``O(L)`` matrix products.
    """
    _check_reduction(reduction)
    depth = len(factors)
    prefixes = [None] * (depth + 1)  # prefixes[l] = W_l ... W_1 (None = identity)
    for l in range(depth):
        prefixes[l + 1] = factors[l] if prefixes[l] is None else factors[l] @ prefixes[l]
    residual = prefixes[depth] - target
    if mask is not None:
        residual = residual * mask
    if reduction == "mean":
        residual = residual / target.numel()
    grads: list[Tensor] = [None] * depth  # type: ignore[list-item]
    left = residual  # (W_L ... W_{l+1})^T R, built from the top down
    for l in reversed(range(depth)):
        grads[l] = left if prefixes[l] is None else left @ prefixes[l].T
        left = factors[l].T @ left
    return grads


def gd_step(
    factors: Sequence[Tensor],
    target: Tensor,
    lr: float,
    weight_decay: float = 0.0,
    mask: Tensor | None = None,
    reduction: str = "mean",
) -> list[Tensor]:
    """One full-batch gradient-descent step ``W <- (1 - lr * wd) W - lr * grad`` on every factor."""
    grads = factor_gradients(factors, target, mask, reduction)
    shrink = 1.0 - lr * weight_decay
    return [shrink * w - lr * g for w, g in zip(factors, grads)]


@dataclass(frozen=True)
class GDTrajectory:
    """Factors recorded along a gradient-descent run.

    Attributes:
        steps: the iteration numbers that were recorded, starting at 0.
        factors: ``factors[i][l]`` is ``W_{l+1}`` at iteration ``steps[i]``.
        losses: the loss at each recorded iteration (before the step is taken).
    """

    steps: list[int]
    factors: list[list[Tensor]]
    losses: list[float]


def gradient_descent(
    factors: Sequence[Tensor],
    target: Tensor,
    steps: int,
    lr: float,
    weight_decay: float = 0.0,
    mask: Tensor | None = None,
    reduction: str = "mean",
    record_every: int = 1,
    progress: bool = False,
    callback: Callable[[int, list[Tensor]], None] | None = None,
) -> GDTrajectory:
    """Run ``steps`` full-batch GD steps from ``factors`` and record every ``record_every``-th one.

    Raises:
        FloatingPointError: when the loss becomes NaN or infinite, naming the step; lower ``lr``.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be positive and finite, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    current = [w.clone() for w in factors]
    recorded_steps, recorded, losses = [], [], []
    for t in tqdm(range(steps + 1), disable=not progress, desc="gradient descent"):
        loss = float(half_mse(end_to_end(current), target, mask, reduction))
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"gradient descent diverged at step {t} (loss {loss}); lower lr (now {lr})"
            )
        if t % record_every == 0 or t == steps:
            recorded_steps.append(t)
            recorded.append([w.clone() for w in current])
            losses.append(loss)
        if callback is not None:
            callback(t, current)
        if t < steps:
            current = gd_step(current, target, lr, weight_decay, mask, reduction)
    return GDTrajectory(recorded_steps, recorded, losses)


def truncated_gaussian_target(
    rows: int,
    cols: int,
    rank: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """A ``(rows, cols)`` standard Gaussian matrix truncated to its top-``rank`` SVD terms.

    This is how the authors' notebooks make their low-rank targets.
    """
    if not 1 <= rank <= min(rows, cols):
        raise ValueError(f"rank must be in [1, min(rows, cols) = {min(rows, cols)}], got {rank}")
    gaussian = torch.randn(rows, cols, generator=generator, dtype=torch.float64)
    u, s, vh = torch.linalg.svd(gaussian, full_matrices=False)
    return ((u[:, :rank] * s[:rank]) @ vh[:rank]).to(dtype=dtype, device=device)
