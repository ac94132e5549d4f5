"""Tests for compressible.matrix.nonlinear: gradients of the Fig. 9 network."""

import numpy as np
import pytest
import torch

from compressible.matrix.factorization import factor_gradients, scaled_orthogonal_init
from compressible.matrix.nonlinear import NonlinearConfig, gradient_spectra, middle_gradient, network_output, spectral_gap


pytestmark = pytest.mark.usefixtures("one_thread")


def _factors_and_target(d=20, rank=3, eps=1e-2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(d, rank, generator=gen, dtype=torch.float64) @ torch.randn(rank, d, generator=gen, dtype=torch.float64)
    return scaled_orthogonal_init([d] * 4, eps, generator=gen), target


def test_linear_autograd_gradient_equals_closed_form():
    """With the identity activation, grad W_2 = W_3^T R W_1^T / d^2 (the deep-factorisation formula)."""
    factors, target = _factors_and_target()
    auto = middle_gradient(factors, target, "linear")
    closed = factor_gradients(factors, target)[1]
    np.testing.assert_allclose(auto.numpy(), closed.numpy(), rtol=1e-12, atol=1e-20)


def test_relu_gradient_matches_hand_derivation():
    """grad W_2 = [relu'(W_2 h) * (W_3^T R)] h^T / d^2 with h = relu(W_1), R = f - Phi."""
    factors, target = _factors_and_target()
    w1, w2, w3 = factors
    h = torch.relu(w1)
    r = network_output(factors, "relu") - target
    expected = ((w2 @ h > 0).double() * (w3.T @ r)) @ h.T / target.numel()
    np.testing.assert_allclose(middle_gradient(factors, target, "relu").numpy(), expected.numpy(), rtol=1e-12, atol=1e-22)


def test_spectra_linear_exactly_low_rank_relu_not():
    rank = 4
    lin = gradient_spectra(NonlinearConfig(d=40, true_rank=rank, activation="linear"), seed=1)
    relu = gradient_spectra(NonlinearConfig(d=40, true_rank=rank, activation="relu"), seed=1)
    s_lin, s_relu = lin.singular_value.to_numpy(), relu.singular_value.to_numpy()
    assert s_lin[rank] < 1e-9 * s_lin[0]  # rank(grad) <= r* for the linear network
    assert s_relu[rank] > 1e-3 * s_relu[0]  # ReLU breaks exact low rank
    assert spectral_gap(s_lin, rank) > 1e8
    np.testing.assert_allclose(lin.normalised.iloc[0], 1.0)
    assert list(lin["index"][:3]) == [1, 2, 3]


def test_spectra_at_later_steps_and_same_seed():
    cfg = NonlinearConfig(d=20, true_rank=2, lr=10.0)
    a = gradient_spectra(cfg, seed=3, steps=[0, 5])
    b = gradient_spectra(cfg, seed=3, steps=[0, 5])
    assert sorted(a.step.unique()) == [0, 5]
    assert a.equals(b)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: NonlinearConfig(activation="tanh"), r"activation must be one of \('relu', 'linear'\), got 'tanh'"),
        (lambda: NonlinearConfig(d=10, true_rank=10), r"true_rank must be an int in \[1, d=10\), got 10"),
        (lambda: NonlinearConfig(epsilon=0.0), r"epsilon must be positive"),
        (lambda: spectral_gap([3.0, 2.0], 2), r"rank must lie in \[1, 1\]"),
        (lambda: network_output([torch.eye(3)] * 2), r"three factors, got 2"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
