"""Theorem 2.1: the invariant subspaces of deep factorisation dynamics (paper Sec. 2.2, Fig. 3).

From a scaled orthogonal initialisation ``W_l(0) = eps_l Q_l`` and a target of rank ``<= r``, every
factor keeps ``d - 2r`` singular values equal to a scalar ``rho_l(t)`` that follows :func:`rho_recursion`,
on singular subspaces that never move. :func:`invariant_subspace_report` measures exactly that on a
recorded trajectory (:func:`~compressible.matrix.factorization.gradient_descent`), and
:func:`run_invariant_subspaces` runs the Fig. 3 setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .factorization import GDTrajectory, as_epsilons, gradient_descent, scaled_orthogonal_init, truncated_gaussian_target

__all__ = ["rho_recursion", "invariant_subspace_report", "InvariantSubspaceConfig", "InvariantSubspaceResult",
           "run_invariant_subspaces"]


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
