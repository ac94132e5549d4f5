"""Tests for the deep matrix completion rooms of the matrix wing: compressible.matrix.problems
(targets, masks), compressible.matrix.chains (factorisations, the observed-entries residual) and
compressible.matrix.completion (the trainer, gamma semantics)."""

import math

import numpy as np
import pytest
import torch

from compressible.matrix.chains import (
    Factorization,
    compressed_factorization,
    full_width_factorization,
    masked_residual_dense,
    masked_residual_observed,
    narrow_factorization,
    pad_width,
)
from compressible.matrix.completion import DivergenceError, TrainConfig, train
from compressible.matrix.problems import CompletionProblem, ProblemConfig, low_rank_target, make_problem, random_mask
from compressible.matrix.factorization import factor_gradients


pytestmark = pytest.mark.usefixtures("one_thread")


def test_target_is_truncated_gaussian_svd():
    """The target is the top-r* SVD truncation of the seeded d x d standard Gaussian."""
    gen = torch.Generator().manual_seed(5)
    target = low_rank_target(20, 3, generator=gen)
    gaussian = torch.randn(20, 20, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    s_full = torch.linalg.svdvals(gaussian)
    s = torch.linalg.svdvals(target)
    np.testing.assert_allclose(s[:3].numpy(), s_full[:3].numpy(), rtol=1e-12)
    assert float(s[3]) < 1e-12 * float(s[0])
    assert torch.linalg.matrix_rank(target) == 3


def test_mask_has_exactly_floor_p_d2_entries():
    for d, p in [(10, 0.3), (7, 0.2), (13, 1.0), (11, 0.01)]:
        mask = random_mask(d, p, generator=torch.Generator().manual_seed(0))
        assert mask.dtype == torch.bool and int(mask.sum()) == math.floor(p * d * d)


def test_same_seed_same_problem_and_result():
    cfg = ProblemConfig(12, 2, 0.5)
    a, b = make_problem(cfg, [1, 2]), make_problem(cfg, [1, 2])
    assert torch.equal(a.target, b.target) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.target[0], a.target[1])
    tc = TrainConfig(lr=10.0, max_steps=50, log_every=10)
    r1 = train(full_width_factorization(12, 3, 0.1, [3, 4]), a, tc)
    r2 = train(full_width_factorization(12, 3, 0.1, [3, 4]), b, tc)
    for w1, w2 in zip(r1.factorization.factors, r2.factorization.factors):
        assert torch.equal(w1, w2)
    assert r1.history[["train_loss", "test_loss"]].equals(r2.history[["train_loss", "test_loss"]])


def _thin_random(problem, width=6, depth=3, seed=0):
    """A thin chain with O(1) entries, so the residual is not dominated by the target."""
    gen = torch.Generator().manual_seed(seed)
    d = problem.d
    dims = [d] + [width] * (depth - 1) + [d]
    factors = tuple(torch.randn(problem.batch, dims[l + 1], dims[l], generator=gen, dtype=torch.float64) for l in range(depth))
    return Factorization(factors, (True,) + (False,) * (depth - 2) + (True,), "narrow")


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_observed_residual_equals_dense_masked_residual(depth):
    problem = make_problem(ProblemConfig(15, 2, 0.3), [0, 1, 2])
    fact = _thin_random(problem, depth=depth)
    dense = masked_residual_dense(fact, problem)
    observed = masked_residual_observed(fact, problem)
    np.testing.assert_allclose(observed.numpy(), dense[problem.mask].view(3, -1).numpy(), rtol=1e-12, atol=1e-12)
    # the unobserved entries of the dense residual are exactly zero
    assert float(dense[~problem.mask].abs().max()) == 0.0


@pytest.mark.parametrize("mode", ["observed", "sampled"])
def test_observed_step_equals_dense_step(mode):
    """One GD step computed at observed entries equals the dense masked step, factor by factor."""
    problem = make_problem(ProblemConfig(15, 2, 0.3), [0, 1])
    fact = _thin_random(problem, depth=3)
    a = train(fact, problem, TrainConfig(lr=0.5, gamma=0.3, max_steps=3, log_every=1, residual=mode))
    b = train(fact, problem, TrainConfig(lr=0.5, gamma=0.3, max_steps=3, log_every=1, residual="dense"))
    for wa, wb in zip(a.factorization.factors, b.factorization.factors):
        np.testing.assert_allclose(wa.numpy(), wb.numpy(), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a.history.train_loss, b.history.train_loss, rtol=1e-11)


def test_gamma_zero_freezes_outer_factors_bit_identically():
    problem = make_problem(ProblemConfig(20, 2, 0.4), 0)
    original = full_width_factorization(20, 3, 1e-2, 1)
    comp = compressed_factorization(original, problem, 2)
    res = train(comp, problem, TrainConfig(lr=50.0, gamma=0.0, max_steps=30, log_every=10))
    final = res.factorization.factors
    assert torch.equal(final[0], comp.factors[0]) and torch.equal(final[-1], comp.factors[-1])
    assert all(not torch.equal(a, b) for a, b in zip(final[1:-1], comp.factors[1:-1]))


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_gamma_scales_the_outer_step(weight_decay):
    """One step: outer factors move by gamma*lr*(grad + wd W), inner ones by lr*(grad + wd W)."""
    problem = make_problem(ProblemConfig(16, 2, 0.5), 0)
    fact = _thin_random(problem, width=4, depth=3, seed=1).member(0)
    lr, gamma = 0.3, 0.05
    res = train(fact, problem, TrainConfig(lr=lr, gamma=gamma, max_steps=1, log_every=1, weight_decay=weight_decay))
    chain = [w[0] for w in fact.factors]
    grads = factor_gradients(chain, problem.target[0], problem.mask[0].double(), "mean")
    steps = [gamma * lr] + [lr] * (len(chain) - 2) + [gamma * lr]
    for w, g, s, new in zip(chain, grads, steps, res.factorization.factors):
        expected = (1 - s * weight_decay) * w - s * g
        np.testing.assert_allclose(new[0].numpy(), expected.numpy(), rtol=1e-12, atol=1e-14)
        assert float((new[0] - w).abs().max()) > 0


