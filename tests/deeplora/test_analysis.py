"""Analysis of learned updates: spectra, the paper's numerical-rank rules, subspace alignment.

Facts checked: singular values of every Delta W of a model; Fig. 7's rules (deep: 0 when
||Delta W||_2 <= 1e-3, else min(matrix_rank, r); LoRA: numpy's default tolerance); alignment is
the largest singular value of U_t^T U_final (1 for a shared direction, 0 for orthogonal subspaces,
invariant to signs and scaling).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compressible.deeplora import (
    DeepLoRAConfig,
    add_adapters,
    adapter_layers,
    delta_weights,
    numerical_rank,
    singular_values,
    subspace_alignment,
    subspace_residual,
)


class TwoLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 12)
        self.b = nn.Linear(12, 20)

    def forward(self, x):
        return self.b(self.a(x))


def low_rank(m, n, rank, scale=1.0, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(m, rank, generator=gen, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(n, rank, generator=gen, dtype=torch.float64)).Q
    return (scale * u @ torch.diag(torch.linspace(1, 0.5, rank, dtype=torch.float64)) @ v.T).to(dtype)


def test_delta_weights_and_singular_values_of_a_model():
    model = TwoLinear()
    add_adapters(model, DeepLoRAConfig(init="random", rank=4, epsilon=0.7, targets=["a", "b"]))
    deltas = delta_weights(model)
    assert list(deltas) == ["a", "b"] and deltas["a"].shape == (12, 16) and deltas["b"].shape == (20, 12)
    assert deltas["a"].dtype == torch.float32 and not deltas["a"].requires_grad
    spectra = singular_values(model)
    assert torch.allclose(spectra["a"], torch.linalg.svdvals(deltas["a"]))
    top = singular_values(model, k=3)
    assert top["b"].shape == (3,)
    # a width-4 product of eps-scaled orthogonal factors: 4 singular values eps^3, the rest 0
    assert torch.allclose(spectra["a"][:4], torch.full((4,), 0.7**3), rtol=1e-5)
    assert spectra["a"][4:].max() < 1e-6


def test_deep_rank_rule_of_fig7():
    assert numerical_rank(low_rank(30, 40, 5, scale=1e-3 * 0.99), "deep", max_rank=8) == 0  # ||.||_2 <= 1e-3
    assert numerical_rank(low_rank(30, 40, 5, scale=2e-3), "deep", max_rank=8) == 5
    assert numerical_rank(low_rank(30, 40, 12, scale=1.0), "deep", max_rank=8) == 8  # capped at r
    with pytest.raises(ValueError, match="pass max_rank"):
        numerical_rank(low_rank(30, 40, 5), "deep")


def test_lora_rank_rule_is_numpys_default():
    for rank in (1, 3, 7):
        delta = low_rank(30, 40, rank, scale=1e-6)  # tiny but nonzero: no 1e-3 threshold for LoRA
        assert numerical_rank(delta, "lora") == rank == np.linalg.matrix_rank(delta.numpy())
    noisy = low_rank(30, 40, 3) + 1e-9 * torch.randn(30, 40, generator=torch.Generator().manual_seed(0))
    assert numerical_rank(noisy, "lora") == np.linalg.matrix_rank(noisy.numpy())
    with pytest.raises(ValueError, match="rule must be 'deep' or 'lora'"):
        numerical_rank(noisy, "svd")


def test_numerical_rank_of_a_model_uses_each_adapters_rule():
    model = TwoLinear()
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=4, targets=["a", "b"]))
    assert numerical_rank(model) == {"a": 0, "b": 0}  # left = right = 0 before compression
    with torch.no_grad():
        layer = adapter_layers(model)["a"]
        layer.set_outer(torch.eye(12, 4), torch.eye(16, 4))
        for f in list(layer.factors)[1:-1]:
            f.copy_(torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0])))
    assert numerical_rank(model) == {"a": 3, "b": 0}
    lora = TwoLinear()
    add_adapters(lora, DeepLoRAConfig(init="lora", rank=4, targets=["a", "b"]))
    with torch.no_grad():
        adapter_layers(lora)["b"].factors[1].copy_(1e-5 * torch.ones(20, 4))
    assert numerical_rank(lora) == {"a": 0, "b": 1}
    assert numerical_rank(delta_weights(lora), "deep", max_rank=4) == {"a": 0, "b": 0}
    with pytest.raises(ValueError, match="needs rule"):
        numerical_rank(delta_weights(lora))


def test_subspace_alignment():
    final = low_rank(30, 40, 8, seed=1)
    assert subspace_alignment(final, final) == pytest.approx(1.0, abs=1e-9)
    assert subspace_alignment(-3.0 * final, final) == pytest.approx(1.0, abs=1e-9)  # signs and scale
    u = torch.linalg.svd(final.double()).U
    gen = torch.Generator().manual_seed(0)
    orthogonal = (u[:, 8:15] @ torch.randn(7, 40, generator=gen, dtype=torch.float64)).float()  # rank 7
    assert subspace_alignment(orthogonal, final, k=7) < 1e-5  # k <= rank: no arbitrary null directions
    # rank 8: its top-8 subspace is its whole column space, which contains u_0
    one_shared = (torch.outer(u[:, 0], torch.ones(40, dtype=torch.float64)) + 0.5 * orthogonal.double()).float()
    assert subspace_alignment(one_shared, final, k=8) == pytest.approx(1.0, abs=1e-5)
    rotated = final + low_rank(30, 40, 8, seed=7)
    value = subspace_alignment(rotated, final)
    assert 0.0 < value <= 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        subspace_alignment(final, final.T)
    with pytest.raises(ValueError, match=r"k must be in \[1, 30\]"):
        subspace_alignment(final, final, k=31)


def test_subspace_residual_is_the_sine_of_the_largest_principal_angle():
    e = torch.eye(5, dtype=torch.float64)
    assert subspace_residual(e[:, :2], e[:, :1]) == 0.0  # contained
    assert subspace_residual(e[:, :2], e[:, 2:3]) == pytest.approx(1.0)  # orthogonal
    theta = 0.3
    tilted = (np.cos(theta) * e[:, 0] + np.sin(theta) * e[:, 3]).unsqueeze(1)
    assert subspace_residual(e[:, :2], tilted) == pytest.approx(np.sin(theta), rel=1e-12)
    assert subspace_residual(e[:, :2] @ torch.tensor([[3.0, 1.0], [0.0, 2.0]], dtype=torch.float64), 7.0 * tilted) == pytest.approx(np.sin(theta), rel=1e-12)
    with pytest.raises(ValueError, match=r"same number of rows, got \(5, 2\) and \(4, 1\)"):
        subspace_residual(e[:, :2], e[:4, :1])


def test_basis_alignment_is_subspace_alignment_of_the_bases_and_checks_shapes():
    """subspace_alignment(a, b, k) is basis_alignment of the top-k left singular bases, exactly."""
    from compressible.deeplora import basis_alignment

    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(20, 12, generator=gen, dtype=torch.float64), torch.randn(20, 12, generator=gen, dtype=torch.float64)
    u_a = torch.linalg.svd(a, full_matrices=False).U[:, :4]
    u_b = torch.linalg.svd(b, full_matrices=False).U[:, :4]
    assert basis_alignment(u_a, u_b) == subspace_alignment(a, b, k=4)
    assert abs(basis_alignment(u_a, u_a) - 1.0) < 1e-12
    with pytest.raises(ValueError, match=r"same shape \(m, k\), got \(20, 4\) and \(20, 3\)"):
        basis_alignment(u_a, u_b[:, :3])
