"""Tests of compressible.finetune.classify: the run configuration and smoke runs on a tiny random BERT.

The smoke runs need the GLUE mirror (``COMPRESSIBLE_GLUE``) and the MiniLM tokenizer in the hub
cache (``HF_HUB_CACHE``), which the tiny BERT borrows; they are skipped when those are absent.
"""

import math

import numpy as np
import pytest
import torch

from compressible.deeplora import DeepLoRAConfig
from compressible.finetune.backbones import TINY_BERT
from compressible.finetune.classify import (PROBES, RunConfig, Runner, autocast_dtype, autocast_region, cast_frozen_linears,
                                            cpu_has_bf16, head_input_probe)

from .tiny import tiny_bert_runner


def test_defaults_resolve_to_the_authors_protocol():
    deep = RunConfig("stsb")
    assert deep.adapter == DeepLoRAConfig(init="compressed", depth=3, rank=8, targets="attention-mlp", gamma=1e-2)
    assert (deep.lr, deep.outer_lr) == (1e-2, 1e-4)
    assert (deep.batch_size, deep.eval_batch_size, deep.max_length, deep.n_train) == (16, 32, 128, 1024)
    assert deep.backbone == "bert-base-cased" and not deep.train_head and deep.lr_end is None
    lora = deep.replace(adapter=DeepLoRAConfig(init="lora"))
    assert (lora.adapter.depth, lora.lr, lora.outer_lr) == (2, 1e-4, None)
    assert deep.replace(adapter=DeepLoRAConfig(init="lora"), lr=1e-3).lr == 1e-3
    assert RunConfig("rte", adapter=DeepLoRAConfig(init="full")).lr == 1e-4
    assert RunConfig("rte", train_head=True).head_lr == 1e-4
    assert RunConfig("rte", checkpoints=[10, 0, 10], steps=10).checkpoints == (0, 10)
    # the run's seed goes into the adapters at run time; everything else is the config's
    assert RunConfig("rte").adapter_at(7) == DeepLoRAConfig(seed=7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "wnli"}, r"unknown GLUE task 'wnli'"),
        ({"task": "rte", "n_train": 0}, r"n_train must be an int >= 1, got 0"),
        ({"task": "rte", "n_train": 8}, r"n_train=8 is smaller than batch_size=16"),
        ({"task": "rte", "adapter": DeepLoRAConfig(seed=3)}, r"adapter.seed=3: leave it at 0, the run's seed replaces it"),
        ({"task": "rte", "steps": 5, "checkpoints": (0, 6)}, r"checkpoints must be int steps in \[0, steps=5\], got \[6\]"),
        ({"task": "rte", "head_lr": 1e-3}, r"head_lr=0.001 is set but train_head=False"),
        ({"task": "rte", "lr": -1.0}, r"lr must be a positive finite number, got -1.0"),
        ({"task": "rte", "dtype": "float16"}, r"dtype must be one of"),
        ({"task": "rte", "pooler": "none"}, r"pooler must be one of \('pretrained', 'random'\), got 'none'"),
        ({"task": "rte", "autocast": "fp16"}, r"autocast must be one of \('off', 'bf16', 'auto'\), got 'fp16'"),
    ],
)
def test_bad_configs_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**kwargs)


