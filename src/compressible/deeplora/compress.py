"""The compressed initialisation of Deep LoRA adapters (paper Sec. 2.3 and Sec. 4).

The authors build, for every adapted weight of shape ``(m, n)``, the full-width depth-``L``
factorisation ``W_L ... W_1`` (width ``w = max(m, n)``, ``W_l(0) = eps Q_l`` Haar orthogonal),
take the gradient of the loss on the first batch with respect to the square end factor, and keep
the ``r``-dimensional subspace that the gradient can move. Only three things enter that
construction (derivation, for ``n >= m`` where ``W_1`` is the square ``n x n`` factor):

1. ``G = dloss/dDelta W`` at ``Delta W ~ 0`` -- the gradient with respect to the frozen base
   weight itself -- because ``dloss/dW_1 = (W_L ... W_2)^T G = eps^{L-1} P^T G`` with
   ``P = Q_L ... Q_2`` (``m x n``, orthonormal rows). So ``G_1`` has the right singular vectors
   ``V`` of ``G`` and left singular vectors ``P^T U``, singular values scaled by ``eps^{L-1}``.
2. Its top ``h = r/2`` singular vectors ``U_h (m, h)``, ``V_h (n, h)``.
3. ``Q = Q_L ... Q_1`` (``m x n``, a Haar partial isometry), through ``Q^T U_h`` and ``Q V_h``:
   ``W_1(0)^T (P^T U_h) / eps = Q_1^T P^T U_h = Q^T U_h``.

The authors' ``right`` is an orthonormal basis of ``span(V_h) + span(Q^T U_h)`` (the orthogonal
complement of ``span(Va) ∩ span(Vb)``) and ``left = f(Theta(0)) right / eps^L = Q right``. Writing
``[V_h, Q^T U_h] = right R`` (thin QR) and using ``Q Q^T = I_m`` gives
``left = [Q V_h, U_h] R^{-1}``. For ``n < m`` the last factor is the square one and everything is
transposed: ``left = orth([U_h, Q V_h])``, ``right = Q^T left = [Q^T U_h, V_h] R^{-1}``.
The adapter then starts at ``Delta W(0) = left (eps^L I_r) right^T``.

So nothing of size ``w x w`` is formed: beyond the gradient the construction needs
``O((m + n) r)`` memory, and :func:`haar_actions` samples ``Q^T U_h`` and ``Q V_h`` with the
joint law of a Haar ``Q`` without forming ``Q``. ``tests/deeplora/test_compress.py`` checks the
result against the explicit full-width construction to ``1e-10`` in float64.

That exactness needs the exact top ``h`` singular vectors of ``G``. The full SVD (``svd="full"``,
and ``"auto"`` below ``min(m, n) = 256``) gives them. The randomized SVD that ``"auto"`` uses from
256 on gives them only approximately with its fixed 4 power iterations (about 1e-3 on MiniLM
gradients), and to a chosen tolerance with ``DeepLoRAConfig.svd_tol`` (e.g. ``1e-6``: the exact
top-``h`` subspaces then lie in ``span(left)``, ``span(right)`` to a residual <= 1e-6 in float64)
whenever ``G`` has a gap after its ``h``-th singular value; without a gap the top-``h`` subspace
is not defined. ``benchmarks/deep_lora.py`` reports the residual and the time of each choice.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from .layer import DeepLoRALinear, haar_stiefel
from .model import adapter_layers

__all__ = [
    "MAX_POWER_ITERATIONS",
    "top_singular_vectors",
    "haar_actions",
    "outer_factors_from_singular_vectors",
    "compressed_outer_factors",
    "compress_from_batch",
]

logger = logging.getLogger(__name__)


#: Cap on the power iterations of the randomized SVD run to a tolerance (``svd_tol``).
MAX_POWER_ITERATIONS = 200

#: The subspace accuracy that ``tol="auto"`` asks of the randomized SVD of a float64 gradient.
AUTO_TOLERANCE = 1e-6


def top_singular_vectors(
    g: Tensor,
    k: int,
    method: str = "full",
    *,
    oversample: int = 10,
    niter: int = 4,
    tol: float | str | None = "auto",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Top-``k`` singular triplets of ``g (m, n)``: ``U_k (m, k)``, ``S_k (k,)``, ``V_k (n, k)``.

    ``method="full"`` uses ``torch.linalg.svd``; ``"lowrank"`` a randomized range finder with
    ``oversample`` extra columns (Halko, Martinsson & Tropp, 2011; what ``torch.svd_lowrank`` does,
    but drawing from ``generator`` instead of the global RNG), and then:

    - ``tol="auto"`` (the default): ``1e-6`` for a float64 ``g``, ``None`` otherwise.
    - ``tol=None``: a fixed ``niter`` power iterations. The top-``k`` subspaces are then accurate
      only to about ``(s_{k+oversample+1} / s_k)^(2 niter + 1)``: about 1e-3 (relative) on the
      gradients of a MiniLM encoder with the defaults.
    - ``tol`` a float: power iterations until the a-posteriori bound of Wedin's sin-theta theorem,
      ``||g V_k - U_k S_k||_F / (s_k - s_{k+1})`` with the singular values estimated by the
      Rayleigh-Ritz values of the current subspace, is at most ``tol``, for at most
      :data:`MAX_POWER_ITERATIONS`; it stops earlier (logged) once the bound is below the rounding
      floor ``16 eps(dtype) s_1 / (s_k - s_{k+1})`` when that floor is above ``tol``. In float32 that
      floor is often above 1e-6 (the float32 gradient itself only defines the subspace that well). The bound controls the sine of the largest principal angle
      between the computed and the exact top-``k`` left and right singular subspaces. It needs a
      gap after the ``k``-th singular value: without one (``s_k = s_{k+1}``) the top-``k``
      subspace is not defined, the bound does not shrink, and the iterations stop with a warning. Each iteration costs two products with ``g`` of width ``k + oversample``.
    """
    if method not in ("full", "lowrank"):
        raise ValueError(f"method must be 'full' or 'lowrank', got {method!r}")
    m, n = g.shape
    if not 1 <= k <= min(m, n):
        raise ValueError(f"k must be in [1, {min(m, n)}] for a {m} x {n} matrix, got {k}")
    if tol == "auto":
        tol = AUTO_TOLERANCE if g.dtype == torch.float64 else None
    if tol is not None and not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise ValueError(f"tol must be 'auto', None or in (0, 1), got {tol!r}")
    if tol is not None and oversample < 1:
        raise ValueError(f"tol needs oversample >= 1 (to estimate the gap after s_k), got {oversample}")
    width = min(k + oversample, m, n)
    if method == "full" or width >= min(m, n):
        u, s, vh = torch.linalg.svd(g, full_matrices=False)
        return u[:, :k], s[:k], vh[:k].T
    omega = torch.randn(n, width, generator=generator, dtype=torch.float64).to(device=g.device, dtype=g.dtype)
    basis = torch.linalg.qr(g @ omega).Q  # (m, width)
    if tol is not None:
        return _subspace_iteration_to_tolerance(g, k, basis, tol)
    for _ in range(niter):
        basis = torch.linalg.qr(g.T @ basis).Q  # (n, width)
        basis = torch.linalg.qr(g @ basis).Q  # (m, width)
    ub, s, vh = torch.linalg.svd(basis.T @ g, full_matrices=False)  # (width, n)
    return (basis @ ub)[:, :k], s[:k], vh[:k].T


