"""One GLUE run, step by step, on a model and data the :class:`~compressible.finetune.runner.Runner` provides.

:func:`start` builds a :class:`RunState` (sample, batch order, adapters, compression, optimiser,
schedule); :func:`train_step` takes one update; :func:`evaluate_state`, :func:`probe` and
:func:`checkpoint` record what the config asks for; :func:`report` is the JSON-ready result; and
:func:`train` runs all of it inside the run's seeded dropout stream.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ...deeplora import AdapterReport, add_adapters, basis_alignment, compress_from_batch, numerical_rank
from ..backbones import HEAD_PREFIXES
from ..batches import collate, split_batch, train_batches
from ..glue import Examples, GlueData, derived_seed
from ..metrics import has_trained, loss_baseline, primary_metric
from ..optim import ADAM, adapter_optimizer
from ..peft_family import PeftAdapter, attach
from ..precision import autocast_dtype, autocast_region, cast_frozen_linears, forked_rng
from .config import RunConfig
from .evaluation import PROBES, classifier_loss, delta_snapshot, evaluate, head_input_probe

__all__ = ["RunState", "init_random_parts", "start", "train_step", "evaluate_state", "evaluate_holdout", "probe",
           "checkpoint", "report", "train", "run"]


@dataclass
class RunState:
    """A run in progress (built by :meth:`~compressible.finetune.runner.Runner.setup`, advanced by
    :meth:`~compressible.finetune.runner.Runner.step`)."""

    config: RunConfig
    seed: int
    start: float
    """``time.perf_counter()`` when the run started."""
    data: GlueData
    train_set: Examples
    eval_set: Examples
    model: nn.Module
    report: AdapterReport
    batches: Iterator[dict[str, Tensor]]
    first: dict[str, Tensor]
    """The first training batch (also the one the compressed initialisation used)."""
    optimizer: torch.optim.Optimizer
    schedule: Any
    timings: dict[str, float]
    evals: list[dict] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)
    """``[{"step", "spread", "saturated"}]``: :func:`~compressible.finetune.classify.evaluation.head_input_probe` on the first batch."""
    snapshots: dict[int, dict[str, tuple[Tensor, Tensor]]] = field(default_factory=dict)
    """``{step: {module: (top singular values, top left singular vectors)}}`` at the config's checkpoints."""
    autocast: torch.dtype | None = None
    """The dtype of the model's autocast region (``config.autocast`` resolved on the device), or ``None``."""
    holdout: dict[str, float] | None = None
    """Final metrics on the held-out training examples (``config.holdout > 0``), set after the last step."""
    originals: list[tuple[nn.Parameter, Tensor]] = field(default_factory=list)
    """The float32 data of the frozen weights cast to the autocast dtype for the run
    (:func:`~compressible.finetune.precision.cast_frozen_linears`)."""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where the run computes."""

    def restore_weights(self) -> None:
        """Give the frozen weights cast for autocast their original data back (merging and export then see float32)."""
        for param, data in self.originals:
            param.data = data
        self.originals = []

    @property
    def k_values(self) -> int:
        """Singular values kept per checkpoint."""
        return max(self.config.spectrum_top, self.config.checkpoint_rank)

    @property
    def trainable_params(self) -> int:
        return int(sum(p.numel() for g in self.optimizer.param_groups for p in g["params"]))


def init_random_parts(model: nn.Module, names: set[str], seed: int, stream: str = "head") -> None:
    """Re-draw the parameters ``names`` (head, missing weights) from a generator seeded by ``seed``
    (and ``stream``: the random pooler has its own, so the head does not depend on the pooler).

    Matches transformers' BERT initialisation: weights ``N(0, initializer_range^2)``, biases 0,
    LayerNorm weights 1.
    """
    std = float(getattr(model.config, "initializer_range", 0.02))
    gen = torch.Generator().manual_seed(derived_seed(stream, seed))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(names):
            p = params.get(name)
            if p is None:
                continue
            if name.endswith("bias"):
                p.zero_()
            elif p.ndim == 1:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).mul_(std).to(p.dtype))


def _attach_peft(config: RunConfig, seed: int, model: nn.Module, first: dict[str, Tensor], device: torch.device) -> AdapterReport:
    """One of PEFT's LoRA variants on ``model`` (:func:`compressible.finetune.peft_family.attach`), drawn under the
    run's own seeded generator; LoRA-GA's gradient comes from the first batch, as compressed Deep LoRA's does."""
    def gradient_step(m: nn.Module) -> None:
        inputs = {k: v.to(device) for k, v in first.items() if k != "labels"}
        classifier_loss(m(**inputs).logits.float(), first["labels"].to(device), config.task).backward()

    with forked_rng(device, derived_seed("adapter", config.task, seed)), warnings.catch_warnings():
        # LoRA-GA's gradient hooks fire on module outputs, as PEFT intends (the inputs are token ids)
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        names = attach(model, config.adapter, gradient_step)
    params = [sum(p.numel() for n, p in model.named_parameters() if n.startswith(f"{name}.") and "lora_" in n)
              for name in names]
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return AdapterReport(config.adapter, names, [], [], params, frozen)


