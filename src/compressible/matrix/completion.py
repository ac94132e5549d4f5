"""Deep matrix completion with full-width, narrow and compressed factorisations (paper Sec. 3).

A problem is a rank-``r*`` target ``Phi`` (shape ``(d, d)``) and a mask ``Omega`` with exactly
``floor(p d^2)`` observed entries. Training is plain full-batch gradient descent on

    ``train loss = 1/2 * ||Omega * (f - Phi)||_F^2 / d^2``

(the authors' normalisation: divide by *all* ``d^2`` entries), and the recovery error is the same
expression on the unobserved entries ``1 - Omega``.

Everything here is batched: a :class:`CompletionProblem` holds ``B`` independent problems
(``target`` of shape ``(B, d, d)``) and a :class:`Factorization` holds ``B`` independent chains of
factors (each factor of shape ``(B, d_l, d_{l-1})``), so several trials run as one tensor program.

Three models are built here:

- :func:`full_width_factorization`: ``L`` square ``(d, d)`` factors ``eps * Q_l`` (the original);
- :func:`narrow_factorization`: width ``w``, factors ``(w, d), (w, w), ..., (d, w)`` that are
  ``eps``-scaled slices of Haar orthogonal matrices (the "random" baseline of App. D.1);
- :func:`compressed_factorization`: the Sec. 2.3 construction ``U W~_L ... W~_1 V^T`` as a chain of
  ``L + 2`` factors whose first (``V^T``) and last (``U``) factors are *outer* and train with the
  discrepant step ``gamma * lr`` (``gamma = 0`` freezes them).

For a thin chain (first factor ``(b, d)``, last ``(d, a)`` with ``a, b << d``) a step costs
``O(d^2 (a + b))`` with the dense masked residual, and ``O(|Omega| (a + b) + d a b + L (2r)^3)``
with ``residual="observed"``, which never forms a ``(d, d)`` matrix: the residual is evaluated only
at the observed entries, ``r_ij = U_i M V_j^T - Phi_ij`` (gathered rows), and the gradients are
scatter-adds over the observed entries (sparse products). Which is faster depends on ``p`` and on
the hardware's gather speed; ``residual="auto"`` picks by ``p`` (see :class:`TrainConfig`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .compression import compress_from_gradient
from .factorization import haar_orthogonal, _as_epsilons

__all__ = [
    "ProblemConfig",
    "CompletionProblem",
    "low_rank_target",
    "random_mask",
    "make_problem",
    "Factorization",
    "full_width_factorization",
    "narrow_factorization",
    "compressed_factorization",
    "TrainConfig",
    "CompletionResult",
    "DivergenceError",
    "train",
    "masked_residual_dense",
    "masked_residual_observed",
    "track_compression",
    "rescale_lr",
    "pad_width",
    "WidthSweepConfig",
    "run_width_sweep",
    "CompressionRaceConfig",
    "run_compression_race",
    "RandomVsCompressedConfig",
    "run_random_vs_compressed",
    "FactorizationTrackConfig",
    "run_factorization_track",
    "race_summary",
    "random_vs_compressed_summary",
]

log = logging.getLogger(__name__)

_RESIDUAL_MODES = ("auto", "dense", "observed", "sampled")


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        return [int(seeds)]
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("need at least one seed, got an empty list")
    return seeds


def _check_int(name: str, value, minimum: int = 1) -> None:
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# problems


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
        _check_int("d", self.d)
        _check_int("true_rank", self.true_rank)
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
    for seed in _seed_list(seeds):
        gen = torch.Generator().manual_seed(seed)
        targets.append(low_rank_target(config.d, config.true_rank, generator=gen, dtype=dtype, device=device))
        masks.append(random_mask(config.d, config.observed_fraction, generator=gen, device=device))
    return CompletionProblem.from_tensors(torch.stack(targets), torch.stack(masks))


# ---------------------------------------------------------------------------------------------
# factorisations


@dataclass(frozen=True)
class Factorization:
    """A batch of chains ``f = F_{K-1} ... F_0``.

    Attributes:
        factors: ``F_0, ..., F_{K-1}`` first-to-last, each ``(B, d_k, d_{k-1})``.
        outer: one flag per factor; outer factors train with step ``gamma * lr``.
        kind: "full", "narrow" or "compressed" (for labels).
    """

    factors: tuple[Tensor, ...]
    outer: tuple[bool, ...]
    kind: str = "full"

    def __post_init__(self):
        if len(self.factors) != len(self.outer):
            raise ValueError(f"{len(self.factors)} factors but {len(self.outer)} outer flags")
        if not self.factors:
            raise ValueError("a factorisation needs at least one factor")
        batch = self.factors[0].shape[0]
        for k, (a, b) in enumerate(zip(self.factors[:-1], self.factors[1:])):
            if a.dim() != 3 or b.dim() != 3 or b.shape[0] != batch or b.shape[-1] != a.shape[-2]:
                raise ValueError(
                    f"factors {k} {tuple(a.shape)} and {k + 1} {tuple(b.shape)} do not chain as (B, out, in)"
                )

    @property
    def batch(self) -> int:
        return self.factors[0].shape[0]

    @property
    def d(self) -> int:
        return self.factors[0].shape[-1]

    def end_to_end(self) -> Tensor:
        """``(B, d_out, d_in)``."""
        product = self.factors[0]
        for w in self.factors[1:]:
            product = w @ product
        return product

    def n_parameters(self, gamma: float = 1.0) -> int:
        """Trainable parameters per member (outer factors count only when ``gamma > 0``)."""
        return sum(w[0].numel() for w, o in zip(self.factors, self.outer) if gamma > 0 or not o)

    def is_thin(self) -> bool:
        """True when neither the first nor the last factor has full width ``d``."""
        first, last = self.factors[0], self.factors[-1]
        return len(self.factors) >= 2 and first.shape[-2] < first.shape[-1] and last.shape[-1] < last.shape[-2]

    def member(self, i: int) -> "Factorization":
        return replace(self, factors=tuple(w[i : i + 1] for w in self.factors))

    def clone(self) -> "Factorization":
        return replace(self, factors=tuple(w.clone() for w in self.factors))


def _init_chain(dims: list[int], eps: list[float], seeds, dtype, device) -> tuple[Tensor, ...]:
    members = []
    for seed in _seed_list(seeds):
        gen = torch.Generator().manual_seed(seed)
        members.append(
            [e * haar_orthogonal(dims[l + 1], dims[l], generator=gen, dtype=dtype, device=device) for l, e in enumerate(eps)]
        )
    return tuple(torch.stack([m[l] for m in members]) for l in range(len(eps)))


def full_width_factorization(
    d: int,
    depth: int,
    epsilon: float | Sequence[float],
    seeds: int | Sequence[int],
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Factorization:
    """``L`` square factors ``W_l(0) = eps_l Q_l`` per seed; ``B = len(seeds)``."""
    _check_int("d", d)
    _check_int("depth", depth)
    eps = _as_epsilons(epsilon, depth)
    factors = _init_chain([d] * (depth + 1), eps, seeds, dtype, device)
    return Factorization(factors, (False,) * depth, "full")


def narrow_factorization(
    d: int,
    width: int,
    depth: int,
    epsilon: float | Sequence[float],
    seeds: int | Sequence[int],
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Factorization:
    """Width-``w`` factors ``(w, d), (w, w), ..., (d, w)``, each an ``eps``-scaled orthogonal slice.

    All factors train at the full step (none is outer), as for any narrow network.
    """
    _check_int("d", d)
    _check_int("depth", depth, 2)
    if not (isinstance(width, int) and 1 <= width <= d):
        raise ValueError(f"width must be an int in [1, d={d}], got {width!r}")
    eps = _as_epsilons(epsilon, depth)
    dims = [d] + [width] * (depth - 1) + [d]
    return Factorization(_init_chain(dims, eps, seeds, dtype, device), (False,) * depth, "narrow")


def compressed_factorization(original: Factorization, problem: CompletionProblem, rank: int) -> Factorization:
    """The Sec. 2.3 compression of every member of a full-width ``original`` at its initialisation.

    The first factor's gradient is taken on the masked, mean-normalised training loss of the
    matching problem member. Returns chains ``[V^T, W~_1, ..., W~_L, U]`` with ``V^T`` and ``U`` outer.
    """
    if original.kind != "full":
        raise ValueError(f"compression starts from a full-width factorisation, got kind={original.kind!r}")
    if original.batch != problem.batch:
        raise ValueError(f"factorisation has {original.batch} members but the problem has {problem.batch}")
    d = problem.d
    if not (isinstance(rank, int) and rank >= 1 and 2 * rank < d):
        raise ValueError(f"rank must be an int with 1 <= rank and 2 * rank < d = {d}, got {rank!r}")
    chains = []
    for i in range(original.batch):
        factors = [w[i] for w in original.factors]
        mask = problem.mask[i].to(problem.target.dtype)
        chains.append(compress_from_gradient(factors, problem.target[i], rank, mask=mask).chain())
    stacked = tuple(torch.stack([c[k] for c in chains]).contiguous() for k in range(len(chains[0])))
    outer = (True,) + (False,) * (len(stacked) - 2) + (True,)
    return Factorization(stacked, outer, "compressed")


# ---------------------------------------------------------------------------------------------
# residuals and gradients


def _prefixes(factors: Sequence[Tensor]) -> list[Tensor | None]:
    """``prefixes[k] = F_{k-1} ... F_0`` (``None`` for the identity at ``k = 0``)."""
    out: list[Tensor | None] = [None]
    for w in factors:
        out.append(w if out[-1] is None else w @ out[-1])
    return out


def _backprop(factors: Sequence[Tensor], prefixes: Sequence[Tensor | None], grad_product: Tensor) -> list[Tensor]:
    """Gradients of ``<grad_product, F_{K-1} ... F_0>`` with respect to every ``F_k``."""
    grads: list[Tensor] = [None] * len(factors)  # type: ignore[list-item]
    left = grad_product
    for k in reversed(range(len(factors))):
        grads[k] = left if prefixes[k] is None else left @ prefixes[k].mT
        if k > 0:
            left = factors[k].mT @ left
    return grads


def masked_residual_dense(factorization: Factorization, problem: CompletionProblem) -> Tensor:
    """``Omega * (f - Phi)`` as a dense ``(B, d, d)`` tensor (reference implementation)."""
    return (factorization.end_to_end() - problem.target) * problem.mask


def masked_residual_observed(factorization: Factorization, problem: CompletionProblem) -> Tensor:
    """``f_ij - Phi_ij`` at the observed entries only, shape ``(B, n)``, never forming ``f``.

    For a chain ``A M B`` (``A`` the last factor ``(d, a)``, ``B`` the first ``(b, d)``) this is
    ``sum_k (A M)_{ik} B_{kj}`` over the gathered rows ``i`` and columns ``j``.
    """
    return _observed_forward(factorization.factors, _ObservedPattern(problem))[0]


class _ObservedPattern:
    """Index structures for the observed entries of a batch, built once per training run.

    The ``B`` members are laid out as one block-diagonal ``(B d, B d)`` sparse matrix, so a
    scatter-add over the observed entries of every member is a single sparse product.
    """

    def __init__(self, problem: CompletionProblem):
        batch, d = problem.batch, problem.d
        device = problem.target.device
        offset = (torch.arange(batch, device=device) * d).unsqueeze(1)
        self.rows = (problem.rows + offset).reshape(-1)  # global row of every observed entry
        self.cols = (problem.cols + offset).reshape(-1)
        self.size = batch * d
        self.batch, self.d = batch, d
        # COO index lists sorted row-major (i.e. coalesced) for E and for E^T
        self.index = torch.stack([self.rows, self.cols])
        self.perm = torch.argsort(self.cols * self.size + self.rows)
        self.index_t = torch.stack([self.cols[self.perm], self.rows[self.perm]])
        self.target = problem.target_observed
        # flat position of every observed entry in a (B, d, d) tensor, member-major then row-major
        self.flat = ((problem.rows * d + problem.cols) + offset * d).reshape(-1)

    def matmul(self, values: Tensor, dense: Tensor, transpose: bool = False) -> Tensor:
        """``E @ dense`` (or ``E^T @ dense``) for the sparse ``E`` with ``values`` at the observed entries."""
        if transpose:
            index, values = self.index_t, values[self.perm]
        else:
            index = self.index
        # COO rather than CSR: on CPUs torch's CSR product has a large fixed cost per call
        e = torch.sparse_coo_tensor(
            index, values, (self.size, self.size), is_coalesced=True, check_invariants=False
        )
        return torch.sparse.mm(e, dense)


def _observed_forward(factors: Sequence[Tensor], pattern: _ObservedPattern, sampled: bool = False):
    first, last, middle = factors[0], factors[-1], list(factors[1:-1])
    batch, d = pattern.batch, pattern.d
    mids = _prefixes(middle)
    product = mids[-1]  # (B, a, b) or None when the chain has two factors
    left = last if product is None else last @ product  # (B, d, b)
    width = left.shape[-1]
    right_flat = first.mT.reshape(batch * d, width).contiguous()  # (B d, b): row j = column j of F_0
    if sampled:
        # one thin BLAS product, read only at the observed entries (cheaper than gathers on CPUs)
        pred = (left @ first).reshape(-1).take(pattern.flat)
    else:
        left_flat = left.reshape(batch * d, width)
        pred = (F.embedding(pattern.rows, left_flat) * F.embedding(pattern.cols, right_flat)).sum(-1)
    return pred.view(batch, -1) - pattern.target, (middle, mids, product, right_flat)


def _gradients_observed(factors: Sequence[Tensor], pattern: _ObservedPattern, scale: float, sampled: bool = False):
    residual, (middle, mids, product, right_flat) = _observed_forward(factors, pattern, sampled)
    first, last = factors[0], factors[-1]
    batch, d = pattern.batch, pattern.d
    a, b = last.shape[-1], first.shape[-2]
    e = (residual * scale).reshape(-1)
    # X = E B^T (d, b) and Y = E^T A (d, a): scatter-adds over the observed entries as sparse products.
    x = pattern.matmul(e, right_flat).view(batch, d, b)
    y = pattern.matmul(e, last.reshape(batch * d, a).contiguous(), transpose=True).view(batch, d, a)
    if product is None:
        grads = [y.mT, x]
    else:
        grad_last = x @ product.mT
        grad_first = (y @ product).mT
        grad_middle = _backprop(middle, mids[:-1], last.mT @ x)
        grads = [grad_first, *grad_middle, grad_last]
    loss = 0.5 * residual.pow(2).sum(-1) * scale
    return loss, grads


def _gradients_dense(factors: Sequence[Tensor], problem: CompletionProblem, mask_f: Tensor, scale: float):
    prefixes = _prefixes(factors)
    residual = (prefixes[-1] - problem.target) * mask_f
    loss = 0.5 * residual.pow(2).sum((-2, -1)) * scale
    grads = _backprop(factors, prefixes[:-1], residual * scale)
    return loss, grads


def _test_loss(factorization: Factorization, problem: CompletionProblem, unobserved_f: Tensor, scale: float) -> Tensor:
    residual = (factorization.end_to_end() - problem.target) * unobserved_f
    return 0.5 * residual.pow(2).sum((-2, -1)) * scale


# ---------------------------------------------------------------------------------------------
# training


class DivergenceError(FloatingPointError):
    """Training diverged (NaN/inf or a blown-up loss); the message names the step and the member."""


@dataclass(frozen=True)
class TrainConfig:
    """Full-batch gradient descent for deep matrix completion.

    Attributes:
        lr: step ``eta`` > 0 (for the mean-normalised loss).
        gamma: outer factors step ``gamma * eta``; ``gamma = 0`` freezes them. Must be >= 0.
        max_steps: at most this many updates.
        tol: a member stops once its train loss is < ``tol`` (``None``: never).
        target_test_loss: a member also stops at the first logged step whose recovery error is
            <= this value (``None``: never); used to time "reaching the same recovery error".
        weight_decay: ``lambda`` >= 0; ``W <- (1 - step lambda) W - step grad``.
        log_every: record train/test loss and wall time every this many steps (and at the end).
        residual: how a step evaluates the masked residual.
            "dense": form ``f`` and ``Omega * (f - Phi)`` as ``(d, d)`` tensors (any chain);
            "observed": gather rows of ``U M`` and ``V`` at the observed entries, never forming a
            ``(d, d)`` tensor, and scatter the gradients with sparse products;
            "sampled": form the thin product ``(U M) V^T`` with one BLAS call but read it only at
            the observed entries, scatter as in "observed";
            "auto": "observed" for thin chains when fewer than ``d^2 / 16`` entries are observed,
            else "dense" (measured fastest on CPUs; see ``_Stepper._choose_mode``).
        divergence_factor: stop with :class:`DivergenceError` when the train loss exceeds this
            multiple of its initial value.
        progress: show a tqdm bar.
        threads: torch intra-op threads while training (``None``: leave torch's setting). Small
            problems run fastest with 1: their kernels are too short to amortise a thread team,
            and on a busy machine the team's synchronisation dominates. Restored afterwards.
    """

    lr: float
    gamma: float = 1.0
    max_steps: int = 10_000
    tol: float | None = None
    target_test_loss: float | None = None
    weight_decay: float = 0.0
    log_every: int = 100
    residual: str = "auto"
    divergence_factor: float = 1e6
    progress: bool = False
    threads: int | None = None

    def __post_init__(self):
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive and finite, got {self.lr!r}")
        if not (isinstance(self.gamma, (int, float)) and self.gamma >= 0 and math.isfinite(self.gamma)):
            raise ValueError(f"gamma must be >= 0 and finite (0 freezes the outer factors), got {self.gamma!r}")
        _check_int("max_steps", self.max_steps, 0)
        _check_int("log_every", self.log_every, 1)
        if self.tol is not None and not self.tol > 0:
            raise ValueError(f"tol must be positive or None, got {self.tol!r}")
        if self.target_test_loss is not None and not self.target_test_loss > 0:
            raise ValueError(f"target_test_loss must be positive or None, got {self.target_test_loss!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.residual not in _RESIDUAL_MODES:
            raise ValueError(f"residual must be one of {_RESIDUAL_MODES}, got {self.residual!r}")
        if not self.divergence_factor > 1:
            raise ValueError(f"divergence_factor must be > 1, got {self.divergence_factor!r}")
        if self.threads is not None:
            _check_int("threads", self.threads)


@dataclass
class CompletionResult:
    """What :func:`train` returns.

    Attributes:
        history: tidy DataFrame, one row per member and logged step: ``member``, ``step``,
            ``train_loss``, ``test_loss`` (recovery error), ``wall_time`` (seconds of training
            so far, evaluation excluded) and any columns an observer adds.
        steps: updates each member took before it stopped, ``(B,)``.
        converged: whether the member reached ``tol`` (or ``target_test_loss``), ``(B,)``.
        final_train_loss, final_test_loss: at the member's last step, ``(B,)``.
        wall_time: seconds of training for the whole batch (evaluation excluded).
        factorization: the final factors.
    """

    history: pd.DataFrame
    steps: np.ndarray
    converged: np.ndarray
    final_train_loss: np.ndarray
    final_test_loss: np.ndarray
    wall_time: float
    factorization: Factorization
    kind: str = ""
    extra: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """One row per member."""
        return pd.DataFrame(
            {
                "member": np.arange(len(self.steps)),
                "kind": self.kind,
                "steps": self.steps,
                "converged": self.converged,
                "train_loss": self.final_train_loss,
                "test_loss": self.final_test_loss,
                "wall_time": self.wall_time,
            }
        )

    def time_to_test_loss(self, level: float, member: int = 0) -> float:
        """Wall time of the first logged step at which ``test_loss <= level`` (``nan`` if never)."""
        h = self.history[(self.history.member == member) & (self.history.test_loss <= level)]
        return float(h.wall_time.iloc[0]) if len(h) else float("nan")

    def steps_to_test_loss(self, level: float, member: int = 0) -> float:
        h = self.history[(self.history.member == member) & (self.history.test_loss <= level)]
        return float(h.step.iloc[0]) if len(h) else float("nan")


class _Stepper:
    """One gradient-descent step at a time on a private copy of a factorisation."""

    def __init__(self, factorization: Factorization, problem: CompletionProblem, config: TrainConfig):
        if factorization.batch != problem.batch:
            raise ValueError(f"factorisation has {factorization.batch} members but the problem has {problem.batch}")
        if factorization.factors[0].shape[-1] != problem.d or factorization.factors[-1].shape[-2] != problem.d:
            raise ValueError(
                f"the factorisation maps {factorization.factors[0].shape[-1]} -> "
                f"{factorization.factors[-1].shape[-2]} but the target is {problem.d} x {problem.d}"
            )
        if factorization.factors[0].dtype != problem.target.dtype:
            raise ValueError(
                f"dtype mismatch: factors are {factorization.factors[0].dtype}, target is {problem.target.dtype}"
            )
        self.factors = [w.clone() for w in factorization.factors]
        self.template = factorization
        self.problem = problem
        self.config = config
        self.scale = 1.0 / (problem.d * problem.d)
        dtype = problem.target.dtype
        self.unobserved_f = (~problem.mask).to(dtype)
        self.mode = self._choose_mode(factorization, problem, config.residual)
        self.mask_f = problem.mask.to(dtype) if self.mode == "dense" else None
        self.pattern = _ObservedPattern(problem) if self.mode in ("observed", "sampled") else None
        self.lrs = [config.lr * (config.gamma if o else 1.0) for o in factorization.outer]

    @staticmethod
    def _choose_mode(fact: Factorization, problem: CompletionProblem, mode: str) -> str:
        if mode in ("observed", "sampled") and len(fact.factors) < 2:
            raise ValueError(f"residual={mode!r} needs a chain of at least two factors, got {len(fact.factors)}")
        if mode != "auto":
            return mode
        if not fact.is_thin():
            return "dense"  # a full-width chain forms (d, d) products anyway
        # Measured on CPUs (benchmarks/matrix_completion.py reports all three per run): torch's
        # gathers and sparse products cost 10-30 BLAS multiply-adds per observed entry, so the
        # observed-entries residual only pays when few entries are observed (p < 1/16).
        return "observed" if problem.n_observed * 16 < problem.d**2 else "dense"

    def gradients(self) -> tuple[Tensor, list[Tensor]]:
        if self.mode in ("observed", "sampled"):
            return _gradients_observed(self.factors, self.pattern, self.scale, self.mode == "sampled")
        return _gradients_dense(self.factors, self.problem, self.mask_f, self.scale)

    def apply(self, grads: Sequence[Tensor], active: Tensor | None) -> None:
        wd = self.config.weight_decay
        for w, g, lr in zip(self.factors, grads, self.lrs):
            if lr == 0.0:
                continue  # gamma = 0: frozen, bit-identical
            step = g if wd == 0.0 else g + wd * w
            if active is not None:
                step = step * active.view(-1, 1, 1)
            w.sub_(lr * step)

    def test_loss(self) -> Tensor:
        return _test_loss(self.factorization(), self.problem, self.unobserved_f, self.scale)

    def factorization(self) -> Factorization:
        return replace(self.template, factors=tuple(self.factors))


def train(
    factorization: Factorization,
    problem: CompletionProblem,
    config: TrainConfig,
    observer: Callable[[int, Tensor], dict[str, Sequence[float]]] | None = None,
) -> CompletionResult:
    """Gradient descent on the masked mean loss for every member of the batch.

    Args:
        factorization: the starting point (not modified).
        problem: targets and masks, same batch size.
        config: step sizes, stopping rules and logging.
        observer: optional ``observer(step, end_to_end)`` called at logged steps with the
            ``(B, d, d)`` product; it returns a dict of per-member values added to ``history``.

    Raises:
        DivergenceError: the train loss became NaN/inf or exceeded ``divergence_factor`` times its
            initial value; the message names the step and the member.
    """
    with _threads(config.threads):
        return _train(factorization, problem, config, observer)


@contextlib.contextmanager
def _threads(n: int | None):
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(factorization, problem, config, observer) -> CompletionResult:
    stepper = _Stepper(factorization, problem, config)
    batch = problem.batch
    active = torch.ones(batch, dtype=torch.bool, device=problem.target.device)
    steps = np.full(batch, config.max_steps)
    converged = np.zeros(batch, dtype=bool)
    final_train = np.full(batch, np.nan)
    final_test = np.full(batch, np.nan)
    rows: list[dict] = []
    wall = 0.0
    initial = None
    bar = tqdm(total=config.max_steps, disable=not config.progress, desc=f"{factorization.kind} GD")
    for t in range(config.max_steps + 1):
        tic = time.perf_counter()
        loss, grads = stepper.gradients()
        loss_np = loss.detach().cpu().numpy().astype(np.float64)
        wall += time.perf_counter() - tic
        if initial is None:
            initial = np.maximum(loss_np, np.finfo(np.float64).tiny)
        bad = ~np.isfinite(loss_np) | (loss_np > config.divergence_factor * initial)
        bad &= active.cpu().numpy()
        if bad.any():
            member = int(np.flatnonzero(bad)[0])
            raise DivergenceError(
                f"{factorization.kind} factorisation diverged at step {t} (member {member}, train loss "
                f"{loss_np[member]:.3g}, initial {initial[member]:.3g}); lower lr (now {config.lr}) or gamma"
            )
        act = active.cpu().numpy()
        newly_done = act & (loss_np < config.tol) if config.tol is not None else np.zeros(batch, bool)
        log_now = t % config.log_every == 0 or t == config.max_steps or newly_done.any()
        if log_now:
            test_np = stepper.test_loss().detach().cpu().numpy().astype(np.float64)
            extra = observer(t, stepper.factorization().end_to_end()) if observer is not None else {}
            for i in range(batch):
                if act[i]:
                    row = {"member": i, "step": t, "train_loss": loss_np[i], "test_loss": test_np[i], "wall_time": wall}
                    row.update({k: float(v[i]) for k, v in extra.items()})
                    rows.append(row)
            final_test = np.where(act, test_np, final_test)
            if config.target_test_loss is not None:
                newly_done |= act & (test_np <= config.target_test_loss)
        final_train = np.where(act, loss_np, final_train)
        if newly_done.any():
            steps[newly_done] = t
            converged |= newly_done
            if not log_now:
                final_test = np.where(newly_done, stepper.test_loss().cpu().numpy(), final_test)
            active &= ~torch.as_tensor(newly_done, device=active.device)
            if not bool(active.any()):
                break
        if t == config.max_steps:
            break
        tic = time.perf_counter()
        stepper.apply(grads, None if bool(active.all()) else active)
        wall += time.perf_counter() - tic
        bar.update(1)
    bar.close()
    history = pd.DataFrame(rows)
    return CompletionResult(
        history=history,
        steps=steps,
        converged=converged,
        final_train_loss=final_train,
        final_test_loss=final_test,
        wall_time=wall,
        factorization=stepper.factorization(),
        kind=factorization.kind,
    )


def track_compression(
    original: Factorization,
    compressed: Factorization,
    problem: CompletionProblem,
    config: TrainConfig,
    directions: int = 2,
) -> pd.DataFrame:
    """Run an original and its compression side by side (member 0) and compare them.

    Both take the same number of steps with the same ``config`` (``gamma`` applies to the
    compressed outer factors; the original has none). Each model's step is timed separately.
    Logged every ``config.log_every`` steps: ``step``, ``train_loss_original``,
    ``train_loss_compressed``, ``test_loss_*``, ``time_original``, ``time_compressed`` (cumulative
    seconds of stepping), ``distance`` = ``||f - f~||_F``, and for ``k < directions`` the
    coordinates ``u_k^T f v_k`` of both trajectories along the target's top singular pairs
    (``coord{k}_original``, ``coord{k}_compressed``).
    """
    with _threads(config.threads):
        return _track(original, compressed, problem, config, directions)


def _track(original, compressed, problem, config, directions) -> pd.DataFrame:
    problem = problem.member(0)
    runs = {"original": _Stepper(original.member(0), problem, config), "compressed": _Stepper(compressed.member(0), problem, config)}
    u, _, vh = torch.linalg.svd(problem.target[0])
    u, v = u[:, :directions], vh[:directions].T
    times = {k: 0.0 for k in runs}
    rows = []
    for t in tqdm(range(config.max_steps + 1), disable=not config.progress, desc="original vs compressed"):
        losses, grads = {}, {}
        for name, s in runs.items():
            tic = time.perf_counter()
            loss, g = s.gradients()
            losses[name] = float(loss[0])
            grads[name] = g
            times[name] += time.perf_counter() - tic
            if not math.isfinite(losses[name]):
                raise DivergenceError(f"{name} factorisation diverged at step {t} (train loss {losses[name]})")
        if t % config.log_every == 0 or t == config.max_steps:
            f = {name: s.factorization().end_to_end()[0] for name, s in runs.items()}
            row = {"step": t, "distance": float(torch.linalg.matrix_norm(f["original"] - f["compressed"]))}
            for name, s in runs.items():
                row[f"train_loss_{name}"] = losses[name]
                row[f"test_loss_{name}"] = float(s.test_loss()[0])
                row[f"time_{name}"] = times[name]
                coords = ((u.T @ f[name]) * v.T).sum(-1)
                for k in range(directions):
                    row[f"coord{k}_{name}"] = float(coords[k])
            rows.append(row)
        if t == config.max_steps:
            break
        for name, s in runs.items():
            tic = time.perf_counter()
            s.apply(grads[name], None)
            times[name] += time.perf_counter() - tic
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# experiments of Sec. 3 (Fig. 1, Fig. 5, App. D.1): frozen configs -> tidy DataFrames


def rescale_lr(lr: float, d: int, d_ref: int) -> float:
    """The step for size ``d`` that matches step ``lr`` at size ``d_ref``: ``lr (d / d_ref)^(4/3)``.

    For a Gaussian-based target ``sigma_max(Phi) ~ 2 sqrt(d)``; the curvature of the mean loss of a
    depth-3 factorisation near the solution scales like ``sigma_max^(4/3) / d^2 ~ d^(-4/3)``, so this
    keeps ``lr`` at the same fraction of the stability limit when ``d`` is reduced.
    """
    _check_int("d", d)
    _check_int("d_ref", d_ref)
    return float(lr) * (d / d_ref) ** (4.0 / 3.0)


def _stored(config, seed: int, compute: Callable[[], pd.DataFrame], store) -> pd.DataFrame:
    """``compute()`` once per ``(config, seed)``; with a :class:`~compressible.store.ResultStore` the
    rows are stored and a rerun only loads them."""
    if store is None:
        return compute()
    record = store.run(config, [seed], lambda c, s: {"rows": compute().to_dict("records")}, progress=False)[0]
    return pd.DataFrame(record["rows"])


def _dtype(name: str) -> torch.dtype:
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return getattr(torch, name)


@dataclass(frozen=True)
class WidthSweepConfig:
    """Fig. 1: recovery error and iterations to tolerance of narrow factorisations vs width.

    One run trains, for every width, ``trials`` independent problems at once (batched). The
    width-``d`` model is the full-width factorisation.

    Attributes:
        depth: ``L`` (2 or 3 in the paper); lr: its step (paper: 1e2 for L=2, 3e2 for L=3).
    """

    d: int = 100
    true_rank: int = 10
    observed_fraction: float = 0.3
    depth: int = 3
    lr: float = 300.0
    epsilon: float = 1e-3
    widths: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    max_steps: int = 60_000
    tol: float = 1e-10
    trials: int = 5
    dtype: str = "float64"
    threads: int | None = 1

    def __post_init__(self):
        ProblemConfig(self.d, self.true_rank, self.observed_fraction)
        _check_int("depth", self.depth, 2)
        _check_int("trials", self.trials)
        bad = [w for w in self.widths if not (isinstance(w, int) and 1 <= w <= self.d)]
        if bad or not self.widths:
            raise ValueError(f"widths must be non-empty ints in [1, d={self.d}], got {self.widths}")
        _dtype(self.dtype)
        TrainConfig(lr=self.lr, max_steps=self.max_steps, tol=self.tol, threads=self.threads)


def pad_width(factorization: Factorization, width: int) -> Factorization:
    """Zero-pad the hidden widths of a chain to ``width`` (exact: padded units get zero gradient).

    In a chain ``F_{K-1} ... F_0`` a hidden unit whose row in ``F_k`` and column in ``F_{k+1}`` are
    zero contributes nothing to the product and receives a zero gradient, so it stays zero under
    gradient descent (and weight decay). Chains of different widths can therefore be trained
    together as one batch of the largest width.
    """
    factors = list(factorization.factors)
    padded = []
    for k, w in enumerate(factors):
        rows = w.shape[-2] if k == len(factors) - 1 else width
        cols = w.shape[-1] if k == 0 else width
        if rows < w.shape[-2] or cols < w.shape[-1]:
            raise ValueError(f"cannot pad factor {k} of shape {tuple(w.shape[-2:])} down to width {width}")
        out = w.new_zeros(w.shape[0], rows, cols)
        out[:, : w.shape[-2], : w.shape[-1]] = w
        padded.append(out)
    return replace(factorization, factors=tuple(padded))


def run_width_sweep(config: WidthSweepConfig, seed: int = 0, store=None) -> pd.DataFrame:
    """Rows ``depth, width, trial, steps, converged, train_loss, test_loss, wall_time``.

    Problem seeds are ``seed * 1000 + trial`` and init seeds ``seed * 1000 + 500 + trial``. All
    widths and trials run as one batch (narrow models zero-padded to the largest width with
    :func:`pad_width`); ``wall_time`` is that of the whole batch.
    """

    def compute() -> pd.DataFrame:
        dtype = _dtype(config.dtype)
        seeds = [seed * 1000 + i for i in range(config.trials)]
        init_seeds = [s + 500 for s in seeds]
        widths = list(config.widths)
        top = max(widths)
        problem = make_problem(
            ProblemConfig(config.d, config.true_rank, config.observed_fraction), seeds * len(widths), dtype=dtype
        )
        members = []
        for width in widths:
            if width == config.d:
                fact = full_width_factorization(config.d, config.depth, config.epsilon, init_seeds, dtype=dtype)
            else:
                fact = narrow_factorization(config.d, width, config.depth, config.epsilon, init_seeds, dtype=dtype)
            members.append(pad_width(fact, top))
        batch = Factorization(
            tuple(torch.cat([m.factors[k] for m in members]) for k in range(config.depth)), (False,) * config.depth, "narrow"
        )
        tc = TrainConfig(
            lr=config.lr, max_steps=config.max_steps, tol=config.tol, log_every=config.max_steps, threads=config.threads
        )
        df = train(batch, problem, tc).summary().drop(columns="kind")
        df["width"] = [w for w in widths for _ in seeds]
        df["trial"] = list(range(config.trials)) * len(widths)
        return df.drop(columns="member").assign(depth=config.depth)

    return _stored(config, seed, compute, store)


@dataclass(frozen=True)
class CompressionRaceConfig:
    """Fig. 5: the original full-width factorisation vs its compression with ``gamma`` in ``gammas``.

    Every model runs until its train loss is below its tolerance (paper: 1e-9 for the original,
    1e-13 for the compressed ones) or ``max_steps``. Wall time excludes evaluation; the
    compressed models' time includes building the compression (one gradient and one SVD).
    """

    d: int = 1000
    true_rank: int = 5
    observed_fraction: float = 0.2
    depth: int = 3
    epsilon: float = 1e-3
    lr: float = 5e3
    gammas: tuple[float, ...] = (0.0, 0.01)
    max_steps: int = 170_000
    max_steps_compressed: int | None = None
    tol_original: float = 1e-9
    tol_compressed: float = 1e-13
    log_every: int = 100
    dtype: str = "float32"
    threads: int | None = None
    include_original: bool = True

    def __post_init__(self):
        ProblemConfig(self.d, self.true_rank, self.observed_fraction)
        _check_int("depth", self.depth, 2)
        if 2 * self.true_rank >= self.d:
            raise ValueError(f"compression needs 2 r* < d, got r*={self.true_rank}, d={self.d}")
        _dtype(self.dtype)
        for g in self.gammas:
            TrainConfig(lr=self.lr, gamma=g)
        TrainConfig(lr=self.lr, max_steps=self.max_steps, tol=self.tol_original, log_every=self.log_every, threads=self.threads)


def run_compression_race(config: CompressionRaceConfig, seed: int = 0, store=None) -> pd.DataFrame:
    """Histories of every model, stacked: columns ``method`` ("original", "compressed γ=..."),
    ``gamma``, ``step``, ``train_loss``, ``test_loss``, ``wall_time``, ``setup_time``."""

    def compute() -> pd.DataFrame:
        dtype = _dtype(config.dtype)
        problem = make_problem(ProblemConfig(config.d, config.true_rank, config.observed_fraction), seed, dtype=dtype)
        original = full_width_factorization(config.d, config.depth, config.epsilon, seed + 500, dtype=dtype)
        with _threads(config.threads):
            tic = time.perf_counter()
            compressed = compressed_factorization(original, problem, config.true_rank)
            setup = time.perf_counter() - tic
        frames = []
        if config.include_original:
            tc = TrainConfig(
                lr=config.lr, max_steps=config.max_steps, tol=config.tol_original,
                log_every=config.log_every, threads=config.threads,
            )
            h = train(original, problem, tc).history
            frames.append(h.assign(method="original", gamma=float("nan"), setup_time=0.0))
        for gamma in config.gammas:
            tc = TrainConfig(
                lr=config.lr, gamma=gamma, max_steps=config.max_steps_compressed or config.max_steps,
                tol=config.tol_compressed, log_every=config.log_every, threads=config.threads,
            )
            h = train(compressed, problem, tc).history
            h = h.assign(method=f"compressed γ={gamma:g}", gamma=gamma, setup_time=setup)
            h["wall_time"] = h["wall_time"] + setup
            frames.append(h)
        return pd.concat(frames, ignore_index=True).drop(columns="member")

    return _stored(config, seed, compute, store)


@dataclass(frozen=True)
class RandomVsCompressedConfig:
    """App. D.1: compressed (width ``2 r``, gamma) vs randomly initialised narrow width ``2 r``,
    for every rank estimate ``r`` in ``ranks``; ``trials`` problems batched per run."""

    d: int = 1000
    true_rank: int = 5
    observed_fraction: float = 0.2
    depth: int = 3
    epsilon: float = 1e-3
    lr: float = 5e3
    gamma: float = 0.01
    ranks: tuple[int, ...] = (5, 8, 11, 14, 17, 20)
    trials: int = 5
    max_steps: int = 20_000
    tol: float = 1e-9
    dtype: str = "float32"
    threads: int | None = None

    def __post_init__(self):
        ProblemConfig(self.d, self.true_rank, self.observed_fraction)
        bad = [r for r in self.ranks if not (isinstance(r, int) and 1 <= r and 2 * r < self.d)]
        if bad or not self.ranks:
            raise ValueError(f"ranks must be non-empty ints with 1 <= r and 2r < d={self.d}, got {self.ranks}")
        _check_int("trials", self.trials)
        _dtype(self.dtype)
        TrainConfig(lr=self.lr, gamma=self.gamma, max_steps=self.max_steps, tol=self.tol, threads=self.threads)


def run_random_vs_compressed(config: RandomVsCompressedConfig, seed: int = 0, store=None) -> pd.DataFrame:
    """Rows ``method`` ("compressed"/"random"), ``rank``, ``trial``, ``steps``, ``converged``,
    ``train_loss``, ``test_loss``, ``wall_time`` (per batch of trials; compression setup included)."""

    def compute() -> pd.DataFrame:
        dtype = _dtype(config.dtype)
        seeds = [seed * 1000 + i for i in range(config.trials)]
        init_seeds = [s + 500 for s in seeds]
        problem = make_problem(ProblemConfig(config.d, config.true_rank, config.observed_fraction), seeds, dtype=dtype)
        original = full_width_factorization(config.d, config.depth, config.epsilon, init_seeds, dtype=dtype)
        frames = []
        for rank in tqdm(config.ranks, desc="rank estimates", leave=False):
            with _threads(config.threads):
                tic = time.perf_counter()
                comp = compressed_factorization(original, problem, rank)
                setup = time.perf_counter() - tic
            narrow = narrow_factorization(config.d, 2 * rank, config.depth, config.epsilon, init_seeds, dtype=dtype)
            for method, fact, gamma, extra in (("compressed", comp, config.gamma, setup), ("random", narrow, 1.0, 0.0)):
                tc = TrainConfig(
                    lr=config.lr, gamma=gamma, max_steps=config.max_steps, tol=config.tol,
                    log_every=config.max_steps, threads=config.threads,
                )
                res = train(fact, problem, tc)
                df = res.summary().rename(columns={"member": "trial"}).drop(columns="kind")
                df["wall_time"] = df["wall_time"] + extra
                frames.append(df.assign(method=method, rank=rank))
        return pd.concat(frames, ignore_index=True)

    return _stored(config, seed, compute, store)


@dataclass(frozen=True)
class FactorizationTrackConfig:
    """Fig. 4: full observation, ``gamma = 0``; the original and its compression side by side."""

    d: int = 1000
    true_rank: int = 10
    depth: int = 3
    epsilon: float = 1e-3
    lr: float = 1e3
    steps: int = 10_000
    log_every: int = 50
    dtype: str = "float32"
    threads: int | None = None

    def __post_init__(self):
        ProblemConfig(self.d, self.true_rank)
        if 2 * self.true_rank >= self.d:
            raise ValueError(f"compression needs 2 r* < d, got r*={self.true_rank}, d={self.d}")
        _dtype(self.dtype)
        TrainConfig(lr=self.lr, max_steps=self.steps, log_every=self.log_every, threads=self.threads)


def run_factorization_track(config: FactorizationTrackConfig, seed: int = 0, store=None) -> pd.DataFrame:
    """:func:`track_compression` at the Fig. 4 setting (``gamma = 0``, every entry observed)."""

    def compute() -> pd.DataFrame:
        dtype = _dtype(config.dtype)
        problem = make_problem(ProblemConfig(config.d, config.true_rank, 1.0), seed, dtype=dtype)
        original = full_width_factorization(config.d, config.depth, config.epsilon, seed + 500, dtype=dtype)
        compressed = compressed_factorization(original, problem, config.true_rank)
        tc = TrainConfig(lr=config.lr, gamma=0.0, max_steps=config.steps, log_every=config.log_every, threads=config.threads)
        return track_compression(original, compressed, problem, tc)

    return _stored(config, seed, compute, store)


def race_summary(history: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """Per method of :func:`run_compression_race`: final step and recovery error, and the wall time
    and step at which the recovery error first came within ``tolerance`` (relative) of the
    original's final recovery error; ``speedup`` = original's time / the method's time."""
    orig = history[history.method == "original"]
    if orig.empty:
        raise ValueError("race_summary needs the 'original' run in the history")
    level = float(orig.test_loss.iloc[-1]) * (1 + tolerance)
    rows = []
    for method, h in history.groupby("method", sort=False):
        hit = h[h.test_loss <= level]
        rows.append({
            "method": method,
            "steps": int(h.step.iloc[-1]),
            "final_test_loss": float(h.test_loss.iloc[-1]),
            "final_train_loss": float(h.train_loss.iloc[-1]),
            "step_to_target": float(hit.step.iloc[0]) if len(hit) else float("nan"),
            "time_to_target": float(hit.wall_time.iloc[0]) if len(hit) else float("nan"),
            "total_time": float(h.wall_time.iloc[-1]),
        })
    out = pd.DataFrame(rows)
    t_orig = float(out.loc[out.method == "original", "time_to_target"].iloc[0])
    out["speedup"] = t_orig / out["time_to_target"]
    return out


def random_vs_compressed_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per rank estimate: mean steps and wall time of each method and the ratios random / compressed.

    ``converged_*`` is the fraction of trials that reached the tolerance. A method that did not
    converge was stopped at ``max_steps``, so its steps and time (and the ratios) are lower bounds;
    ``ratio_is_lower_bound`` flags those rows.
    """
    g = results.groupby(["rank", "method"])[["steps", "wall_time", "test_loss", "converged"]].mean().unstack("method")
    out = pd.DataFrame({
        "rank": g.index,
        "steps_compressed": g[("steps", "compressed")].to_numpy(),
        "steps_random": g[("steps", "random")].to_numpy(),
        "time_compressed": g[("wall_time", "compressed")].to_numpy(),
        "time_random": g[("wall_time", "random")].to_numpy(),
        "test_loss_compressed": g[("test_loss", "compressed")].to_numpy(),
        "test_loss_random": g[("test_loss", "random")].to_numpy(),
        "converged_compressed": g[("converged", "compressed")].to_numpy(),
        "converged_random": g[("converged", "random")].to_numpy(),
    })
    out["steps_ratio"] = out.steps_random / out.steps_compressed
    out["time_ratio"] = out.time_random / out.time_compressed
    out["ratio_is_lower_bound"] = (out.converged_random < 1) & (out.converged_compressed == 1)
    return out
