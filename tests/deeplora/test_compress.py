"""The compressed initialisation equals the authors' explicit full-width construction.

Facts checked (float64):

1. At initialisation the gradient with respect to the first factor of the full-width model is
   ``G_1 = (W_L ... W_2)^T G`` with ``G = dloss/dDelta W`` (chain rule through the product).
2. ``left @ right.T`` from ``G``'s top ``r/2`` singular vectors and ``Q = Q_L ... Q_1`` equals the
   authors' nullspace-intersection construction (``S = span(Va) ∩ span(Vb)``, ``right`` = basis of
   ``S^⊥``, ``left = f(Theta(0)) right / eps^L``; transposed when the last factor is the square one)
   to a relative error below 1e-10, for square, tall and wide weights.
3. :func:`haar_actions` has the law of a Haar partial isometry (moments) and is self-consistent.
4. :func:`compress_from_batch` sets bases with the subspace properties of the construction, in
   bf16 and float32 models, and restores modes, grads and ``requires_grad``.
5. From ``min(m, n) >= 256`` (the randomized SVD), ``svd_tol=1e-6`` puts the exact top ``r/2``
   singular subspaces of a gradient with a spectral gap inside ``span(left)`` / ``span(right)`` to a
   residual <= 1e-6 (float64), where the fixed 4 power iterations reach only ~1e-3; without a gap
   the iterations stop with a warning.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from compressible.deeplora import (
    DeepLoRAConfig,
    add_adapters,
    adapter_layers,
    compress_from_batch,
    compressed_outer_factors,
    haar_actions,
    subspace_residual,
)
from compressible.deeplora.compress import outer_factors_from_singular_vectors, top_singular_vectors
from compressible.matrix.factorization import end_to_end, haar_orthogonal

EPS = 1e-3


def full_width_model(m: int, n: int, depth: int, seed: int):
    """Factors ``eps Q_l`` of the full-width depth-``L`` factorisation (width ``max(m, n)``)."""
    gen = torch.Generator().manual_seed(seed)
    w = max(m, n)
    dims = [n] + [w] * (depth - 1) + [m]
    qs = [haar_orthogonal(dims[k + 1], dims[k], generator=gen) for k in range(depth)]
    return qs


def task_loss(delta: torch.Tensor, seed: int) -> torch.Tensor:
    """A non-linear loss of ``Delta W (m, n)``: softmax cross-entropy of a linear classifier."""
    m, n = delta.shape
    gen = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(16, n, generator=gen, dtype=torch.float64)
    w0 = torch.randn(m, n, generator=gen, dtype=torch.float64) / n**0.5
    labels = torch.randint(0, m, (16,), generator=gen)
    return F.cross_entropy(x @ (w0 + delta).T, labels)


def null_space(a: torch.Tensor, expected: int) -> torch.Tensor:
    """Orthonormal basis of the null space of ``a`` (columns); its dimension must be ``expected``."""
    _, s, vh = torch.linalg.svd(a, full_matrices=True)
    tol = s.max() * max(a.shape) * torch.finfo(a.dtype).eps
    rank = int((s > tol).sum())
    assert a.shape[1] - rank == expected, (a.shape, rank, expected)
    return vh[rank:].T


def authors_construction(square: torch.Tensor, grad_square: torch.Tensor, delta0: torch.Tensor, eps_l: float, half: int):
    """The Sec. 2.3 construction on the square end factor ``W (w, w)`` with gradient ``G_1``.

    Returns the basis of ``S^⊥`` (``(w, 2 half)``) and ``delta0 @ basis / eps_l``.
    """
    w = square.shape[0]
    eps = torch.linalg.svdvals(square)[0]  # W(0) = eps Q
    u_g, _, vh_g = torch.linalg.svd(grad_square, full_matrices=True)
    va = square.T @ u_g[:, half:] / eps  # spans N(G_1^T W_1(0))
    vb = vh_g[half:].T  # spans N(G_1)
    coeffs = null_space(torch.cat([va, -vb], dim=1), expected=w - 2 * half)
    s_basis = torch.linalg.qr(va @ coeffs[: w - half]).Q  # S = span(Va) ∩ span(Vb)
    basis = null_space(s_basis.T, expected=2 * half)  # S^⊥
    return basis, delta0 @ basis / eps_l


def explicit_left_right(m, n, rank, depth, seed):
    """The authors' compressed factors, from the full-width model, plus ``G`` and ``Q``."""
    qs = full_width_model(m, n, depth, seed)
    factors = [(EPS * q).requires_grad_(True) for q in qs]
    delta0 = end_to_end(factors)
    delta0.retain_grad()
    task_loss(delta0, seed).backward()
    g = delta0.grad  # dloss/dDelta W at Delta W(0)
    q = end_to_end(qs)  # (m, n)
    half = rank // 2
    with torch.no_grad():
        if n >= m:  # the first factor (n, n) is square
            right, left = authors_construction(factors[0], factors[0].grad, delta0, EPS**depth, half)
        else:  # the last factor (m, m) is square: transpose the factorisation
            left, right = authors_construction(factors[-1].T, factors[-1].grad.T, delta0.T, EPS**depth, half)
    return left, right, g, q, factors