def start(config: RunConfig, seed: int, data: GlueData, model: nn.Module, device: torch.device, started: float) -> RunState:
    """Everything a run needs before its first step, on ``data`` and a fresh ``model`` (random parts drawn
    for ``seed``): the seed's training sample and batch order, the adapters (compressed from the first batch
    for ``"compressed"``), the optimiser and the learning-rate schedule. ``started``: ``time.perf_counter()``
    when the run started."""
    train_set = data.sample(config.n_train, seed, config.replacement, holdout=config.holdout)
    if len(train_set) < config.batch_size:
        raise ValueError(
            f"{config.task}: {len(train_set)} training examples after filtering, fewer than batch_size={config.batch_size}"
        )
    eval_set = data.eval_subset(config.eval_limit)
    peft = isinstance(config.adapter, PeftAdapter)
    adapters = None if peft else add_adapters(model, config.adapter_at(seed))
    head = [p for n, p in model.named_parameters() if n.split(".")[0] in HEAD_PREFIXES]
    order = torch.Generator().manual_seed(derived_seed("order", config.task, seed))
    batches = train_batches(train_set, config.batch_size, data.pad_token_id, order)
    first = next(batches)
    if peft:
        adapters = _attach_peft(config, seed, model, first, device)

    # wall-clock seconds per phase, and CPU seconds of this process (all threads) for train/eval
    timings = {"setup": time.perf_counter() - started, "compress": 0.0, "train": 0.0, "eval": 0.0, "analysis": 0.0,
               "train_cpu": 0.0, "eval_cpu": 0.0}
    if config.adapter.init == "compressed":
        tic = time.perf_counter()
        source = first if config.compress_from == "first-batch" else collate(train_set, data.pad_token_id)
        compress_from_batch(model, {k: v.to(device) for k, v in source.items()})
        timings["compress"] = time.perf_counter() - tic

    extra = []
    if config.train_head:
        for p in head:
            p.requires_grad_(True)
        extra.append({"params": head, "lr": config.head_lr, "name": "head"})
    if peft:
        trainable = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
        optimizer = torch.optim.Adam([{"params": trainable, "lr": config.lr, "name": "adapters"}, *extra], **ADAM)
    else:
        optimizer = adapter_optimizer(model, config.lr, extra)
    if config.lr_end is None:
        schedule = None
    else:  # optax.linear_schedule: lr at update t is lr + (lr_end - lr) * t / steps
        ratio = config.lr_end / config.lr
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: 1.0 + (ratio - 1.0) * min(t, config.steps) / config.steps
        )
    autocast = autocast_dtype(config.autocast, device)
    # autocast re-casts every frozen float32 weight at every forward (only leaves that require grad are
    # cached); casting them once gives the same bf16 values for a tenth less step time
    originals = [] if autocast is None else cast_frozen_linears(model, autocast)
    return RunState(config, seed, started, data, train_set, eval_set, model, adapters, batches, first,
                    optimizer, schedule, timings, autocast=autocast, originals=originals, device=device)


def train_step(state: RunState, batch: dict[str, Tensor], step: int) -> float:
    """One optimiser update on ``batch`` (the ``step``-th, from 1); returns its loss.

    Raises:
        FloatingPointError: when the loss is not finite (the message suggests a lower ``lr``).
    """
    config, optimizer, device = state.config, state.optimizer, state.device
    tic, cpu = time.perf_counter(), time.process_time()
    state.lrs.append(float(optimizer.param_groups[0]["lr"]))
    optimizer.zero_grad(set_to_none=True)
    parts = split_batch(batch) if config.split_by_length else [(1.0, batch)]
    loss = 0.0
    for share, part in parts:
        part = {k: v.to(device) for k, v in part.items()}
        if state.autocast is None and len(parts) == 1:
            part_loss = state.model(**part).loss
        else:  # only the model's forward is autocast; the loss is computed in float32 from its logits
            labels = part.pop("labels")
            with autocast_region(device, state.autocast):
                logits = state.model(**part).logits
            part_loss = classifier_loss(logits.float(), labels, config.task)
        (share * part_loss).backward()
        loss = loss + share * part_loss.detach()
    optimizer.step()
    if state.schedule is not None:
        state.schedule.step()
    state.losses.append(float(loss.detach()))
    state.timings["train"] += time.perf_counter() - tic
    state.timings["train_cpu"] += time.process_time() - cpu
    if not math.isfinite(state.losses[-1]):
        raise FloatingPointError(
            f"{config.task} {config.adapter.init} seed {state.seed}: training loss is {state.losses[-1]} "
            f"at step {step}; lower lr={config.lr}"
        )
    return state.losses[-1]


