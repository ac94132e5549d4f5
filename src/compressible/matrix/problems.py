"""Deep matrix completion problems: a low-rank target and a mask of observed entries (paper Sec. 3).

A problem is a rank-``r*`` target ``Phi`` (shape ``(d, d)``) and a mask ``Omega`` with exactly
``floor(p d^2)`` observed entries. A :class:`CompletionProblem` holds ``B`` independent problems
(``target`` of shape ``(B, d, d)``) so that several trials run as one tensor program.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ProblemConfig",
    "CompletionProblem",
    "low_rank_target",
    "random_mask",
    "make_problem",
    "seed_list",
    "check_int",
    "torch_dtype",
]


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """One seed or a non-empty sequence of seeds, as a list of ints."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        return [int(seeds)]
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("need at least one seed, got an empty list")
    return seeds


def check_int(name: str, value, minimum: int = 1) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``value`` is an int (not a bool) >= ``minimum``."""
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class ProblemConfig:
    """A deep matrix completion problem.

    Attributes:
        d: the target is ``(d, d)``.
        true_rank: ``r*``, rank of the target, ``1 <= r* <= d``.
        observed_fraction: ``p`` in ``(0, 1]``; exactly ``floor(p d^2)`` entries are observed.
    """

    d: int
    true_rank: int
    observed_fraction: float = 1.0

    def __post_init__(self):
        check_int("d", self.d)
        check_int("true_rank", self.true_rank)
        if self.true_rank > self.d:
            raise ValueError(f"true_rank r*={self.true_rank} exceeds d={self.d}; valid: 1 <= r* <= d")
        p = self.observed_fraction
        if not (isinstance(p, (int, float)) and 0 < p <= 1):
            raise ValueError(f"observed_fraction must lie in (0, 1], got {p!r}")
        if math.floor(p * self.d * self.d) < 1:
            raise ValueError(
                f"observed_fraction={p} observes floor(p d^2) = 0 entries of a {self.d}x{self.d} "
                f"target; use p >= {1 / self.d**2:.3g}"
            )

    @property
    def n_observed(self) -> int:
        return math.floor(self.observed_fraction * self.d * self.d)


def low_rank_target(
    d: int,
    rank: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Tensor:
    """A ``(d, d)`` standard Gaussian matrix truncated to its top-``rank`` SVD terms (the authors' target).

    Drawn and decomposed in float64 on the CPU, so the same generator state gives the same target
    for every dtype and device.
    """
    ProblemConfig(d, rank)  # validates d and rank
    gaussian = torch.randn(d, d, generator=generator, dtype=torch.float64)
    u, s, vh = torch.linalg.svd(gaussian)
    target = (u[:, :rank] * s[:rank]) @ vh[:rank]
    return target.to(dtype=dtype, device=device)


def random_mask(
    d: int,
    observed_fraction: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A boolean ``(d, d)`` mask with exactly ``floor(p d^2)`` entries drawn uniformly without replacement."""
    n = ProblemConfig(d, 1, observed_fraction).n_observed
    chosen = torch.randperm(d * d, generator=generator)[:n]
    mask = torch.zeros(d * d, dtype=torch.bool)
    mask[chosen] = True
    return mask.view(d, d).to(device)


@dataclass(frozen=True)
class CompletionProblem:
    """``B`` completion problems of the same size.

    Attributes:
        target: ``Phi``, shape ``(B, d, d)``.
        mask: observed entries, boolean ``(B, d, d)``, the same number ``n`` in every member.
        rows, cols: the observed positions, int64 ``(B, n)`` (row-major order).
        target_observed: ``Phi`` at the observed positions, ``(B, n)``.
    """

    target: Tensor
    mask: Tensor
    rows: Tensor
    cols: Tensor
    target_observed: Tensor

    @classmethod
    def from_tensors(cls, target: Tensor, mask: Tensor) -> "CompletionProblem":
        """Build from a target ``(d, d)`` or ``(B, d, d)`` and a mask of the same shape."""
        if target.dim() == 2:
            target = target.unsqueeze(0)
        if mask.dim() == 2:
            mask = mask.unsqueeze(0)
        if target.dim() != 3 or target.shape[-1] != target.shape[-2]:
            raise ValueError(f"target must be (d, d) or (B, d, d), got {tuple(target.shape)}")
        if mask.shape != target.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} differs from target shape {tuple(target.shape)}")
        mask = mask.to(dtype=torch.bool, device=target.device)
        counts = mask.flatten(1).sum(1)
        if int(counts.min()) == 0:
            empty = [i for i, c in enumerate(counts.tolist()) if c == 0]
            raise ValueError(f"mask of member(s) {empty} observes no entry; at least one entry must be observed")
        if int(counts.max()) != int(counts.min()):
            raise ValueError(
                f"every member must observe the same number of entries to be batched, got {counts.tolist()}"
            )
        batch, d, _ = target.shape
        flat = mask.flatten(1).nonzero()  # (B * n, 2): member, flat index, row-major
        index = flat[:, 1].view(batch, -1)
        rows, cols = index // d, index % d
        target_observed = torch.gather(target.flatten(1), 1, index)
        return cls(target, mask, rows, cols, target_observed)

    @property
    def batch(self) -> int:
        return self.target.shape[0]

    @property
    def d(self) -> int:
        return self.target.shape[-1]

    @property
    def n_observed(self) -> int:
        return self.rows.shape[1]

    def member(self, i: int) -> "CompletionProblem":
        """Member ``i`` as a batch of one."""
        s = slice(i, i + 1)
        return CompletionProblem(self.target[s], self.mask[s], self.rows[s], self.cols[s], self.target_observed[s])


def make_problem(
    config: ProblemConfig,
    seeds: int | Sequence[int],
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> CompletionProblem:
    """One problem per seed: target then mask from ``torch.Generator().manual_seed(seed)``."""
    targets, masks = [], []
    for seed in seed_list(seeds):
        gen = torch.Generator().manual_seed(seed)
        targets.append(low_rank_target(config.d, config.true_rank, generator=gen, dtype=dtype, device=device))
        masks.append(random_mask(config.d, config.observed_fraction, generator=gen, device=device))
    return CompletionProblem.from_tensors(torch.stack(targets), torch.stack(masks))


def torch_dtype(name: str) -> torch.dtype:
    """``torch.float32`` or ``torch.float64`` from its name (the configs store dtypes by name)."""
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return getattr(torch, name)