SHAPES = [(12, 12), (16, 10), (10, 16), (7, 20), (20, 7)]


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("m,n", SHAPES)
def test_first_factor_gradient_is_pulled_back_delta_gradient(m, n, depth):
    qs = full_width_model(m, n, depth, seed=1)
    factors = [(EPS * q).requires_grad_(True) for q in qs]
    delta0 = end_to_end(factors)
    delta0.retain_grad()
    task_loss(delta0, 1).backward()
    g = delta0.grad
    with torch.no_grad():
        rest = end_to_end(factors[1:])  # W_L ... W_2, (m, w)
        expected_first = rest.T @ g  # G_1 = (W_L ... W_2)^T G
        head = end_to_end(factors[:-1])  # W_{L-1} ... W_1, (w, n)
        expected_last = g @ head.T  # G_L = G (W_{L-1} ... W_1)^T
    assert torch.allclose(factors[0].grad, expected_first, rtol=1e-12, atol=1e-14 * expected_first.abs().max())
    assert torch.allclose(factors[-1].grad, expected_last, rtol=1e-12, atol=1e-14 * expected_last.abs().max())
    # and G_1 = eps^{L-1} P^T G with P = Q_L ... Q_2: same singular vectors as G, scaled values
    s1 = torch.linalg.svdvals(factors[0].grad)[: min(m, n)]
    assert torch.allclose(s1, EPS ** (depth - 1) * torch.linalg.svdvals(g)[: min(m, n)], rtol=1e-10)