def evaluate_state(state: RunState, step: int) -> dict[str, float]:
    """Metrics of the model on the run's evaluation set after ``step`` updates (recorded in ``state.evals``)."""
    config = state.config
    tic, cpu = time.perf_counter(), time.process_time()
    metrics = evaluate(state.model, state.eval_set, config.task, state.data.pad_token_id, config.eval_batch_size,
                       state.device, autocast=state.autocast)
    state.evals.append({"step": step, **metrics})
    state.timings["eval"] += time.perf_counter() - tic
    state.timings["eval_cpu"] += time.process_time() - cpu
    return state.evals[-1]


def evaluate_holdout(state: RunState) -> dict[str, float]:
    """Metrics of the model on the ``config.holdout`` training examples set aside from every sample
    (recorded in ``state.holdout``)."""
    config = state.config
    tic = time.perf_counter()
    state.holdout = evaluate(state.model, state.data.holdout(config.holdout), config.task, state.data.pad_token_id,
                             config.eval_batch_size, state.device, autocast=state.autocast)
    state.timings["eval"] += time.perf_counter() - tic
    return state.holdout


def probe(state: RunState, step: int) -> dict:
    """:func:`~compressible.finetune.classify.evaluation.head_input_probe` on the run's first training batch after
    ``step`` updates (recorded in ``state.probes``)."""
    tic = time.perf_counter()
    state.probes.append({"step": step, **head_input_probe(state.model, state.first, state.device, state.autocast)})
    state.timings["analysis"] += time.perf_counter() - tic
    return state.probes[-1]


def checkpoint(state: RunState, step: int) -> None:
    """Record the top singular values and left singular vectors of every ``Delta W`` after ``step``
    updates (Fig. 2); :func:`report` compares the vectors with the final ones
    (:func:`compressible.deeplora.analysis.basis_alignment`)."""
    tic = time.perf_counter()
    state.snapshots[step] = delta_snapshot(state.model, state.k_values, state.config.checkpoint_rank)
    state.timings["analysis"] += time.perf_counter() - tic


def report(state: RunState) -> dict:
    """The JSON-ready result of a finished run (see :func:`compressible.finetune.classify.training.run`)."""
    config, data, model = state.config, state.data, state.model
    baseline = loss_baseline(config.task, state.train_set.labels)
    result: dict[str, Any] = {
        "task": config.task,
        "adapter": config.adapter.init,
        "metric": primary_metric(config.task),
        "evals": state.evals,
        "final": state.evals[-1],
        "train_loss": state.losses,
        "probes": state.probes,
        "loss_baseline": baseline,
        "trained": has_trained(state.losses, baseline),
        "lr": state.lrs,
        "trainable_params": state.trainable_params,
        "adapted_modules": len(state.report.modules),
        "n_train": len(state.train_set),
        "train_pool": len(data.train),
        "n_eval": len(state.eval_set),
        "eval_split": data.eval_split,
        "eval_dropped_by_filter": int(data.raw_sizes[data.eval_split] - len(data.eval)),
        "device": str(state.device),
        "autocast": "off" if state.autocast is None else str(state.autocast).removeprefix("torch."),
        "threads": torch.get_num_threads(),
    }
    if config.n_train is not None:
        result["sample_idx"] = state.train_set.idx.tolist()
    if state.holdout is not None:
        result["holdout"] = state.holdout
    tic = time.perf_counter()
    if config.spectrum_top:
        ranks = numerical_rank(model)
        result["spectra"] = {
            name: {"singular_values": s.tolist(), "rank": int(ranks[name])}
            for name, (s, _) in delta_snapshot(model, config.spectrum_top, 1).items()
        }
    if config.checkpoints:
        snapshots = state.snapshots
        final = snapshots[config.steps] if config.steps in snapshots else delta_snapshot(model, state.k_values, config.checkpoint_rank)
        steps = sorted(snapshots)
        result["checkpoints"] = {
            "steps": steps,
            "k": config.checkpoint_rank,
            "singular_values": {n: [snapshots[t][n][0].tolist() for t in steps] for n in final},
            "alignment": {n: [basis_alignment(snapshots[t][n][1], final[n][1]) for t in steps] for n in final},
        }
    state.timings["analysis"] += time.perf_counter() - tic
    result["timings"] = state.timings
    result["wall_time"] = time.perf_counter() - state.start
    return result


