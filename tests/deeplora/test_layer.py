"""DeepLoRALinear: the layer computes base(x) + scaling * F_K ... F_1 x, for every init.

Facts checked: forward = ``x W0^T + b + x Delta W^T`` with the explicit ``Delta W``; the factor
shapes, outer indices and initial values of each init; low-rank adapters never form ``Delta W``;
merge / unmerge are exact (bit for bit) round trips and the merged forward does not add ``Delta W`` twice;
Conv1D's transposed weight; float32 adapters on a bf16 base; errors name the module.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from compressible.deeplora import DeepLoRAConfig, DeepLoRALinear

M, N = 6, 10


def make_base(kind: str, dtype=torch.float64, m=M, n=N):
    torch.manual_seed(0)
    base = nn.Linear(n, m, dtype=dtype) if kind == "linear" else Conv1D(m, n).to(dtype)
    return base


def base_weight_mn(layer: DeepLoRALinear) -> torch.Tensor:
    w = layer.base.weight
    return w.T if layer.is_conv1d else w


def perturb(layer: DeepLoRALinear, seed=1):
    """Give every factor non-trivial values (as after training)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for f in layer.factors:
            f.add_(0.3 * torch.randn(f.shape, generator=gen, dtype=torch.float64).to(f.dtype))
    layer.initialized = True


INITS = [
    ("compressed", 3, 4, [(4, N), (4, 4), (4, 4), (4, 4), (M, 4)], (0, 4)),
    ("compressed", 2, 2, [(2, N), (2, 2), (2, 2), (M, 2)], (0, 3)),
    ("lora", None, 4, [(4, N), (M, 4)], ()),
    ("random", 3, 4, [(4, N), (4, 4), (M, 4)], ()),
    ("full", 3, 4, [(N, N), (N, N), (M, N)], ()),
    ("full", 2, 4, [(N, N), (M, N)], ()),
]


@pytest.mark.parametrize("kind", ["linear", "conv1d"])
@pytest.mark.parametrize("init,depth,rank,shapes,outer", INITS)
def test_factor_shapes_outer_and_forward_equals_explicit_delta(kind, init, depth, rank, shapes, outer):
    layer = DeepLoRALinear(make_base(kind), DeepLoRAConfig(init=init, depth=depth, rank=rank, alpha=8.0))
    assert (layer.in_features, layer.out_features) == (N, M)
    assert [tuple(f.shape) for f in layer.factors] == shapes
    assert layer.outer == outer
    assert layer.scaling == 8.0 / rank
    perturb(layer)
    x = torch.randn(3, 5, N, dtype=torch.float64)
    delta = layer.scaling * torch.linalg.multi_dot([f.detach() for f in reversed(layer.factors)])
    assert torch.allclose(layer.delta_weight(), delta, atol=1e-12)
    expected = x @ (base_weight_mn(layer) + delta).T + layer.base.bias
    assert torch.allclose(layer(x), expected, atol=1e-12)
    assert not any(p.requires_grad for p in layer.base.parameters())
    assert all(f.requires_grad for f in layer.factors)


@pytest.mark.parametrize("init", ["compressed", "lora", "random"])
def test_low_rank_forward_never_forms_delta_w(init, monkeypatch):
    layer = DeepLoRALinear(make_base("linear"), DeepLoRAConfig(init=init, rank=4))
    perturb(layer)
    expected = layer(torch.ones(2, N, dtype=torch.float64))

    def forbidden():
        raise AssertionError("forward formed Delta W")

    monkeypatch.setattr(layer, "delta_weight", forbidden)
    assert torch.equal(layer(torch.ones(2, N, dtype=torch.float64)), expected)


def test_initial_values_of_each_init():
    eps = 1e-3
    comp = DeepLoRALinear(make_base("linear"), DeepLoRAConfig(init="compressed", rank=4, epsilon=eps))
    assert not comp.initialized and torch.count_nonzero(comp.left) == 0 and torch.count_nonzero(comp.right) == 0
    for f in list(comp.factors)[1:-1]:
        assert torch.equal(f.detach(), eps * torch.eye(4, dtype=f.dtype))
    gen = torch.Generator().manual_seed(0)
    lora = DeepLoRALinear(make_base("linear", m=64, n=256), DeepLoRAConfig(init="lora", rank=8), generator=gen)
    a, b = lora.factors
    assert torch.count_nonzero(b) == 0 and torch.count_nonzero(lora.delta_weight()) == 0
    assert abs(a.std().item() - 1.0) < 0.05 and abs(a.mean().item()) < 0.05  # A ~ N(0, 1)
    for init in ("random", "full"):
        layer = DeepLoRALinear(make_base("linear"), DeepLoRAConfig(init=init, rank=4, epsilon=eps))
        for f in layer.factors:  # eps times a slice of an orthogonal matrix: all singular values eps
            s = torch.linalg.svdvals(f.detach())
            assert torch.allclose(s, torch.full_like(s, eps), rtol=1e-10)