def test_autocast_modes():
    assert RunConfig("rte").autocast == "off" and RunConfig("rte").pooler == "pretrained"
    assert autocast_dtype("off") is None and autocast_dtype("bf16") is torch.bfloat16
    assert autocast_dtype("auto", "cpu") is (torch.bfloat16 if cpu_has_bf16() else None)
    with pytest.raises(ValueError, match=r"autocast must be one of \('off', 'bf16', 'auto'\), got 'on'"):
        autocast_dtype("on")
    a, b = torch.ones(2, 3), torch.ones(3, 2)
    with autocast_region("cpu", None):  # "off": no region, float32 matmuls
        assert (a @ b).dtype == torch.float32
    with autocast_region(torch.device("cpu"), torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16


def test_adapter_must_be_a_deeplora_config():
    with pytest.raises(TypeError, match=r"adapter must be a DeepLoRAConfig .*got 'lora'"):
        RunConfig("rte", adapter="lora")


@pytest.fixture(scope="module")
def runner():
    return tiny_bert_runner("cpu")


def _smoke(adapter="compressed", **changes):
    base = dict(task="stsb", n_train=32, steps=3, backbone=TINY_BERT, eval_limit=48, eval_every=2)
    base.update(changes)
    return RunConfig(adapter=DeepLoRAConfig(init=adapter), **base)


def _base_state(model):
    """Every parameter except adapter factors, by its name in the unadapted model."""
    return {
        name.replace(".base.", "."): p.detach().clone()
        for name, p in model.named_parameters()
        if ".factors." not in name
    }


@pytest.mark.parametrize("adapter", ["compressed", "lora"])
def test_only_adapters_change(runner, adapter):
    """Training moves the adapter factors only: backbone, pooler and random head stay bit-identical."""
    config = _smoke(adapter=adapter)
    before = {n: p.detach().clone() for n, p in runner.model(config, seed=1).named_parameters()}
    model, result = runner.fit(config, seed=1)
    after = _base_state(model)
    assert set(after) == set(before)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert changed == []
    assert any(n.startswith("bert.pooler.") for n in after) and "classifier.weight" in after
    factors = [p for n, p in model.named_parameters() if ".factors." in n]
    assert factors and result["trainable_params"] == sum(p.numel() for p in factors)
    assert [e["step"] for e in result["evals"]] == [2, 3] and result["final"]["step"] == 3
    assert len(result["train_loss"]) == 3 and all(math.isfinite(x) for x in result["train_loss"])
    assert result["n_train"] == 32 and result["n_eval"] == 48 and result["metric"] == "pearson"


def test_adapters_move(runner):
    """LoRA's B starts at zero; after training it does not."""
    model, _ = runner.fit(_smoke(adapter="lora", n_train=16), seed=0)
    last = [p for n, p in model.named_parameters() if n.endswith("factors.1")]
    assert last and all(p.abs().sum() > 0 for p in last)


def test_same_subset_head_and_order_for_every_method_at_a_seed(runner):
    lora = runner.run(_smoke(adapter="lora"), seed=2)
    deep = runner.run(_smoke(adapter="compressed"), seed=2)
    assert lora["sample_idx"] == deep["sample_idx"]
    assert runner.run(_smoke(adapter="lora"), seed=3)["sample_idx"] != lora["sample_idx"]
    head = lambda seed: runner.model(_smoke(), seed).classifier.weight  # noqa: E731
    assert torch.equal(head(2), head(2)) and not torch.equal(head(2), head(3))
    # the same method, config and seed repeats exactly (dropout masks are seeded too)
    assert runner.run(_smoke(adapter="lora"), seed=2)["train_loss"] == lora["train_loss"]


def test_random_pooler_redraws_only_the_pooler_deterministically_per_seed(runner):
    pretrained = dict(runner.model(_smoke(), seed=2).named_parameters())
    drawn = lambda seed: dict(runner.model(_smoke(pooler="random"), seed).named_parameters())  # noqa: E731
    random2 = drawn(2)
    changed = sorted(n for n in pretrained if not torch.equal(pretrained[n], random2[n]))
    assert changed == ["bert.pooler.dense.weight"]  # the bias is 0 in both; the head is the same draw
    weight = random2["bert.pooler.dense.weight"]
    assert weight.std().item() == pytest.approx(0.02, rel=0.2)  # N(0, initializer_range^2), like the head
    assert torch.equal(weight, drawn(2)["bert.pooler.dense.weight"])
    assert not torch.equal(weight, drawn(3)["bert.pooler.dense.weight"])
    # frozen unless adapted: a run with the default targets leaves the random pooler as drawn
    model, _ = runner.fit(_smoke(adapter="lora", pooler="random", steps=1, eval_every=None), seed=2)
    assert torch.equal(dict(model.named_parameters())["bert.pooler.dense.weight"], weight)


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ["compressed", "random"])
def test_bf16_autocast_gradients_match_float32(runner, adapter):
    """One step's adapter gradients under bf16 autocast equal the float32 ones to bf16 precision, and
    the adapters, their gradients and Adam's state stay float32."""
    grads = {}
    for mode in ("off", "bf16"):
        state = runner.setup(_smoke(adapter=adapter, autocast=mode), seed=0)
        state.model.eval()  # no dropout: both steps compute the same function
        runner.step(state, state.first, 1)
        factors = {n: p for n, p in state.model.named_parameters() if ".factors." in n and p.grad is not None}
        assert factors and all(p.dtype == p.grad.dtype == torch.float32 for p in factors.values())
        moments = [s["exp_avg"] for s in state.optimizer.state.values()]
        assert moments and all(m.dtype == torch.float32 for m in moments)
        grads[mode] = {n: p.grad.clone() for n, p in factors.items()}
    assert grads["off"].keys() == grads["bf16"].keys()
    for name, exact in grads["off"].items():
        error = (grads["bf16"][name] - exact).norm() / exact.norm()
        assert error < 2e-2, (name, float(error))
    assert max((grads["bf16"][n] - g).norm() / g.norm() for n, g in grads["off"].items()) > 0  # bf16 did run