def train(state: RunState, progress: bool = False, until: int | None = None) -> tuple[nn.Module, dict]:
    """Every step of a set-up run inside its seeded dropout stream, with the probes, checkpoints and
    evaluations its config asks for; returns the trained model and :func:`report`. With ``until``, stop
    after that step and return ``train_loss``, ``lr`` and ``sample_idx`` of the steps taken (a replay)."""
    config, seed = state.config, state.seed
    if 0 in config.checkpoints:
        checkpoint(state, 0)
    state.model.train()
    bar = tqdm(range(1, config.steps + 1), disable=not progress, leave=False,
               desc=f"{config.task} {config.adapter.init} seed {seed}")
    metric = primary_metric(config.task)
    every = max(1, config.steps // PROBES)
    probe(state, 0)
    with forked_rng(state.device, derived_seed("dropout", config.task, seed)):
        batch = state.first
        for step in bar:
            train_step(state, batch, step)
            if step == until:  # a replay stops here
                bar.close()
                state.restore_weights()
                return state.model, {"train_loss": state.losses, "lr": state.lrs,
                                     "sample_idx": state.train_set.idx.tolist() if config.n_train is not None else None}
            if step % every == 0 or step == config.steps:
                probe(state, step)
            if step in config.checkpoints:
                checkpoint(state, step)
            if step == config.steps or (config.eval_every and step % config.eval_every == 0):
                evaluate_state(state, step)
            if step == config.steps and config.holdout and config.holdout_eval:
                evaluate_holdout(state)
            if step == config.steps:
                bar.set_postfix(loss=f"{state.losses[-1]:.3g}", **{metric: f"{state.evals[-1][metric]:.3f}"})
            if step < config.steps:
                batch = next(state.batches)
    result = report(state)
    state.restore_weights()
    state.model.eval()
    return state.model, result


def run(config: RunConfig, seed: int, device: str | torch.device = "cpu", progress: bool = True) -> dict:
    """Fine-tune ``config.backbone`` on ``config.task`` at ``seed`` and evaluate it.

    Returns a JSON-ready dict:

    - ``evals``: ``[{"step", <metrics>, "loss"}]`` at every evaluation; ``final``: the last one;
      ``metric``: the paper's metric name (``final[metric]`` is the number to report);
    - ``train_loss``: the loss of every step's batch (dropout on); ``lr``: the (inner) learning
      rate of every step; ``loss_baseline``: the loss of the best constant predictor on the
      training sample (:func:`~compressible.finetune.metrics.loss_baseline`) and ``trained``
      whether the run's final loss fell well below it (:func:`~compressible.finetune.metrics.has_trained`);
    - ``probes``: ``[{"step", "spread", "saturated"}]``, what the head sees on the first training batch
      (:func:`~compressible.finetune.classify.evaluation.head_input_probe`) at step 0, every ``steps // PROBES`` steps and after the last;
    - ``holdout`` (if ``config.holdout`` and ``config.holdout_eval``): final metrics on the held-out training examples;
    - ``trainable_params``, ``adapted_modules``, ``n_train``, ``train_pool``, ``n_eval``,
      ``eval_split``, ``eval_dropped_by_filter``, ``sample_idx`` (GLUE ``idx`` of the sample);
    - ``spectra`` (if ``spectrum_top``): ``{module: {"singular_values", "rank"}}`` of the final updates;
    - ``checkpoints`` (if any): ``steps``, ``singular_values[module][i]`` at ``steps[i]`` and
      ``alignment[module][i]`` = largest singular value of ``U_t^T U_final`` (top-``k`` left
      singular vectors);
    - ``timings`` (seconds of setup, compress, train, eval, analysis) and ``wall_time``.

    For several runs, use one :class:`~compressible.finetune.runner.Runner` (it caches the data and the backbone).
    """
    from ..runner import Runner  # the runner imports this module

    return Runner(device, progress).run(config, seed)
