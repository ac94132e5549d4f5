"""Deep matrix factorisations and their gradient dynamics (paper Sec. 2.1-2.2).

A depth-``L`` factorisation of an ``(m, n)`` matrix is a list ``[W_1, ..., W_L]`` with
``W_l`` of shape ``(d_l, d_{l-1})``, ``d_0 = n`` and ``d_L = m``; the model is the end-to-end
product ``f(Theta) = W_L ... W_1``. Factors are stored first-to-last, i.e. in the order they act
on a vector.

The loss is ``1/2 * ||mask * (f - Phi)||^2`` divided by the number of entries of ``Phi``
(``reduction="mean"``, what the authors' notebooks use and what all their step sizes assume) or
not divided (``reduction="sum"``, the paper's formulas).

Theorem 2.1 says that, from a scaled orthogonal initialisation ``W_l(0) = eps_l Q_l`` and a target
of rank ``<= r``, every factor keeps ``d - 2r`` singular values equal to a scalar ``rho_l(t)`` that
follows :func:`rho_recursion`, on singular subspaces that never move.
:func:`invariant_subspace_report` measures exactly that on a recorded trajectory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
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
    "rho_recursion",
    "invariant_subspace_report",
    "truncated_gaussian_target",
    "InvariantSubspaceConfig",
    "InvariantSubspaceResult",
    "run_invariant_subspaces",
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


def rho_recursion(
    epsilons: Sequence[float],
    lr: float,
    steps: int,
    weight_decay: float = 0.0,
    loss_scale: float = 1.0,
) -> np.ndarray:
    """The scalar recursion of Theorem 2.1 for the ``d - 2r`` "passive" singular values.

    ``rho_l(t) = rho_l(t-1) * (1 - lr*wd - lr*loss_scale * prod_{k != l} rho_k(t-1)^2)``,
    ``rho_l(0) = eps_l``. ``loss_scale`` is ``1`` for the summed loss of the paper and
    ``1 / numel(Phi)`` for the mean-normalised loss (the factor the gradient picks up).

    Returns:
        array of shape ``(steps + 1, L)`` (float64).
    """
    rho = np.empty((steps + 1, len(epsilons)), dtype=np.float64)
    rho[0] = np.asarray(epsilons, dtype=np.float64)
    for t in range(1, steps + 1):
        prev = rho[t - 1]
        sq = prev**2
        others = np.array([np.prod(np.delete(sq, l)) for l in range(len(prev))])
        rho[t] = prev * (1.0 - lr * weight_decay - lr * loss_scale * others)
    return rho


def invariant_subspace_report(trajectory: GDTrajectory, rho: np.ndarray, rank: int) -> pd.DataFrame:
    """Check Theorem 2.1 on a recorded trajectory of square ``d x d`` factors.

    For every recorded step ``t >= 1`` and layer ``l`` it reports

    - ``rho``: the recursion's value ``rho_l(t)``;
    - ``multiplicity``: how many singular values of ``W_l(t)`` lie within a relative ``1e-8`` of
      ``rho_l(t)`` (the theorem: at least ``d - 2r``);
    - ``rel_error``: the largest relative gap between ``rho_l(t)`` and the ``d - 2r`` singular values
      closest to it;
    - ``subspace_drift``: ``||W_l(t) V - (rho_l(t)/rho_l(1)) W_l(1) V|| / rho_l(t)``, where the
      columns of ``V`` span the right singular subspace of ``W_l(1)`` that belongs to ``rho_l(1)``:
      zero when that subspace and its image do not move (they are fixed by the theorem).

    ``rho`` must be indexed by step (``rho[t]`` for ``t`` in ``trajectory.steps``).
    """
    if not trajectory.steps or trajectory.steps[0] != 0 or len(trajectory.steps) < 2:
        raise ValueError("the trajectory must start at step 0 and record at least one more step")
    d = trajectory.factors[0][0].shape[0]
    m = d - 2 * rank
    if m <= 0:
        raise ValueError(f"Theorem 2.1 needs d - 2r > 0, got d={d}, r={rank}")
    first = trajectory.steps[1]
    rows = []
    bases = []
    for l, w1 in enumerate(trajectory.factors[1]):
        u, s, vh = torch.linalg.svd(w1)
        closest = torch.argsort((s - float(rho[first, l])).abs())[:m]
        bases.append((vh[closest].T, w1 @ vh[closest].T))
    for t, factors in zip(trajectory.steps[1:], trajectory.factors[1:]):
        for l, w in enumerate(factors):
            target = float(rho[t, l])
            s = torch.linalg.svdvals(w).double().cpu().numpy()
            gaps = np.abs(s - target) / abs(target)
            v, image1 = bases[l]
            drift = w @ v - (target / float(rho[first, l])) * image1
            rows.append(
                {
                    "step": t,
                    "layer": l + 1,
                    "rho": target,
                    "multiplicity": int((gaps <= 1e-8).sum()),
                    "required": m,
                    "rel_error": float(np.sort(gaps)[m - 1]),
                    "subspace_drift": float(torch.linalg.matrix_norm(drift, ord=2)) / abs(target),
                }
            )
    return pd.DataFrame(rows)


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


@dataclass(frozen=True)
class InvariantSubspaceConfig:
    """The setting of Fig. 3 / Theorem 2.1: a depth-``depth`` square factorisation of a rank-``rank``
    ``d x d`` target, trained by GD from ``eps``-scaled orthogonal factors on the mean loss."""

    d: int = 30
    rank: int = 3
    depth: int = 3
    epsilon: float = 1.0
    lr: float = 1.0
    steps: int = 50
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.depth < 2:
            raise ValueError(f"depth must be >= 2, got {self.depth}")
        if self.rank < 1 or self.d - 2 * self.rank <= 0:
            raise ValueError(
                f"Theorem 2.1 needs 1 <= rank and d - 2*rank > 0; got d={self.d}, rank={self.rank}"
            )
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        as_epsilons(self.epsilon, self.depth)


@dataclass(frozen=True)
class InvariantSubspaceResult:
    """Everything the Theorem 2.1 chapter plots.

    Attributes:
        trajectory: the recorded factors (every step).
        rho: ``(steps + 1, L)`` values of the recursion.
        report: :func:`invariant_subspace_report` of the trajectory.
        singular_values: ``(steps + 1, L, d)`` singular values of every factor, descending.
        vector_angles: ``(steps, L, 2r)`` angle (radians) between the i-th "active" right singular
            vector of ``W_l(t)`` and that of ``W_l(1)``, ``t = 1..steps``. The active vectors are
            those whose singular values are not the ``d - 2r``-fold ``rho_l(t)``, ordered by
            singular value.
        subspace_angles: ``(steps, L)`` largest principal angle between the active ``2r``-dim right
            singular subspace of ``W_l(t)`` and that of ``W_l(1)`` (zero by Theorem 2.1).
    """

    config: InvariantSubspaceConfig
    trajectory: GDTrajectory
    rho: np.ndarray
    report: pd.DataFrame
    singular_values: np.ndarray
    vector_angles: np.ndarray
    subspace_angles: np.ndarray


def run_invariant_subspaces(config: InvariantSubspaceConfig) -> InvariantSubspaceResult:
    """Train the Fig. 3 factorisation in float64 and measure everything Theorem 2.1 predicts."""
    generator = torch.Generator().manual_seed(config.seed)
    target = truncated_gaussian_target(config.d, config.d, config.rank, generator=generator)
    factors = scaled_orthogonal_init([config.d] * (config.depth + 1), config.epsilon, generator=generator)
    trajectory = gradient_descent(factors, target, config.steps, config.lr, config.weight_decay)
    rho = rho_recursion(
        as_epsilons(config.epsilon, config.depth), config.lr, config.steps, config.weight_decay,
        loss_scale=1.0 / target.numel(),
    )
    report = invariant_subspace_report(trajectory, rho, config.rank)
    k = 2 * config.rank
    m = config.d - k
    svals, vectors = [], []
    for t, factors_t in zip(trajectory.steps, trajectory.factors):
        s_t, v_t = [], []
        for l, w in enumerate(factors_t):
            _, s, vh = torch.linalg.svd(w)
            s_t.append(s.numpy())
            # the "active" 2r directions: all but the d - 2r singular values that equal rho_l(t)
            passive = set(torch.argsort((s - float(rho[t, l])).abs())[:m].tolist())
            active = [i for i in range(config.d) if i not in passive]
            v_t.append(vh[active].T)
        svals.append(s_t)
        vectors.append(v_t)
    vector_angles = np.zeros((config.steps, config.depth, k))
    subspace_angles = np.zeros((config.steps, config.depth))
    for t in range(1, config.steps + 1):
        for l in range(config.depth):
            v1, vt = vectors[1][l], vectors[t][l]
            # atan2(sin, cos) and arcsin of the projection residual stay accurate near zero,
            # where arccos of a cosine close to 1 would lose half the digits.
            dots = (v1 * vt).sum(0)
            sines = torch.linalg.vector_norm(vt - v1 * dots, dim=0)
            vector_angles[t - 1, l] = torch.atan2(sines, dots.abs()).numpy()
            residual = vt - v1 @ (v1.T @ vt)
            sine = float(torch.linalg.matrix_norm(residual, ord=2).clamp(max=1.0))
            subspace_angles[t - 1, l] = math.asin(sine)
    return InvariantSubspaceResult(
        config, trajectory, rho, report, np.asarray(svals), vector_angles, subspace_angles
    )
