"""Tests for compressible.matrix.compression: the Sec. 2.3 construction and Proposition 2.2."""

import numpy as np
import pytest
import scipy.linalg
import torch

from compressible.matrix.chains import compressed_factorization, full_width_factorization
from compressible.matrix.completion import TrainConfig
from compressible.matrix.problems import ProblemConfig, make_problem
from compressible.matrix.track import track_compression
from compressible.matrix.compression import (
    compress_from_gradient,
    compression_basis,
    init_scales,
    parameter_counts,
    prop22_bound,
)
from compressible.matrix.factorization import end_to_end, factor_gradients, scaled_orthogonal_init


pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(d=12, rank=2, depth=3, eps=1e-3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(d, rank, generator=gen, dtype=torch.float64)
    b = torch.randn(rank, d, generator=gen, dtype=torch.float64)
    target = a @ b
    factors = scaled_orthogonal_init([d] * (depth + 1), eps, generator=gen)
    return target, factors


def _projector(basis: np.ndarray) -> np.ndarray:
    return basis @ basis.T


def test_basis_spans_complement_of_nullspace_intersection():
    """V_{1,1} is orthonormal and spans (N(G_1) ∩ N(G_1^T W_1(0)))^⊥, computed independently by scipy."""
    d, rank, eps = 12, 2, 1e-3
    target, factors = _setup(d, rank, eps=eps)
    grad = factor_gradients(factors, target)[0]
    v = compression_basis(grad, factors[0], eps, rank).numpy()
    assert v.shape == (d, 2 * rank)
    np.testing.assert_allclose(v.T @ v, np.eye(2 * rank), atol=1e-12)

    g = grad.numpy()
    w1 = factors[0].numpy()
    # G_1 = rank-r part + (eps^5 / d^2) * orthogonal: the "null" spaces are the small-singular-value ones.
    rcond = 1e-6
    n1 = scipy.linalg.null_space(g, rcond=rcond)
    n2 = scipy.linalg.null_space(g.T @ w1, rcond=rcond)
    assert n1.shape[1] == d - rank and n2.shape[1] == d - rank
    coeffs = scipy.linalg.null_space(np.hstack([n1, -n2]), rcond=1e-8)
    intersection = scipy.linalg.orth(n1 @ coeffs[: n1.shape[1]])
    assert intersection.shape[1] == d - 2 * rank
    complement = scipy.linalg.null_space(intersection.T)
    np.testing.assert_allclose(_projector(v), _projector(complement), atol=1e-8)


def test_compressed_init_matches_original_on_the_subspace():
    """f~(0) = U_{L,1} (prod eps) V_{1,1}^T equals f(0) V V^T, and the inner factors are eps I."""
    target, factors = _setup(eps=1e-2)
    comp = compress_from_gradient(factors, target, rank=2)
    f0 = end_to_end(factors)
    np.testing.assert_allclose(comp.end_to_end().numpy(), (f0 @ comp.right @ comp.right.T).numpy(), atol=1e-15)
    for w in comp.inner:
        np.testing.assert_allclose(w.numpy(), 1e-2 * np.eye(4), atol=0)
    np.testing.assert_allclose(init_scales(factors), [1e-2] * 3, rtol=1e-12)


def test_prop22_compressed_trajectory_stays_within_bound():
    """Full observation, gamma = 0, float64: ||f(t) - f~(t)|| <= m * sum eps^2 along the whole trajectory."""
    d, rank, eps = 16, 2, 5e-2
    problem = make_problem(ProblemConfig(d, rank, 1.0), seeds=3)
    original = full_width_factorization(d, 3, eps, seeds=4)
    compressed = compressed_factorization(original, problem, rank)
    config = TrainConfig(lr=5.0, gamma=0.0, max_steps=300, log_every=10)
    df = track_compression(original, compressed, problem, config)
    bound = prop22_bound(d, rank, [eps] * 3)
    assert bound == pytest.approx((d - 2 * rank) * 3 * eps**2)
    assert (df.distance <= bound).all()
    # the model actually learned: the loss fell by orders of magnitude, and both losses agree
    assert df.train_loss_original.iloc[-1] < 1e-4 * df.train_loss_original.iloc[0]
    np.testing.assert_allclose(df.train_loss_compressed, df.train_loss_original, rtol=1e-4, atol=1e-8)
    # the gap is only the passive part, of size sqrt(m) * prod rho <= sqrt(m) eps^3
    assert df.distance.max() <= np.sqrt(d - 2 * rank) * eps**3 * (1 + 1e-6)


def test_parameter_counts_at_paper_setting():
    counts = parameter_counts(1000, 10, 3)
    assert counts == {"original": 3_000_000, "compressed": 1_200}
    assert parameter_counts(1000, 10, 3, train_outer=True)["compressed"] == 1_200 + 2 * 1000 * 20


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: parameter_counts(10, 5, 3), r"2 \* rank < d, got rank=5 for d=10"),
        (lambda: prop22_bound(10, 5, [1e-3]), r"d - 2r > 0, got d=10, rank=5"),
        (lambda: compression_basis(torch.zeros(6, 6), torch.eye(6), 1.0, 3), r"2 \* rank < d, got rank=3"),
        (lambda: compression_basis(torch.zeros(6, 6), torch.eye(6), 0.0, 1), r"epsilon must be positive"),
        (lambda: compress_from_gradient([torch.eye(6)], torch.zeros(6, 6), 1), r"depth L >= 2, got L=1"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