@pytest.mark.slow
def test_frozen_weights_cast_once_give_the_autocast_step_exactly(runner):
    """A run under bf16 autocast holds its frozen linear weights in bf16 (cast once in ``setup``); its
    step equals, bit for bit, the step of a model whose float32 weights autocast casts at every call,
    and the run's end gives the float32 weights back."""
    config = _smoke(adapter="compressed", autocast="bf16")
    state = runner.setup(config, seed=0)
    linears = {n: m.weight for n, m in state.model.named_modules() if isinstance(m, torch.nn.Linear)}
    frozen = {n for n, w in linears.items() if not w.requires_grad}
    assert frozen and all(linears[n].dtype == torch.bfloat16 for n in frozen)
    assert all(w.dtype == torch.float32 for n, w in linears.items() if n not in frozen)  # trainable: left alone
    assert all(p.dtype == torch.float32 for n, p in state.model.named_parameters() if "LayerNorm" in n)
    reference = runner.setup(config, seed=0)
    reference.restore_weights()  # float32 weights, cast by autocast at every call
    assert all(reference.model.get_submodule(n).weight.dtype == torch.float32 for n in frozen)
    for s in (state, reference):
        s.model.eval()
        runner.step(s, dict(s.first), 1)
    assert state.losses == reference.losses
    grads = {n: p.grad for n, p in reference.model.named_parameters() if p.grad is not None}
    assert grads and all(torch.equal(dict(state.model.named_parameters())[n].grad, g) for n, g in grads.items())
    model, _ = runner.fit(config.replace(steps=1, eval_every=None), seed=0)
    assert all(model.get_submodule(n).weight.dtype == torch.float32 for n in frozen)
    with pytest.raises(ValueError, match=r"dtype must be a floating torch.dtype such as torch.bfloat16, got 'bf16'"):
        cast_frozen_linears(model, "bf16")


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ["compressed", "lora"])
def test_a_step_split_by_length_is_the_padded_step(runner, adapter):
    """``split_by_length`` computes a step in sub-batches of similar length: with dropout off, its loss and
    adapter gradients equal those of the one padded batch to float32 rounding, and the batch did split."""
    from compressible.finetune.batches import split_batch

    out = {}
    for split in (False, True):
        state = runner.setup(_smoke(adapter=adapter, split_by_length=split), seed=0)
        if split:
            assert len(split_batch(state.first)) > 1
        state.model.eval()
        loss = runner.step(state, dict(state.first), 1)
        out[split] = loss, {n: p.grad.clone() for n, p in state.model.named_parameters() if p.grad is not None}
    (loss, grads), (split_loss, split_grads) = out[False], out[True]
    assert math.isclose(split_loss, loss, rel_tol=1e-5)
    assert grads.keys() == split_grads.keys() and grads
    for name, g in grads.items():
        assert torch.allclose(split_grads[name], g, rtol=1e-4, atol=1e-6 * float(g.abs().max())), name
    with pytest.raises(ValueError, match=r"split_by_length must be True or False, got 'yes'"):
        _smoke(split_by_length="yes")