@pytest.mark.parametrize("rank,depth", [(2, 3), (4, 3), (6, 3), (4, 2), (4, 4)])
@pytest.mark.parametrize("m,n", SHAPES)
def test_compressed_factors_match_explicit_full_width_construction(m, n, rank, depth):
    left_ref, right_ref, g, q, _ = explicit_left_right(m, n, rank, depth, seed=rank + 10 * depth)
    left, right = compressed_outer_factors(g, rank, q=q, svd="full")
    assert left.shape == (m, rank) and right.shape == (n, rank)
    reference = left_ref @ right_ref.T
    error = torch.linalg.norm(left @ right.T - reference) / torch.linalg.norm(reference)
    assert error < 1e-10, f"relative error {error:.2e}"
    # the basis on the square side is orthonormal; the other side is its image under Q
    basis, image = (right, left) if n >= m else (left, right)
    assert torch.allclose(basis.T @ basis, torch.eye(rank, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(image, (q if n >= m else q.T) @ basis, atol=1e-12)


def test_exactness_for_a_bert_like_shape_ratio():
    """One larger case (32 x 128, the 1 : 4 ratio of BERT's 768 x 3072): still below 1e-10."""
    left_ref, right_ref, g, q, _ = explicit_left_right(32, 128, 8, 3, seed=5)
    left, right = compressed_outer_factors(g, 8, q=q)
    reference = left_ref @ right_ref.T
    assert torch.linalg.norm(left @ right.T - reference) / torch.linalg.norm(reference) < 1e-10


def test_gradient_at_zero_differs_from_gradient_at_init_only_at_order_eps_cubed():
    """The library uses dloss/dW at Delta W = 0; the authors' at Delta W(0) = eps^3 Q. Same to O(eps^3)."""
    m, n = 10, 16
    _, _, g_init, q, _ = explicit_left_right(m, n, 4, 3, seed=3)
    zero = torch.zeros(m, n, dtype=torch.float64, requires_grad=True)
    task_loss(zero, 3).backward()
    assert torch.linalg.norm(zero.grad - g_init) / torch.linalg.norm(g_init) < 10 * EPS**3
    a = compressed_outer_factors(g_init, 4, q=q)
    b = compressed_outer_factors(zero.grad, 4, q=q)
    assert torch.linalg.norm(a[0] @ a[1].T - b[0] @ b[1].T) < 1e-6


def test_lowrank_svd_finds_the_same_top_subspace():
    gen = torch.Generator().manual_seed(0)
    u = torch.linalg.qr(torch.randn(300, 20, generator=gen, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(200, 20, generator=gen, dtype=torch.float64)).Q
    g = u @ torch.diag(torch.logspace(0, -6, 20, dtype=torch.float64)) @ v.T
    u_full, s_full, v_full = top_singular_vectors(g, 4, "full")
    u_low, s_low, v_low = top_singular_vectors(g, 4, "lowrank", generator=torch.Generator().manual_seed(1))
    assert torch.allclose(s_full, s_low, rtol=1e-10)
    assert torch.allclose(u_full @ u_full.T, u_low @ u_low.T, atol=1e-10)
    assert torch.allclose(v_full @ v_full.T, v_low @ v_low.T, atol=1e-10)


@pytest.mark.parametrize("m,n", [(5, 9), (9, 5), (6, 6)])
def test_haar_actions_are_consistent_partial_isometry_actions(m, n):
    gen = torch.Generator().manual_seed(0)
    h = 2
    u = torch.linalg.qr(torch.randn(m, h, generator=gen, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(n, h, generator=gen, dtype=torch.float64)).Q
    qt_u, q_v = haar_actions(u, v, generator=gen)
    assert qt_u.shape == (n, h) and q_v.shape == (m, h)
    # both contain the same block u^T Q v
    assert torch.allclose(u.T @ q_v, qt_u.T @ v, atol=1e-12)
    # the wide side is an isometry on its argument: Q^T u orthonormal if m <= n, Q v if n <= m
    if m <= n:
        assert torch.allclose(qt_u.T @ qt_u, torch.eye(h, dtype=torch.float64), atol=1e-12)
    if n <= m:
        assert torch.allclose(q_v.T @ q_v, torch.eye(h, dtype=torch.float64), atol=1e-12)


def test_haar_actions_have_the_moments_of_an_explicit_haar_partial_isometry():
    """E over Q of a few statistics, implicit sampler vs explicit Q_3 Q_2 Q_1 (4000 draws each)."""
    m, n, h, draws = 3, 5, 1, 4000
    gen = torch.Generator().manual_seed(0)
    u = torch.linalg.qr(torch.randn(m, h, generator=gen, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(n, h, generator=gen, dtype=torch.float64)).Q
    e1 = torch.zeros(n, 1, dtype=torch.float64)
    e1[0] = 1.0

    def stats(qt_u, q_v):
        return torch.stack([
            (u.T @ q_v).squeeze() ** 2,  # E = 1/n
            (q_v.T @ q_v).squeeze(),  # E ||Q v||^2 = m/n
            (e1.T @ qt_u).squeeze() ** 2,  # E = 1/n
            ((e1.T @ qt_u) * (u.T @ q_v)).squeeze(),  # a mixed moment
            ((u.T @ q_v) ** 4).squeeze(),
        ])

    implicit = torch.stack([stats(*haar_actions(u, v, generator=gen)) for _ in range(draws)]).mean(0)

    def haar_batch(size):  # Haar orthogonal (draws, size, size): QR of Gaussians with sign fix
        q, r = torch.linalg.qr(torch.randn(draws, size, size, generator=gen, dtype=torch.float64))
        return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)

    q = haar_batch(n)[:, :m, :] @ haar_batch(n) @ haar_batch(n)  # Q_3 Q_2 Q_1, (draws, m, n)
    explicit = torch.stack([stats(qi.T @ u, qi @ v) for qi in q]).mean(0)
    assert abs(implicit[0] - 1 / n) < 0.02 and abs(implicit[1] - m / n) < 0.03 and abs(implicit[2] - 1 / n) < 0.02
    assert torch.allclose(implicit, explicit, atol=0.025), (implicit, explicit)


def test_implicit_q_gives_the_construction_subspaces():
    m, n, rank = 10, 16, 4
    _, _, g, _, _ = explicit_left_right(m, n, rank, 3, seed=0)
    left, right = compressed_outer_factors(g, rank, generator=torch.Generator().manual_seed(0))
    u_h, _, v_h = top_singular_vectors(g, rank // 2)
    assert torch.allclose(right.T @ right, torch.eye(rank, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(right @ (right.T @ v_h), v_h, atol=1e-12)  # V_h in span(right)
    proj_left = left @ torch.linalg.pinv(left)
    assert torch.allclose(proj_left @ u_h, u_h, atol=1e-10)  # U_h in span(left)
    assert torch.linalg.matrix_norm(left, ord=2) <= 1 + 1e-12  # left = Q right with Q a contraction


# ---------------------------------------------------------------------------- on a model


class TinyRegressor(nn.Module):
    """Two linear layers and dropout; returns an object with ``.loss`` like transformers models."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.up = nn.Linear(12, 20, dtype=dtype)
        self.drop = nn.Dropout(0.5)
        self.down = nn.Linear(20, 6, dtype=dtype)

    def forward(self, x, labels=None):
        out = self.down(self.drop(torch.tanh(self.up(x))))
        loss = None if labels is None else F.mse_loss(out.float(), labels)
        return type("Out", (), {"loss": loss, "logits": out})()


def batch_for(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(32, 12, generator=gen), "labels": torch.randn(32, 6, generator=gen)}


def reference_gradients(model, batch, dtype):
    """dloss/dW of each base weight at Delta W = 0, in eval mode."""
    model.eval()
    weights = [model.up.weight, model.down.weight]
    for w in weights:
        w.requires_grad_(True)
    out = model(**{k: v.to(dtype) if k == "x" else v for k, v in batch.items()})
    grads = torch.autograd.grad(out.loss, weights)
    for w in weights:
        w.requires_grad_(False)
    return {"up": grads[0].float(), "down": grads[1].float()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compress_from_batch_uses_the_base_weight_gradient(dtype):
    torch.manual_seed(0)
    model = TinyRegressor(dtype)
    batch = batch_for()
    expected = reference_gradients(model, batch, dtype)
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=4, targets=["up", "down"]))
    model.train()
    model.up.base.weight.grad = torch.ones_like(model.up.base.weight)  # must survive
    spectra = compress_from_batch(model, {k: v.to(dtype) if k == "x" else v for k, v in batch.items()})
    assert model.training and model.drop.training  # modes restored
    assert torch.equal(model.up.base.weight.grad, torch.ones_like(model.up.base.weight))
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".base." in n)
    assert all(p.requires_grad for n, p in model.named_parameters() if "factors" in n)
    for name, layer in adapter_layers(model).items():
        assert layer.initialized and layer.left.dtype == torch.float32
        g = expected[name]
        u_h, s_h, v_h = top_singular_vectors(g.double(), 2)
        assert torch.allclose(spectra[name].double(), s_h, rtol=1e-4)
        right, left = layer.right.detach().double(), layer.left.detach().double()
        assert torch.allclose(right @ (right.T @ v_h), v_h, atol=1e-5)
        assert torch.allclose(left @ torch.linalg.pinv(left) @ u_h, u_h, atol=1e-5)
        # Delta W(0) = left (eps^3 I) right^T
        delta = layer.delta_weight().double()
        assert torch.allclose(delta, 1e-9 * left @ right.T, rtol=1e-5, atol=1e-16)


def test_compress_from_batch_is_reproducible_and_seeded():
    def run(seed):
        torch.manual_seed(0)
        model = TinyRegressor()
        add_adapters(model, DeepLoRAConfig(init="compressed", rank=4, targets=["up", "down"], seed=seed))
        compress_from_batch(model, batch_for())
        return torch.cat([f.detach().flatten() for f in model.parameters() if f.requires_grad])

    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


def test_compress_from_batch_with_loss_fn_and_errors():
    torch.manual_seed(0)
    model = TinyRegressor()
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=4, targets=["up"]))
    batch = batch_for()
    compress_from_batch(model, batch, loss_fn=lambda mdl, b: mdl(b["x"]).logits.pow(2).mean())
    assert model.up.initialized
    with pytest.raises(ValueError, match="returned no loss"):
        compress_from_batch(model, {"x": batch["x"]})
    model.up.merge()
    with pytest.raises(RuntimeError, match="merged"):
        compress_from_batch(model, batch)
    lora = TinyRegressor()
    add_adapters(lora, DeepLoRAConfig(init="lora", rank=4, targets=["up"]))
    with pytest.raises(ValueError, match="no compressed adapters"):
        compress_from_batch(lora, batch)


def test_compress_from_batch_with_the_randomized_svd():
    """svd='auto' switches to the randomized SVD from lowrank_threshold on; same top subspaces here."""
    torch.manual_seed(0)
    model = TinyRegressor()
    batch = batch_for()
    expected = reference_gradients(model, batch, torch.float32)
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=4, targets=["up", "down"], lowrank_threshold=4))
    spectra = compress_from_batch(model, batch)
    for name, layer in adapter_layers(model).items():
        u_h, s_h, v_h = top_singular_vectors(expected[name].double(), 2)
        assert torch.allclose(spectra[name].double(), s_h, rtol=1e-4)
        right, left = layer.right.detach().double(), layer.left.detach().double()
        assert torch.allclose(right @ (right.T @ v_h), v_h, atol=1e-4)
        assert torch.allclose(left @ torch.linalg.pinv(left) @ u_h, u_h, atol=1e-4)


def test_a_layer_without_gradient_gets_a_random_subspace_and_a_warning(caplog):
    torch.manual_seed(0)
    model = TinyRegressor()
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=4, targets=["up", "down"]))
    with caplog.at_level("WARNING"):
        compress_from_batch(model, batch_for(), loss_fn=lambda mdl, b: mdl.up(b["x"]).pow(2).mean())
    assert "'down' received no gradient" in caplog.text
    assert model.down.initialized and torch.count_nonzero(model.down.left) > 0


# ----------------------------------------------------------------------------- accuracy of the randomized SVD


def gapped_gradient(m: int, n: int, h: int, ratio: float, seed: int = 0):
    """``G (m, n)`` float64 with singular values ``i^(-1/2)`` after a top-``h`` spike, and
    ``s_{h+1} / s_h = ratio`` (a gap when ``ratio < 1``); returns ``G, U_h, V_h`` (exact)."""
    gen = torch.Generator().manual_seed(seed)
    k = min(m, n)
    u = torch.linalg.qr(torch.randn(m, k, generator=gen, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64)).Q
    s = torch.arange(1, k + 1, dtype=torch.float64) ** -0.5
    s[:h] = s[h] / ratio * torch.linspace(2, 1, h, dtype=torch.float64)
    return (u * s) @ v.T, u[:, :h], v[:, :h]


class GradientProbe(nn.Module):
    """One float64 ``Linear(n, m)`` whose loss ``sum(lin(I_n) * G^T)`` has ``dloss/dW = G`` exactly."""

    def __init__(self, m: int, n: int):
        super().__init__()
        self.lin = nn.Linear(n, m, dtype=torch.float64)

    @staticmethod
    def loss(model: nn.Module, batch: dict) -> torch.Tensor:
        return (model.lin(batch["x"]) * batch["y"]).sum()


def compressed_residual(grad: torch.Tensor, u_h: torch.Tensor, v_h: torch.Tensor, **config) -> float:
    """Largest residual of the exact top subspaces outside ``span(left)``, ``span(right)`` after
    :func:`compress_from_batch` on a layer whose gradient is ``grad``."""
    m, n = grad.shape
    model = GradientProbe(m, n)
    add_adapters(model, DeepLoRAConfig(init="compressed", rank=2 * u_h.shape[1], targets=["lin"], **config))
    batch = {"x": torch.eye(n, dtype=torch.float64), "y": grad.T.contiguous()}
    compress_from_batch(model, batch, loss_fn=GradientProbe.loss)
    return max(subspace_residual(model.lin.left, u_h), subspace_residual(model.lin.right, v_h))


@pytest.mark.slow
@pytest.mark.parametrize("m,n", [(288, 544), (544, 288)])
def test_svd_tol_puts_the_top_subspaces_inside_the_outer_factors_above_256(m, n):
    grad, u_h, v_h = gapped_gradient(m, n, h=4, ratio=0.8)
    assert min(m, n) >= DeepLoRAConfig().lowrank_threshold  # svd="auto" takes the randomized SVD
    # the default (svd_tol="auto": 1e-6 for a float64 gradient) meets the tolerance by itself
    assert compressed_residual(grad, u_h, v_h) <= 1e-6
    assert compressed_residual(grad, u_h, v_h, svd_tol=1e-6) <= 1e-6
    # the case is not trivially easy: a fixed 4 power iterations miss by orders of magnitude
    assert compressed_residual(grad, u_h, v_h, svd_tol=None) > 1e-5
    # and the full SVD is exact
    assert compressed_residual(grad, u_h, v_h, svd="full") <= 1e-10


def test_svd_tol_holds_for_a_narrow_gap_and_stops_with_a_warning_without_one(caplog):
    grad, u_h, v_h = gapped_gradient(300, 400, h=4, ratio=0.98, seed=1)
    u, _, v = top_singular_vectors(grad, 4, "lowrank", tol=1e-6, generator=torch.Generator().manual_seed(0))
    assert max(subspace_residual(u, u_h), subspace_residual(v, v_h)) <= 1e-6
    flat, _, _ = gapped_gradient(60, 40, h=4, ratio=1.0)  # s_4 = s_5: no top-4 subspace
    with caplog.at_level("WARNING"):
        top_singular_vectors(flat, 4, "lowrank", tol=1e-6, generator=torch.Generator().manual_seed(0))
    assert "no clear gap" in caplog.text and "after the 4-th singular value" in caplog.text


def test_svd_tol_validation():
    with pytest.raises(ValueError, match=r"svd_tol must be 'auto', None or a float in \(0, 1\), e.g. 1e-6; got 0"):
        DeepLoRAConfig(svd_tol=0)
    with pytest.raises(ValueError, match="tol must be 'auto', None or in"):
        top_singular_vectors(torch.ones(40, 30), 2, "lowrank", tol=1.5)
    with pytest.raises(ValueError, match="tol needs oversample >= 1"):
        top_singular_vectors(torch.ones(40, 30), 2, "lowrank", tol=1e-6, oversample=0)