def test_batched_trials_equal_one_at_a_time():
    cfg = ProblemConfig(14, 2, 0.4)
    problem = make_problem(cfg, [0, 1, 2])
    original = full_width_factorization(14, 3, 0.1, [10, 11, 12])
    tc = TrainConfig(lr=20.0, gamma=0.05, max_steps=400, tol=1e-6, log_every=25)
    for fact in (original, compressed_factorization(original, problem, 2), narrow_factorization(14, 5, 3, 0.1, [10, 11, 12])):
        batched = train(fact, problem, tc)
        for i in range(3):
            single = train(fact.member(i), problem.member(i), tc)
            assert batched.steps[i] == single.steps[0]
            np.testing.assert_allclose(batched.final_test_loss[i], single.final_test_loss[0], rtol=1e-9)
            for wb, ws in zip(batched.factorization.factors, single.factorization.factors):
                np.testing.assert_allclose(wb[i].numpy(), ws[0].numpy(), rtol=1e-9, atol=1e-12)
            # the batch also logs the steps where another member stopped; compare the common ones
            merged = batched.history[batched.history.member == i].merge(single.history, on="step")
            assert len(merged) == len(single.history)
            np.testing.assert_allclose(merged.train_loss_x, merged.train_loss_y, rtol=1e-9)


def test_early_stop_at_tolerance_and_recovery():
    problem = make_problem(ProblemConfig(20, 2, 0.6), 0)
    res = train(full_width_factorization(20, 3, 0.1, 1), problem, TrainConfig(lr=20.0, max_steps=3000, tol=1e-7, log_every=100))
    assert res.converged[0] and res.steps[0] < 3000
    assert res.final_train_loss[0] < 1e-7
    assert res.history.step.iloc[-1] == res.steps[0]
    # depth-3 completion at 60 % observation generalises: recovery error far below the initial one
    assert res.final_test_loss[0] < 1e-3 * res.history.test_loss.iloc[0]


def test_divergence_stops_with_step_number():
    problem = make_problem(ProblemConfig(10, 2, 0.5), 0)
    with pytest.raises(DivergenceError, match=r"diverged at step \d+"):
        train(full_width_factorization(10, 3, 0.5, 0), problem, TrainConfig(lr=1e5, max_steps=200))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ProblemConfig(5, 6), r"true_rank r\*=6 exceeds d=5"),
        (lambda: ProblemConfig(5, 2, 0.0), r"observed_fraction must lie in \(0, 1\], got 0.0"),
        (lambda: ProblemConfig(5, 2, 1.5), r"observed_fraction must lie in \(0, 1\], got 1.5"),
        (lambda: ProblemConfig(5, 2, 0.01), r"observes floor\(p d\^2\) = 0 entries"),
        (lambda: CompletionProblem.from_tensors(torch.ones(4, 4), torch.zeros(4, 4, dtype=torch.bool)), r"observes no entry"),
        (lambda: TrainConfig(lr=0.0), r"lr must be positive"),
        (lambda: TrainConfig(lr=1.0, gamma=-0.1), r"gamma must be >= 0"),
        (lambda: TrainConfig(lr=1.0, residual="fast"), r"residual must be one of"),
        (lambda: TrainConfig(lr=1.0, threads=0), r"threads must be an int >= 1, got 0"),
        (lambda: narrow_factorization(10, 11, 3, 1e-3, 0), r"width must be an int in \[1, d=10\], got 11"),
        (
            lambda: compressed_factorization(full_width_factorization(10, 3, 1e-3, 0), make_problem(ProblemConfig(10, 2), 0), 5),
            r"2 \* rank < d = 10, got 5",
        ),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_float32_and_dtype_mismatch():
    problem32 = make_problem(ProblemConfig(12, 2, 0.5), 0, dtype=torch.float32)
    fact32 = full_width_factorization(12, 3, 0.1, 0, dtype=torch.float32)
    res = train(fact32, problem32, TrainConfig(lr=20.0, max_steps=20))
    assert res.factorization.factors[0].dtype == torch.float32
    with pytest.raises(ValueError, match="dtype mismatch"):
        train(full_width_factorization(12, 3, 0.1, 0), problem32, TrainConfig(lr=20.0, max_steps=2))


def test_zero_padded_widths_train_exactly_like_narrow_ones():
    """Padding hidden units with zeros changes nothing: they get zero gradient and stay zero."""
    problem = make_problem(ProblemConfig(12, 2, 0.5), 0)
    narrow = narrow_factorization(12, 3, 3, 0.1, 1)
    tc = TrainConfig(lr=10.0, max_steps=60, log_every=20)
    plain = train(narrow, problem, tc)
    padded = train(pad_width(narrow, 7), problem, tc)
    for a, b in zip(plain.factorization.factors, padded.factorization.factors):
        np.testing.assert_allclose(b[:, : a.shape[1], : a.shape[2]].numpy(), a.numpy(), rtol=1e-12, atol=1e-15)
        assert float(b.abs().sum()) == pytest.approx(float(a.abs().sum()), rel=1e-12)
    np.testing.assert_allclose(padded.final_test_loss, plain.final_test_loss, rtol=1e-12)