def test_compress_from_the_whole_sample(runner):
    """``compress_from="sample"`` builds the outer factors from one batch of the whole sample: the same
    factors as the first batch when the sample is one batch, other ones when it is not."""
    def outer(config):
        state = runner.setup(config, seed=0)
        return {n: p.detach().clone() for n, p in state.model.named_parameters() if ".factors." in n}

    one_batch = _smoke(n_train=16)
    first, whole = outer(one_batch), outer(one_batch.replace(compress_from="sample"))
    assert first.keys() == whole.keys() and all(torch.equal(first[n], whole[n]) for n in first)
    larger = _smoke(n_train=48)
    first, whole = outer(larger), outer(larger.replace(compress_from="sample"))
    assert any(not torch.allclose(first[n], whole[n]) for n in first)
    with pytest.raises(ValueError, match=r"compress_from='sample' applies to compressed adapters only, not adapter.init='lora'"):
        _smoke(adapter="lora", compress_from="sample")
    with pytest.raises(ValueError, match=r"compress_from must be one of \('first-batch', 'sample'\), got 'all'"):
        _smoke(compress_from="all")


def test_run_config_keys_are_stable():
    """A result store finds runs by these keys: a new field must not change the key of configs that
    leave it at its default (``KEY_OPTIONAL``), or every stored result would be recomputed."""
    from compressible.store import config_key

    assert config_key(RunConfig("stsb")) == "9f9a0ff20e523142"
    assert config_key(RunConfig("stsb", compress_from="sample")) != "9f9a0ff20e523142"


def test_holdout_run_reports_held_out_metrics_and_the_training_check(runner):
    result = runner.run(_smoke(steps=2, eval_every=None, holdout=8), seed=0)
    assert set(result["holdout"]) >= {"pearson", "loss"} and isinstance(result["trained"], bool)
    labels = np.asarray(result["train_loss"])  # the check reads the losses against the sample's constant predictor
    assert result["loss_baseline"] > 0 and result["trained"] == (labels[-10:].mean() < 0.5 * result["loss_baseline"])
    assert "holdout" not in runner.run(_smoke(steps=2, eval_every=None), seed=0)
    # holdout_eval=False holds the same examples out (same sample) but does not score them; the run is unchanged
    quiet = runner.run(_smoke(steps=2, eval_every=None, holdout=8, holdout_eval=False), seed=0)
    assert "holdout" not in quiet
    assert quiet["sample_idx"] == result["sample_idx"] and quiet["train_loss"] == result["train_loss"]
    assert quiet["final"] == result["final"]
    with pytest.raises(ValueError, match="holdout_eval must be True or False, got 'no'"):
        _smoke(holdout=8, holdout_eval="no")


def test_bf16_on_cpu_uses_eager_attention(runner):
    assert runner.model(_smoke(autocast="bf16"), seed=0).config._attn_implementation == "eager"
    assert runner.model(_smoke(), seed=0).config._attn_implementation != "eager"


def test_global_rng_state_is_left_alone(runner):
    state = torch.get_rng_state()
    runner.run(_smoke(steps=1, eval_every=None), seed=0)
    assert torch.equal(state, torch.get_rng_state())


def test_train_head_trains_the_classifier(runner):
    config = _smoke(adapter="lora", train_head=True, head_lr=1e-2)
    before = runner.model(config, seed=0).classifier.weight.detach().clone()
    model, result = runner.fit(config, seed=0)
    assert not torch.equal(before, model.classifier.weight)
    assert result["trainable_params"] == sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)


