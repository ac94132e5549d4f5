"""Beyond linear factorisations: low-rank gradients of a small ReLU network (paper Sec. 5, Fig. 9).

The model is the three-layer network ``f(Theta) = W_3 sigma(W_2 sigma(W_1))`` (the input is the
identity, so ``f`` is a ``(d, d)`` matrix), with ``sigma`` = ReLU applied entrywise, fitted to a
rank-``r*`` target by the mean-normalised loss ``1/2 ||f - Phi||_F^2 / d^2``. With the linear
activation this is the depth-3 deep matrix factorisation of Sec. 2, whose gradient with respect to
``W_2`` has rank ``<= r*``. With ReLU at small initialisation the gradient is no longer exactly
low-rank, but its top ``r*`` singular values still separate from the rest of the spectrum.
Gradients are computed with autograd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .problems import low_rank_target
from .factorization import scaled_orthogonal_init

__all__ = ["NonlinearConfig", "network_output", "middle_gradient", "gradient_spectra", "spectral_gap"]

_ACTIVATIONS = ("relu", "linear")


@dataclass(frozen=True)
class NonlinearConfig:
    """The Fig. 9 experiment.

    Attributes:
        d: width; target and factors are ``(d, d)``.
        true_rank: ``r*`` of the target, ``1 <= r* < d``.
        epsilon: init scale of every factor, ``W_l(0) = eps Q_l``.
        activation: "relu" or "linear".
        lr: gradient-descent step (mean-normalised loss), used only for spectra after step 0.
    """

    d: int = 100
    true_rank: int = 10
    epsilon: float = 1e-3
    activation: str = "relu"
    lr: float = 1e3

    def __post_init__(self):
        if not (isinstance(self.d, int) and self.d >= 2):
            raise ValueError(f"d must be an int >= 2, got {self.d!r}")
        if not (isinstance(self.true_rank, int) and 1 <= self.true_rank < self.d):
            raise ValueError(f"true_rank must be an int in [1, d={self.d}), got {self.true_rank!r}")
        if not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise ValueError(f"epsilon must be positive and finite, got {self.epsilon!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {self.activation!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive and finite, got {self.lr!r}")


def network_output(factors: Sequence[Tensor], activation: str = "relu") -> Tensor:
    """``W_3 sigma(W_2 sigma(W_1))`` for factors ``[W_1, W_2, W_3]``, each ``(d, d)``."""
    if len(factors) != 3:
        raise ValueError(f"the Fig. 9 network has three factors, got {len(factors)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    sigma = torch.relu if activation == "relu" else (lambda x: x)
    w1, w2, w3 = factors
    return w3 @ sigma(w2 @ sigma(w1))


def _loss(factors: Sequence[Tensor], target: Tensor, activation: str) -> Tensor:
    return 0.5 * (network_output(factors, activation) - target).pow(2).sum() / target.numel()


def middle_gradient(factors: Sequence[Tensor], target: Tensor, activation: str = "relu") -> Tensor:
    """``grad_{W_2}`` of ``1/2 ||f - Phi||^2 / d^2`` by autograd, shape ``(d, d)``."""
    leaves = [w.detach().clone().requires_grad_(True) for w in factors]
    (grad,) = torch.autograd.grad(_loss(leaves, target, activation), [leaves[1]])
    return grad


def gradient_spectra(
    config: NonlinearConfig,
    seed: int,
    steps: Sequence[int] = (0,),
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> pd.DataFrame:
    """Singular values of ``grad_{W_2}`` at the given gradient-descent steps.

    The target comes from ``torch.Generator().manual_seed(seed)``, then the factors from the same
    generator. Returns a tidy DataFrame with columns ``activation``, ``step``, ``index`` (1-based),
    ``singular_value`` and ``normalised`` (divided by the largest one at that step).
    """
    steps = sorted({int(s) for s in steps})
    if not steps or steps[0] < 0:
        raise ValueError(f"steps must be non-negative integers, got {steps}")
    gen = torch.Generator().manual_seed(seed)
    target = low_rank_target(config.d, config.true_rank, generator=gen, dtype=dtype, device=device)
    factors = [
        w.requires_grad_(True)
        for w in scaled_orthogonal_init([config.d] * 4, config.epsilon, generator=gen, dtype=dtype, device=device)
    ]
    rows = []
    for t in range(steps[-1] + 1):
        loss = _loss(factors, target, config.activation)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"gradient descent diverged at step {t}; lower lr (now {config.lr})")
        grads = torch.autograd.grad(loss, factors)
        if t in steps:
            s = torch.linalg.svdvals(grads[1]).double().cpu().numpy()
            for i, value in enumerate(s):
                rows.append(
                    {
                        "activation": config.activation,
                        "step": t,
                        "index": i + 1,
                        "singular_value": float(value),
                        "normalised": float(value / s[0]) if s[0] > 0 else float("nan"),
                    }
                )
        with torch.no_grad():
            for w, g in zip(factors, grads):
                w -= config.lr * g
    return pd.DataFrame(rows)


def spectral_gap(singular_values: Sequence[float] | np.ndarray, rank: int) -> float:
    """``sigma_r / sigma_{r+1}`` of a descending spectrum (``inf`` when ``sigma_{r+1} = 0``)."""
    s = np.asarray(singular_values, dtype=np.float64)
    if not (1 <= rank < len(s)):
        raise ValueError(f"rank must lie in [1, {len(s) - 1}] for a spectrum of length {len(s)}, got {rank}")
    return float(s[rank - 1] / s[rank]) if s[rank] > 0 else float("inf")
