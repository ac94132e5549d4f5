"""Chains of factors for deep matrix completion: full-width, narrow and compressed (paper Sec. 3).

A :class:`Factorization` holds ``B`` independent chains of factors ``f = F_{K-1} ... F_0`` (each
factor of shape ``(B, d_k, d_{k-1})``), so several trials run as one tensor program. Three chains
are built here:

- :func:`full_width_factorization`: ``L`` square ``(d, d)`` factors ``eps * Q_l`` (the original);
- :func:`narrow_factorization`: width ``w``, factors ``(w, d), (w, w), ..., (d, w)`` that are
  ``eps``-scaled slices of Haar orthogonal matrices (the "random" baseline of App. D.1);
- :func:`compressed_factorization`: the Sec. 2.3 construction ``U W~_L ... W~_1 V^T`` as a chain of
  ``L + 2`` factors whose first (``V^T``) and last (``U``) factors are *outer* and train with the
  discrepant step ``gamma * lr`` (``gamma = 0`` freezes them).

It also holds the kernels a gradient step needs: the training loss

    ``train loss = 1/2 * ||Omega * (f - Phi)||_F^2 / d^2``

and its gradient with respect to every factor, either with the dense masked residual
(:func:`gradients_dense`, ``O(d^2 (a + b))`` for a thin chain whose first factor is ``(b, d)`` and
last ``(d, a)``) or at the observed entries only (:func:`gradients_observed`,
``O(|Omega| (a + b) + d a b + L (2r)^3)``), which never forms a ``(d, d)`` matrix: the residual is
evaluated at the observed entries, ``r_ij = U_i M V_j^T - Phi_ij`` (gathered rows), and the
gradients are scatter-adds over the observed entries (sparse products).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .compression import compress_from_gradient
from .factorization import as_epsilons, haar_orthogonal
from .problems import CompletionProblem, check_int, seed_list

__all__ = [
    "Factorization",
    "full_width_factorization",
    "narrow_factorization",
    "compressed_factorization",
    "pad_width",
    "masked_residual_dense",
    "masked_residual_observed",
    "ObservedPattern",
    "gradients_dense",
    "gradients_observed",
    "masked_test_loss",
]


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
    for seed in seed_list(seeds):
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
    *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
) -> Factorization:
    """``L`` square factors ``W_l(0) = eps_l Q_l`` per seed; ``B = len(seeds)``."""
    check_int("d", d)
    check_int("depth", depth)
    eps = as_epsilons(epsilon, depth)
    factors = _init_chain([d] * (depth + 1), eps, seeds, dtype, device)
    return Factorization(factors, (False,) * depth, "full")


def narrow_factorization(
    d: int,
    width: int,
    depth: int,
    epsilon: float | Sequence[float],
    seeds: int | Sequence[int],
    *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
) -> Factorization:
    """Width-``w`` factors ``(w, d), (w, w), ..., (d, w)``, each an ``eps``-scaled orthogonal slice.

    All factors train at the full step (none is outer), as for any narrow network.
    """
    check_int("d", d)
    check_int("depth", depth, 2)
    if not (isinstance(width, int) and 1 <= width <= d):
        raise ValueError(f"width must be an int in [1, d={d}], got {width!r}")
    eps = as_epsilons(epsilon, depth)
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
    return _observed_forward(factorization.factors, ObservedPattern(problem))[0]


class ObservedPattern:
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


def _observed_forward(factors: Sequence[Tensor], pattern: ObservedPattern, sampled: bool = False):
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


def gradients_observed(factors: Sequence[Tensor], pattern: ObservedPattern, scale: float, sampled: bool = False):
    """Loss ``(B,)`` and gradients of every factor, evaluating the residual at the observed entries only.

    ``scale`` multiplies the loss (``1 / d^2`` for the mean loss); ``sampled`` forms the thin
    product with one BLAS call and reads it at the observed entries instead of gathering rows.
    """
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


def gradients_dense(factors: Sequence[Tensor], problem: CompletionProblem, mask_f: Tensor, scale: float):
    """Loss ``(B,)`` and gradients of every factor from the dense masked residual (``mask_f``: the mask as floats)."""
    prefixes = _prefixes(factors)
    residual = (prefixes[-1] - problem.target) * mask_f
    loss = 0.5 * residual.pow(2).sum((-2, -1)) * scale
    grads = _backprop(factors, prefixes[:-1], residual * scale)
    return loss, grads


def masked_test_loss(factorization: Factorization, problem: CompletionProblem, unobserved_f: Tensor, scale: float) -> Tensor:
    """The recovery error ``(B,)``: the loss on the unobserved entries (``unobserved_f``: ``1 - Omega`` as floats)."""
    residual = (factorization.end_to_end() - problem.target) * unobserved_f
    return 0.5 * residual.pow(2).sum((-2, -1)) * scale