def test_linear_decay_and_checkpoints(runner):
    config = _smoke(adapter="full", steps=4, lr=1e-4, lr_end=1e-5, eval_every=None,
                    checkpoints=(0, 2, 4), spectrum_top=3, checkpoint_rank=2)
    result = runner.run(config, seed=0)
    # optax.linear_schedule: lr + (lr_end - lr) * t / steps at update t = 0..steps-1
    assert result["lr"] == pytest.approx([1e-4 - 9e-5 * t / 4 for t in range(4)])
    ckpt = result["checkpoints"]
    assert ckpt["steps"] == [0, 2, 4] and ckpt["k"] == 2
    names = list(ckpt["alignment"])
    assert len(names) == result["adapted_modules"] == 12  # 6 per block, 2 blocks
    for name in names:
        assert ckpt["alignment"][name][-1] == pytest.approx(1.0)  # the final subspace with itself
        assert all(0.0 <= a <= 1.0 + 1e-9 for a in ckpt["alignment"][name])
        assert len(ckpt["singular_values"][name]) == 3 and len(ckpt["singular_values"][name][0]) == 3
    spectrum = result["spectra"][names[0]]
    assert len(spectrum["singular_values"]) == 3 and 0 <= spectrum["rank"] <= 8


def test_classification_task_and_sampling_without_replacement(runner):
    result = runner.run(_smoke(task="rte", replacement=False, eval_every=None), seed=0)
    assert len(set(result["sample_idx"])) == 32
    assert set(result["final"]) == {"step", "accuracy", "loss"}


def test_setup_names_a_bad_config_or_seed():
    runner = Runner("cpu", progress=False)
    with pytest.raises(TypeError, match="config must be a RunConfig, got dict"):
        runner.setup({"task": "rte"}, 0)
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        runner.setup(RunConfig("rte"), -1)


def test_the_loop_in_pieces_reports_what_fit_reports(runner):
    """setup / step / evaluate / report by hand (dropout off) give a result of the same shape as fit."""
    config = _smoke(adapter="lora", steps=2, eval_every=None)
    state = runner.setup(config, seed=0)
    state.model.eval()  # no dropout: no need for the run's seeded RNG
    batch = state.first
    for step in (1, 2):
        loss = runner.step(state, batch, step)
        assert loss == state.losses[-1] and math.isfinite(loss)
        batch = next(state.batches)
    metrics = runner.evaluate(state, 2)
    result = runner.report(state)
    assert result["final"] == metrics == state.evals[-1] and result["train_loss"] == state.losses
    assert set(result) == set(runner.run(config, seed=0))
    assert result["sample_idx"] == runner.run(config, seed=0)["sample_idx"]


def test_probes_at_step_zero_every_steps_over_probes_and_the_last(runner):
    """A 3-step run probes after 0, 1, 2, 3 updates (every max(1, 3 // PROBES) = 1); a 45-step run every 45 // PROBES = 4 and at 45."""
    result = runner.run(_smoke(adapter="lora", steps=3), seed=0)
    assert [p["step"] for p in result["probes"]] == [0, 1, 2, 3]
    assert all(p["spread"] > 0 and 0 <= p["saturated"] <= 1 for p in result["probes"])
    long = runner.run(_smoke(adapter="lora", steps=45, eval_every=None), seed=0)
    assert PROBES == 10
    assert [p["step"] for p in long["probes"]] == [0, *range(4, 45, 4), 45]


def test_head_input_probe_on_a_constant_saturated_pooler(runner):
    """Pooler weight 0 and bias 5: every example gives the head tanh(5) > 0.99 in every unit, so the
    spread is exactly 0 and every unit is saturated; bias 0 gives tanh(0) = 0, nothing saturated."""
    model = runner.model(_smoke(adapter="lora"), seed=0)
    batch = runner.setup(_smoke(adapter="lora"), seed=0).first
    dense = model.bert.pooler.dense
    with torch.no_grad():
        dense.weight.zero_()
        dense.bias.fill_(5.0)
    model.train()
    rng = torch.get_rng_state()
    assert head_input_probe(model, batch) == {"spread": 0.0, "saturated": 1.0}
    assert model.training and torch.equal(torch.get_rng_state(), rng)  # mode restored, no random numbers drawn
    with torch.no_grad():
        dense.bias.zero_()
    assert head_input_probe(model, batch) == {"spread": 0.0, "saturated": 0.0}


def test_head_input_probe_needs_a_head():
    with pytest.raises(ValueError, match=r"Linear has no head module named one of \('classifier', 'score'\)"):
        head_input_probe(torch.nn.Linear(2, 2), {"input_ids": torch.zeros(1, 2)})