@pytest.mark.parametrize("kind", ["linear", "conv1d"])
@pytest.mark.parametrize("init", ["compressed", "lora", "full"])
def test_merge_unmerge_round_trip_and_no_double_counting(kind, init):
    layer = DeepLoRALinear(make_base(kind), DeepLoRAConfig(init=init, rank=4))
    perturb(layer)
    x = torch.randn(4, N, dtype=torch.float64)
    before = layer(x)
    w0 = layer.base.weight.detach().clone()
    layer.merge()
    assert layer.merged
    assert torch.allclose(base_weight_mn(layer), (w0.T if layer.is_conv1d else w0) + layer.delta_weight(), atol=1e-12)
    assert torch.allclose(layer(x), before, atol=1e-12)  # Delta W counted once
    layer.merge()  # idempotent
    assert torch.allclose(layer(x), before, atol=1e-12)
    layer.unmerge()
    assert not layer.merged
    assert torch.equal(layer.base.weight, w0)  # unmerge restores the base bit for bit
    assert torch.equal(layer(x), before)  # the same weights, the same kernels: the same outputs


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["linear", "conv1d"])
def test_unmerge_restores_the_base_weight_bit_for_bit(kind, dtype):
    """With ``|ΔW|`` comparable to ``|W|``, ``fl(fl(W + ΔW) - ΔW) != W`` for many entries (an entry that
    adding ``ΔW`` carries into a larger binade loses its last bit); unmerge still gives ``W`` back exactly."""
    m, n = 48, 64
    layer = DeepLoRALinear(make_base(kind, dtype=dtype, m=m, n=n), DeepLoRAConfig(init="random", rank=8, epsilon=0.5))
    perturb(layer)
    w0 = layer.base.weight.detach().clone()
    delta = layer.delta_weight().to(dtype)
    delta = delta.T if layer.is_conv1d else delta
    assert not torch.equal((w0 + delta) - delta, w0)  # the plain subtraction would not restore W
    x = torch.randn(3, n).to(dtype)
    before = layer(x)
    layer.merge()
    assert not torch.equal(layer.base.weight, w0)
    layer.unmerge()
    assert torch.equal(layer.base.weight, w0)
    assert torch.equal(layer(x), before)
    layer.merge()  # a second round trip after the first one
    layer.unmerge()
    assert torch.equal(layer.base.weight, w0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", ["linear", "conv1d"])
def test_low_precision_base_keeps_float32_adapters(dtype, kind):
    layer = DeepLoRALinear(make_base(kind, dtype=dtype), DeepLoRAConfig(init="random", rank=4, epsilon=0.5))
    assert all(f.dtype == torch.float32 for f in layer.factors)
    assert layer.delta_weight().dtype == torch.float32
    x = torch.randn(3, N).to(dtype)
    y = layer(x)
    assert y.dtype == dtype
    expected = x.float() @ (base_weight_mn(layer).float() + layer.delta_weight()).T + layer.base.bias.float()
    assert torch.allclose(y.float(), expected, atol=0.05, rtol=0.02)
    y.float().sum().backward()
    assert all(f.grad is not None and f.grad.dtype == torch.float32 for f in layer.factors)
    assert layer.base.weight.grad is None


def test_disabled_adapter_runs_the_base_alone():
    layer = DeepLoRALinear(make_base("linear"), DeepLoRAConfig(init="random", rank=4, epsilon=0.5))
    x = torch.randn(2, N, dtype=torch.float64)
    layer.enabled = False
    assert torch.equal(layer(x), layer.base(x))


def test_set_outer_checks_shapes_and_kind():
    layer = DeepLoRALinear(make_base("linear"), DeepLoRAConfig(init="compressed", rank=4), name="enc.q")
    with pytest.raises(ValueError, match=r"'enc.q' needs left \(6, 4\) and right \(10, 4\)"):
        layer.set_outer(torch.zeros(6, 3), torch.zeros(10, 4))
    layer.set_outer(torch.ones(6, 4), torch.ones(10, 4))
    assert layer.initialized and torch.equal(layer.right, torch.ones(10, 4, dtype=torch.float64))
    lora = DeepLoRALinear(make_base("linear"), DeepLoRAConfig(init="lora", rank=4), name="enc.v")
    with pytest.raises(ValueError, match="'enc.v' has init='lora'"):
        lora.set_outer(torch.ones(6, 4), torch.ones(10, 4))


def test_layer_errors_name_the_module():
    with pytest.raises(ValueError, match=r"rank 8 exceeds min\(out, in\) = 6 for 'blk.0.fc'"):
        DeepLoRALinear(make_base("linear"), DeepLoRAConfig(init="lora", rank=8), name="blk.0.fc")
    with pytest.raises(TypeError, match="'blk.0.ln' is a LayerNorm"):
        DeepLoRALinear(nn.LayerNorm(4), DeepLoRAConfig(), name="blk.0.ln")
    # "full" has width max(m, n) and does not use rank
    DeepLoRALinear(make_base("linear"), DeepLoRAConfig(init="full", rank=8))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"init": "dora"}, r"init must be one of .*got 'dora'"),
        ({"depth": 1}, "depth must be >= 2"),
        ({"init": "lora", "depth": 3}, "init='lora' is the depth-2 adapter"),
        ({"rank": 5}, "needs an even rank .* got rank=5"),
        ({"rank": 0}, "rank must be a positive int"),
        ({"epsilon": 0.0}, "epsilon must be positive"),
        ({"epsilon": -1e-3}, "epsilon must be positive"),
        ({"alpha": -1.0}, "alpha must be None or a positive"),
        ({"gamma": -0.1}, "gamma must be >= 0"),
        ({"targets": "attention"}, "targets 'attention' is not a preset"),
        ({"targets": "re:(["}, "does not compile"),
        ({"targets": []}, "non-empty list"),
        ({"svd": "qr"}, "svd must be one of"),
    ],
)
def test_config_validation_names_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeepLoRAConfig(**kwargs)


def test_config_defaults_and_depth_resolution():
    assert DeepLoRAConfig().depth == 3 and DeepLoRAConfig(init="lora").depth == 2
    assert DeepLoRAConfig(rank=5, init="random").rank == 5  # odd ranks are fine except compressed
    assert DeepLoRAConfig(targets=["query", "value"]).targets == ("query", "value")
    assert DeepLoRAConfig(alpha=16, rank=8).scaling == 2.0 and DeepLoRAConfig().scaling == 1.0
    hash(DeepLoRAConfig(targets=["query"]))  # frozen and hashable