def _subspace_iteration_to_tolerance(g: Tensor, k: int, basis: Tensor, tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """Power iterations from the orthonormal ``basis (m, w)`` until Wedin's bound is ``<= tol``.

    Per iteration: ``Y = g^T basis = Q_y R_y`` (thin QR), ``Z = g Q_y``. The Ritz triplets of
    ``basis^T g = R_y^T Q_y^T`` come from the SVD ``R_y^T = A S B^T``: ``U = basis A``,
    ``V = Q_y B``, and ``g V = Z B`` is already at hand, so the residual ``g V_k - U_k S_k`` costs
    ``O(m w k)``; ``G^T U - V S`` vanishes by construction.
    """
    eps = torch.finfo(g.dtype).eps
    bound = float("inf")
    for iteration in range(MAX_POWER_ITERATIONS + 1):
        q_y, r_y = torch.linalg.qr(g.T @ basis)  # (n, w), (w, w)
        z = g @ q_y  # (m, w)
        a, s, bh = torch.linalg.svd(r_y.T)
        b_k = bh[:k].T
        u_k, v_k = basis @ a[:, :k], q_y @ b_k
        gap = float(s[k - 1] - s[k])
        residual = float(torch.linalg.matrix_norm(z @ b_k - u_k * s[:k]))
        bound = residual / gap if gap > 0 else float("inf")
        floor = 16 * eps * float(s[0]) / gap if gap > 0 else float("inf")
        if bound <= tol:
            logger.debug("randomized SVD converged to %.1e after %d power iterations", bound, iteration)
            return u_k, s[:k], v_k
        if bound <= floor:  # converged to rounding: tol is out of reach in this dtype
            clear_gap = gap > eps**0.5 * float(s[0])
            logger.log(
                logging.INFO if clear_gap else logging.WARNING,
                "randomized SVD: the top-%d singular subspace is accurate to %.1e, the rounding floor of %s "
                "for s_k = %.6g, s_k+1 ~ %.6g (tol %.1e)%s", k, bound, g.dtype, float(s[k - 1]), float(s[k]), tol,
                "" if clear_gap else f"; there is no clear gap after the {k}-th singular value, where the "
                "subspace is not well defined",
            )
            return u_k, s[:k], v_k
        if iteration < MAX_POWER_ITERATIONS:
            basis = torch.linalg.qr(z).Q
    logger.warning(
        "randomized SVD: the top-%d singular subspace reached only %.1e (tol %.1e) after %d power "
        "iterations: there is no clear gap after the %d-th singular value (s_k = %.6g, s_k+1 ~ %.6g), "
        "where the subspace is not well defined",
        k, bound, tol, MAX_POWER_ITERATIONS, k, float(s[k - 1]), float(s[k]),
    )
    return u_k, s[:k], v_k


def _apply_completion(x: Tensor, v: Tensor) -> Tensor:
    """``X v`` for an orthogonal ``X (a, a)`` whose first ``h`` columns are ``x (a, h)``, unformed.

    ``X`` is the Householder product of the QR of ``x``, with the signs of ``diag(R)`` moved in,
    applied by ``torch.ormqr`` in ``O(a h^2)``; ``v`` has shape ``(a, k)``.
    """
    h = x.shape[1]
    reflectors, tau = torch.geqrf(x)
    signs = torch.sign(torch.diagonal(reflectors[:h, :h]))
    v = torch.cat([signs.unsqueeze(1) * v[:h], v[h:]], dim=0)
    return torch.ormqr(reflectors, tau, v, left=True, transpose=False)


def _haar_actions_wide(x: Tensor, y: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    # Q (a, b) with a <= b and orthonormal rows, Q = X Q0 Y^T with X e_j = x_j, Y e_j = y_j (Haar
    # invariance), Q0 = O[:a] for O Haar (b, b). Then Q^T x = Y O[:h, :]^T and Q y = X O[:a, :h].
    # C = O[:, :h] is Haar Stiefel; given C, O[:h, h:] = T Z^T with Z Haar Stiefel (b - h, h) and
    # T T^T = I - C_h C_h^T, because the rows of O are orthonormal (see tests for the moments).
    a, h = x.shape
    b = y.shape[0]
    c = haar_stiefel(b, h, generator=generator)  # (b, h) = O[:, :h]
    c_h = c[:h]  # (h, h)
    z = haar_stiefel(b - h, h, generator=generator)  # (b - h, h)
    evals, evecs = torch.linalg.eigh(torch.eye(h, dtype=c.dtype) - c_h @ c_h.T)
    t = (evecs * evals.clamp_min(0).sqrt()) @ evecs.T  # (h, h), symmetric square root
    top_rows = torch.cat([c_h, t @ z.T], dim=1)  # (h, b) = O[:h, :]
    return _apply_completion(y, top_rows.T), _apply_completion(x, c[:a])


def haar_actions(
    u: Tensor, v: Tensor, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``(Q^T u, Q v)`` for one Haar-random partial isometry ``Q (m, n)``, without forming ``Q``.

    ``Q`` has the law of ``Q_L ... Q_1`` for independent Haar factors of the full-width
    factorisation (a slice of a Haar orthogonal matrix of size ``max(m, n)``). ``u (m, h)`` and
    ``v (n, h)`` must have orthonormal columns and ``2 h <= min(m, n)``. Cost ``O((m + n) h^2)``.

    Returns:
        ``Q^T u`` of shape ``(n, h)`` and ``Q v`` of shape ``(m, h)`` (float64, on ``u``'s device).
    """
    device = u.device
    u64, v64 = u.detach().to("cpu", torch.float64), v.detach().to("cpu", torch.float64)
    m, n = u64.shape[0], v64.shape[0]
    if m <= n:
        qt_u, q_v = _haar_actions_wide(u64, v64, generator)
    else:  # Q^T is (n, m) with orthonormal rows
        q_v, qt_u = _haar_actions_wide(v64, u64, generator)
    return qt_u.to(device), q_v.to(device)


def outer_factors_from_singular_vectors(
    u_h: Tensor,
    v_h: Tensor,
    *,
    q: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """``left (m, r)`` and ``right (n, r)`` of the compressed adapter, ``r = 2h``.

    Args:
        u_h, v_h: top-``h`` left ``(m, h)`` and right ``(n, h)`` singular vectors of the gradient.
        q: the partial isometry ``Q = Q_L ... Q_1`` ``(m, n)`` of the full-width initialisation,
            if it exists explicitly (tests); otherwise it is sampled by :func:`haar_actions`.
        generator: random source of ``Q`` when ``q`` is not given.

    ``n >= m``: ``right = orth([V_h, Q^T U_h])``, ``left = Q right``; ``n < m``: transposed.
    ``left @ right.T`` does not depend on the choice of orthonormal basis.
    """
    m, n = u_h.shape[0], v_h.shape[0]
    if q is not None:
        if tuple(q.shape) != (m, n):
            raise ValueError(f"q must have shape {(m, n)}, got {tuple(q.shape)}")
        qt_u, q_v = q.T @ u_h, q @ v_h
    else:
        qt_u, q_v = haar_actions(u_h, v_h, generator=generator)
        qt_u, q_v = qt_u.to(u_h.dtype), q_v.to(u_h.dtype)
    if n >= m:
        right, r_tri = torch.linalg.qr(torch.cat([v_h, qt_u], dim=1))
        left = torch.linalg.solve_triangular(r_tri, torch.cat([q_v, u_h], dim=1), upper=True, left=False)
    else:
        left, r_tri = torch.linalg.qr(torch.cat([u_h, q_v], dim=1))
        right = torch.linalg.solve_triangular(r_tri, torch.cat([qt_u, v_h], dim=1), upper=True, left=False)
    return left, right


def compressed_outer_factors(
    grad: Tensor,
    rank: int,
    *,
    q: Tensor | None = None,
    generator: torch.Generator | None = None,
    svd: str = "full",
    svd_tol: float | str | None = "auto",
) -> tuple[Tensor, Tensor]:
    """``left (m, r)``, ``right (n, r)`` from the gradient ``grad (m, n)`` of the loss w.r.t. ``Delta W``.

    The whole construction of the module docstring in one call; ``rank`` must be even. ``svd`` and
    ``svd_tol`` choose how the top ``r/2`` singular vectors are found (:func:`top_singular_vectors`).
    Beyond ``grad`` and the SVD, the memory is ``O((m + n) r)``; ``svd="lowrank"`` keeps the SVD at
    ``O((m + n) (r/2 + 10))`` too, where ``"full"`` needs ``O(m n)``.
    """
    if rank % 2 or rank < 2:
        raise ValueError(f"rank must be even and >= 2, got {rank}")
    if rank > min(grad.shape):
        raise ValueError(f"rank {rank} exceeds min(m, n) = {min(grad.shape)} of the gradient")
    u_h, _, v_h = top_singular_vectors(grad, rank // 2, svd, tol=svd_tol, generator=generator)
    return outer_factors_from_singular_vectors(u_h, v_h, q=q, generator=generator)


def _move(batch: Mapping, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def compress_from_batch(
    model: nn.Module,
    batch: Mapping[str, Tensor],
    loss_fn: Callable[[nn.Module, Mapping[str, Tensor]], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Set ``left``/``right`` of every compressed adapter of ``model`` from one batch's gradient.

    One forward/backward with the adapters switched off and dropout off (``eval`` mode; the
    train/eval mode of every module is restored afterwards) gives ``G = dloss/dW`` for each
    adapted base weight. The gradient of each weight is reduced to its top ``r/2`` singular
    vectors in a hook as soon as it is accumulated and then freed, so at most one full gradient is
    held at a time beyond what autograd needs. ``Q`` is drawn per adapter, in model order, from a
    generator seeded with the adapters' ``config.seed``. Inner factors are reset to ``eps I``.

    Args:
        model: a model with compressed adapters (see :func:`~compressible.deeplora.model.add_adapters`).
        batch: keyword arguments of ``model`` (moved to the model's device); the loss is
            ``model(**batch).loss`` unless ``loss_fn(model, batch)`` is given.
        loss_fn: optional ``(model, batch) -> scalar loss``.

    Returns:
        ``{module name: top r/2 singular values of G}``.

    Call it before wrapping the model in ``DistributedDataParallel`` (it toggles
    ``requires_grad``), on every rank with the same batch and seed, or on one rank and broadcast
    the factors.
    """
    layers = {n: l for n, l in adapter_layers(model).items() if l.config.init == "compressed"}
    if not layers:
        raise ValueError(f"{type(model).__name__} has no compressed adapters (add_adapters with init='compressed')")
    merged = [n for n, l in layers.items() if l.merged]
    if merged:
        raise RuntimeError(f"adapters {merged[:3]} are merged; unmerge them before compress_from_batch")
    device = next(model.parameters()).device
    modes = {m: m.training for m in model.modules()}
    requires = {p: p.requires_grad for p in model.parameters()}
    old_grads = {}
    hooks = []
    found: dict[str, tuple[Tensor, Tensor, Tensor]] = {}

    def make_hook(index: int, name: str, layer: DeepLoRALinear):
        half = layer.config.rank // 2
        method = layer.config.svd
        if method == "auto":
            big = min(layer.in_features, layer.out_features) >= layer.config.lowrank_threshold
            method = "lowrank" if big else "full"
        seed = layer.config.seed + 7919 * (index + 1)  # the randomized SVD's own stream

        def hook(weight: Tensor) -> None:
            g = weight.grad.detach().float() if weight.grad.dtype != torch.float64 else weight.grad.detach()
            if layer.is_conv1d:
                g = g.T  # Conv1D stores (in, out)
            gen = torch.Generator().manual_seed(seed) if method == "lowrank" else None
            found[name] = top_singular_vectors(g, half, method, tol=layer.config.svd_tol, generator=gen)
            weight.grad = None

        return hook

    try:
        for p in model.parameters():
            p.requires_grad_(False)
        for index, (name, layer) in enumerate(layers.items()):
            w = layer.base.weight
            old_grads[w] = w.grad
            w.grad = None
            w.requires_grad_(True)
            hooks.append(w.register_post_accumulate_grad_hook(make_hook(index, name, layer)))
            layer.enabled = False
        model.eval()
        batch = _move(batch, device)
        with torch.enable_grad():
            if loss_fn is None:
                outputs = model(**batch)
                loss = outputs["loss"] if isinstance(outputs, Mapping) else getattr(outputs, "loss", None)
                if loss is None:
                    raise ValueError("the model returned no loss: put labels in the batch or pass loss_fn(model, batch)")
            else:
                loss = loss_fn(model, batch)
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
        for layer in layers.values():
            layer.enabled = True
        for w, g in old_grads.items():
            w.grad = g
        for p, flag in requires.items():
            p.requires_grad_(flag)
        for m, flag in modes.items():
            m.train(flag)

    generator = torch.Generator().manual_seed(next(iter(layers.values())).config.seed)
    spectra = {}
    for name, layer in layers.items():
        if name not in found:
            logger.warning("%r received no gradient from the batch; its subspace is random", name)
            g = torch.zeros(layer.out_features, layer.in_features, dtype=torch.float64)
            found[name] = top_singular_vectors(g, layer.config.rank // 2)
        u_h, s_h, v_h = found[name]
        left, right = outer_factors_from_singular_vectors(
            u_h.double(), v_h.double(), generator=generator
        )
        with torch.no_grad():
            for f in list(layer.factors)[1:-1]:
                f.copy_(layer.config.epsilon * torch.eye(f.shape[0], dtype=f.dtype, device=f.device))
        layer.set_outer(left, right)
        spectra[name] = s_h.detach().cpu()
    return spectra
