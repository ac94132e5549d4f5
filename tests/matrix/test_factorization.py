"""Tests of compressible.matrix.factorization and .invariant: Theorem 2.1 to machine precision, exact gradients, init."""

import numpy as np
import pytest
import torch

from compressible.matrix.factorization import (
    end_to_end,
    factor_gradients,
    gradient_descent,
    half_mse,
    haar_orthogonal,
    scaled_orthogonal_init,
    truncated_gaussian_target,
)
from compressible.matrix.invariant import (
    InvariantSubspaceConfig,
    invariant_subspace_report,
    rho_recursion,
    run_invariant_subspaces,
)


def _setup(d=20, r=3, depth=3, eps=0.7, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = truncated_gaussian_target(d, d, r, generator=g)
    factors = scaled_orthogonal_init([d] * (depth + 1), eps, generator=g)
    return target, factors


@pytest.mark.parametrize("weight_decay", [0.0, 2e-3])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_passive_singular_values_follow_rho_recursion(weight_decay, depth):
    """Theorem 2.1: rho_l(t) from the scalar recursion is a singular value of W_l(t) with
    multiplicity >= d - 2r, to <= 1e-10 relative error in float64, for lambda = 0 and > 0."""
    d, r, lr, steps = 20, 3, 2.0, 40
    target, factors = _setup(d, r, depth)
    traj = gradient_descent(factors, target, steps, lr, weight_decay)
    rho = rho_recursion([0.7] * depth, lr, steps, weight_decay, loss_scale=1 / d**2)
    report = invariant_subspace_report(traj, rho, r)
    assert (report.multiplicity >= d - 2 * r).all()
    assert report.rel_error.max() <= 1e-10
    # the model did learn and rho did move, so the test is not vacuous
    assert traj.losses[-1] < 0.8 * traj.losses[0]
    assert abs(rho[-1, 0] - rho[0, 0]) > 1e-3


def test_passive_subspace_does_not_move():
    """Theorem 2.1: the singular subspace belonging to rho_l(t) (and its image) is fixed in t."""
    d, r = 16, 2
    target, factors = _setup(d, r, 3)
    traj = gradient_descent(factors, target, 30, 3.0, 1e-3)
    rho = rho_recursion([0.7] * 3, 3.0, 30, 1e-3, loss_scale=1 / d**2)
    report = invariant_subspace_report(traj, rho, r)
    assert report.subspace_drift.max() <= 1e-10


def test_report_detects_a_wrong_recursion():
    """The check can fail: a recursion with the wrong loss scale is caught."""
    d, r = 16, 2
    target, factors = _setup(d, r, 3)
    traj = gradient_descent(factors, target, 10, 3.0)
    wrong = rho_recursion([0.7] * 3, 3.0, 10, loss_scale=1.0)  # sum-loss scale on a mean loss
    report = invariant_subspace_report(traj, wrong, r)
    assert report.rel_error.max() > 1e-6


def test_active_subspace_is_fixed_while_vectors_rotate():
    result = run_invariant_subspaces(InvariantSubspaceConfig(d=12, rank=2, steps=20))
    assert result.subspace_angles.max() < 1e-10
    assert result.vector_angles[-1].max() > 0.05  # learning does rotate vectors inside it


def test_rho_recursion_closed_form_for_no_weight_decay_bounded_by_eps():
    rho = rho_recursion([1e-2, 2e-2, 3e-2], lr=10.0, steps=50)
    assert np.all(rho <= np.array([1e-2, 2e-2, 3e-2]) + 1e-18)
    assert np.all(np.diff(rho, axis=0) <= 0)


def test_factor_gradients_match_autograd():
    g = torch.Generator().manual_seed(1)
    dims = [7, 5, 6, 4]
    factors = [torch.randn(dims[i + 1], dims[i], generator=g, dtype=torch.float64) for i in range(3)]
    target = torch.randn(4, 7, generator=g, dtype=torch.float64)
    mask = (torch.rand(4, 7, generator=g) < 0.5).double()
    for reduction in ("mean", "sum"):
        leaves = [w.clone().requires_grad_(True) for w in factors]
        half_mse(end_to_end(leaves), target, mask, reduction).backward()
        ours = factor_gradients(factors, target, mask, reduction)
        for a, b in zip(ours, leaves):
            torch.testing.assert_close(a, b.grad, rtol=1e-12, atol=1e-14)


def test_haar_orthogonal_is_orthonormal_and_seeded():
    q = haar_orthogonal(9, 4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(q.T @ q, torch.eye(4, dtype=q.dtype), rtol=0, atol=1e-12)
    q2 = haar_orthogonal(9, 4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(q, q2)
    wide = haar_orthogonal(3, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(wide @ wide.T, torch.eye(3, dtype=wide.dtype), rtol=0, atol=1e-12)


def test_scaled_init_singular_values_equal_eps():
    factors = scaled_orthogonal_init([6, 6, 6], [0.5, 2.0], generator=torch.Generator().manual_seed(0))
    for w, eps in zip(factors, [0.5, 2.0]):
        torch.testing.assert_close(torch.linalg.svdvals(w), torch.full((6,), eps, dtype=w.dtype))


def test_truncated_target_has_exact_rank():
    t = truncated_gaussian_target(15, 12, 4, generator=torch.Generator().manual_seed(0))
    s = torch.linalg.svdvals(t)
    assert s[3] > 1e-3 and s[4] < 1e-12


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dims=[5], epsilon=1.0), "at least two sizes"),
        (dict(dims=[5, 0, 5], epsilon=1.0), "positive"),
        (dict(dims=[5, 5, 5], epsilon=[1.0]), "2 init scales|1 init scales"),
        (dict(dims=[5, 5], epsilon=-1.0), "positive and finite"),
    ],
)
def test_init_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scaled_orthogonal_init(**kwargs)


def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match="d - 2\\*rank > 0"):
        InvariantSubspaceConfig(d=6, rank=3)
    with pytest.raises(ValueError, match="reduction must be one of"):
        half_mse(torch.zeros(2, 2), torch.zeros(2, 2), reduction="avg")
    with pytest.raises(ValueError, match="rank must be in"):
        truncated_gaussian_target(4, 4, 5)
    with pytest.raises(ValueError, match="do not chain"):
        end_to_end([torch.zeros(3, 4), torch.zeros(2, 5)])


def test_divergence_stops_with_step_number():
    target, factors = _setup(10, 2, 3, eps=1.0)
    with pytest.raises(FloatingPointError, match="diverged at step \\d+"):
        gradient_descent(factors, 50 * target, 200, lr=1e5)
