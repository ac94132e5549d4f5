"""What the adapters learned: spectra, numerical ranks and subspace alignment (paper Figs. 2, 7).

Every function takes either a model with Deep LoRA adapters or tensors; ``Delta W`` always has
shape ``(m, n)`` (out x in) and includes the scaling.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from .model import adapter_layers

__all__ = [
    "delta_weights",
    "singular_values",
    "numerical_rank",
    "basis_alignment",
    "subspace_alignment",
    "subspace_residual",
    "DEEP_RANK_THRESHOLD",
]

DEEP_RANK_THRESHOLD = 1e-3
"""Spectral norm at or below which the paper counts a deep adapter's update as rank 0 (Fig. 7)."""


def delta_weights(model: nn.Module) -> dict[str, Tensor]:
    """``{module name: Delta W (m, n)}`` for every adapter of ``model`` (float32, detached)."""
    with torch.no_grad():
        return {name: layer.delta_weight().detach() for name, layer in adapter_layers(model).items()}


def _deltas(source: nn.Module | Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    return delta_weights(source) if isinstance(source, nn.Module) else source


def singular_values(source: nn.Module | Mapping[str, Tensor], k: int | None = None) -> dict[str, Tensor]:
    """``{name: singular values of Delta W, descending}`` (the top ``k`` if given), on the CPU."""
    out = {}
    for name, delta in _deltas(source).items():
        s = torch.linalg.svdvals(delta.detach()).cpu()
        out[name] = s if k is None else s[:k]
    return out


def _rank_of(delta: Tensor, rule: str, max_rank: int | None) -> int:
    if rule == "deep":
        if max_rank is None:
            raise ValueError("rule='deep' caps the rank at the adapter's width: pass max_rank")
        if float(torch.linalg.matrix_norm(delta, ord=2)) <= DEEP_RANK_THRESHOLD:
            return 0
        return min(int(torch.linalg.matrix_rank(delta)), max_rank)
    if rule == "lora":  # numpy's default: tol = S.max() * max(m, n) * eps(dtype)
        return int(torch.linalg.matrix_rank(delta))
    raise ValueError(f"rule must be 'deep' or 'lora', got {rule!r}")


def numerical_rank(
    source: Tensor | nn.Module | Mapping[str, Tensor],
    rule: str | None = None,
    max_rank: int | None = None,
) -> int | dict[str, int]:
    """Numerical rank of ``Delta W`` with the rules of the paper's Fig. 7.

    - ``rule="deep"`` (Deep LoRA): 0 if ``||Delta W||_2 <= 1e-3``, else ``min(matrix_rank, max_rank)``;
    - ``rule="lora"`` (vanilla LoRA): ``matrix_rank`` with numpy's default tolerance
      ``S.max() * max(m, n) * eps`` in ``Delta W``'s dtype.

    For a tensor, returns an int. For a model, returns ``{name: rank}`` and the rule and cap come
    from each adapter (``"lora"`` for LoRA adapters, ``"deep"`` with ``max_rank = config.rank``
    otherwise) unless given. For a mapping of tensors, ``rule`` (and ``max_rank`` for ``"deep"``)
    are required.
    """
    if isinstance(source, Tensor):
        return _rank_of(source.detach(), rule or "deep", max_rank)
    if isinstance(source, nn.Module):
        ranks = {}
        for name, layer in adapter_layers(source).items():
            layer_rule = rule or ("lora" if layer.config.init == "lora" else "deep")
            cap = max_rank if max_rank is not None else layer.config.rank
            with torch.no_grad():
                ranks[name] = _rank_of(layer.delta_weight(), layer_rule, cap)
        return ranks
    if rule is None:
        raise ValueError("numerical_rank of a mapping of tensors needs rule='deep' or 'lora'")
    return {name: _rank_of(d.detach(), rule, max_rank) for name, d in source.items()}


def subspace_alignment(delta_t: Tensor, delta_final: Tensor, k: int = 8) -> float:
    """Alignment of the top-``k`` left singular subspaces of two updates (paper Fig. 2).

    The largest singular value of ``U_t^T U_final``, with ``U (m, k)`` the top-``k`` left singular
    vectors: 1 when the subspaces share a direction, 0 when they are orthogonal.
    """
    if delta_t.shape != delta_final.shape:
        raise ValueError(f"shapes differ: {tuple(delta_t.shape)} vs {tuple(delta_final.shape)}")
    if not 1 <= k <= min(delta_t.shape):
        raise ValueError(f"k must be in [1, {min(delta_t.shape)}], got {k}")
    u_t = torch.linalg.svd(delta_t.detach().double(), full_matrices=False).U[:, :k]
    u_f = torch.linalg.svd(delta_final.detach().double(), full_matrices=False).U[:, :k]
    return basis_alignment(u_t, u_f)


def basis_alignment(u_t: Tensor, u_final: Tensor) -> float:
    """Largest singular value of ``U_t^T U_final`` for orthonormal bases ``(m, k)``: the Fig. 2
    alignment of two subspaces given by their bases (what :func:`subspace_alignment` computes from
    the updates themselves; a training loop that keeps only the bases calls this)."""
    if u_t.shape != u_final.shape:
        raise ValueError(f"bases must have the same shape (m, k), got {tuple(u_t.shape)} and {tuple(u_final.shape)}")
    return float(torch.linalg.matrix_norm(u_t.T @ u_final, ord=2))


def subspace_residual(basis: Tensor, target: Tensor) -> float:
    """How far the columns of ``target (d, k)`` reach outside the column span of ``basis (d, w)``.

    ``||(I - P) target||_2 / ||target||_2`` in float64, with ``P`` the orthogonal projector onto the
    span of ``basis`` (full column rank). For orthonormal ``target`` it is the sine of the largest
    principal angle between ``span(target)`` and its projection: 0 when ``span(basis)`` contains it.
    Used to check that the outer factors of the compressed initialisation contain the top ``r/2``
    singular subspaces of the gradient (``left`` against ``U_h``, ``right`` against ``V_h``).
    """
    if basis.dim() != 2 or target.dim() != 2 or basis.shape[0] != target.shape[0]:
        raise ValueError(
            f"basis (d, w) and target (d, k) must be matrices with the same number of rows, "
            f"got {tuple(basis.shape)} and {tuple(target.shape)}"
        )
    q = torch.linalg.qr(basis.detach().double()).Q
    x = target.detach().double()
    outside = x - q @ (q.T @ x)
    return float(torch.linalg.matrix_norm(outside, ord=2) / torch.linalg.matrix_norm(x, ord=2))
