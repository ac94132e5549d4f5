"""The one runner: computes a run ``(config, seed)`` of either kind the book stores.

- a :class:`~compressible.finetune.classify.config.RunConfig`: fine-tuning a classifier on a GLUE task
  (paper Sec. 4; :mod:`compressible.finetune.classify`);
- a :class:`~compressible.finetune.generate.GenerationConfig`: few-shot generation on E2E NLG
  (paper App. C; :func:`compressible.finetune.generate.run_generation`).

A :class:`Runner` caches what runs share -- tokenizers, tokenised GLUE tasks, the E2E splits and
every loaded backbone -- and is the ``fn(config, seed)`` that :meth:`compressible.store.ResultStore.run`
and :func:`compressible.executors.execute` (through a factory such as
``functools.partial(Runner, device="cuda", progress=False)``) call: the GLUE sweeps, the generation
chapter and the ledger's re-execution all compute through it.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from ..hub import load_dataset
from .backbones import TINY_BERT, Backbone, load_backbone, load_tokenizer, pooler_names
from .classify import training
from .classify.config import DTYPES, RunConfig
from .classify.training import RunState
from .e2e import E2E_HUB_ID, EvalSet, evaluation_set
from .generate import GenerationConfig, replay_generation, run_generation
from .glue import GlueData, load_glue, num_labels
from .precision import autocast_dtype

__all__ = ["Runner", "GenerationData"]

log = logging.getLogger(__name__)


@dataclass
class GenerationData:
    """The training rows few-shot sets are drawn from and the evaluation set (unique MRs, all references)."""

    train_rows: Any
    eval_set: EvalSet


class Runner:
    """Runs ``(config, seed)`` pairs of either kind (:class:`~compressible.finetune.classify.config.RunConfig` or
    :class:`~compressible.finetune.generate.GenerationConfig`),
    caching tokenizers, tokenised data and loaded backbones.

    A sweep makes one ``Runner`` and passes it to :meth:`compressible.store.ResultStore.run` as
    ``fn``: ``store.run(config, seeds, Runner(device="cuda"))``. The caches live in the object,
    not in the module. Every run works on a deep copy of its backbone, so runs are independent.

    ``threads`` sets torch's CPU intra-op threads during each run (restored afterwards). By
    default runs of :data:`~compressible.finetune.backbones.TINY_BERT` use one thread: its matrices
    are too small to gain from more, and on a busy machine the thread synchronisation makes them
    several times slower.

    A GLUE run is :meth:`setup`, then :meth:`step` per batch (with :meth:`checkpoint` and
    :meth:`evaluate` where the config asks for them), then :meth:`report`; :meth:`fit` does all of
    it inside the run's seeded dropout RNG (:mod:`compressible.finetune.classify.training`).
    """

    def __init__(self, device: str | torch.device = "cpu", progress: bool = True, threads: int | None = None):
        self.device = torch.device(device)
        self.progress = progress
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be an int >= 1, got {threads!r}")
        self.threads = threads
        self.backbones: dict[tuple[str, int | None], Backbone] = {}
        """Loaded backbones by ``(name, labels)``: a classifier's outputs, ``None`` for a generator (a test
        may put a tiny one here)."""
        self.splits: Mapping[str, Any] | None = None
        """The E2E splits once loaded (a test may set small stand-ins)."""
        self._tokenizers: dict[str, Any] = {}
        self._data: dict[tuple, GlueData | GenerationData] = {}

    # ------------------------------------------------------------------ what runs share

    def tokenizer(self, backbone: str):
        """The tokenizer of classifier ``backbone`` (loaded once)."""
        if backbone not in self._tokenizers:
            self._tokenizers[backbone] = load_tokenizer(backbone)
        return self._tokenizers[backbone]

    def backbone(self, config: RunConfig | GenerationConfig) -> Backbone:
        """The loaded backbone of ``config`` (loaded on first use): a classifier with the task's outputs, or a generator."""
        if isinstance(config, RunConfig):
            key = (config.backbone, num_labels(config.task))
            if key not in self.backbones:
                self.backbones[key] = load_backbone(config.backbone, labels=key[1], tokenizer=self.tokenizer(config.backbone))
        else:
            key = (config.backbone, None)
            if key not in self.backbones:
                log.info("loading backbone %s", config.backbone)
                self.backbones[key] = load_backbone(config.backbone, device=self.device)
        return self.backbones[key]

    def data(self, config: RunConfig | GenerationConfig) -> GlueData | GenerationData:
        """The data of ``config``: the tokenised, filtered GLUE task (once per backbone, task and length), or
        the E2E training rows and evaluation set (once per split and size)."""
        if isinstance(config, RunConfig):
            key = (config.backbone, config.task, config.max_length)
            if key not in self._data:
                self._data[key] = load_glue(config.task, self.tokenizer(config.backbone), config.max_length)
        else:
            key = ("e2e", config.eval_split, config.n_eval)
            if key not in self._data:
                if self.splits is None:
                    self.splits = load_dataset(E2E_HUB_ID)
                self._data[key] = GenerationData(self.splits["train"],
                                                 evaluation_set(self.splits[config.eval_split], config.n_eval))
        return self._data[key]

    def model(self, config: RunConfig, seed: int) -> nn.Module:
        """A fresh copy of the classifier with its random parts drawn for ``seed``, on the device."""
        backbone = self.backbone(config)
        model = copy.deepcopy(backbone.model)
        training.init_random_parts(model, backbone.random_parts, seed)
        if config.pooler == "random":
            training.init_random_parts(model, pooler_names(model), seed, stream="pooler")
        model = model.to(device=self.device, dtype=DTYPES[config.dtype])
        if (self.device.type == "cpu" and autocast_dtype(config.autocast, self.device) is not None
                and callable(getattr(model, "set_attn_implementation", None))):
            model.set_attn_implementation("eager")  # CPU SDPA in bf16 is slower than eager attention
        return model

    # ------------------------------------------------------------------ whole runs

    def __call__(self, config: RunConfig | GenerationConfig, seed: int) -> dict:
        return self.run(config, seed)

    def run(self, config: RunConfig | GenerationConfig, seed: int) -> dict:
        """The result of ``(config, seed)``: that of :func:`compressible.finetune.classify.training.run` for a ``RunConfig``,
        that of :func:`~compressible.finetune.generate.run_generation` for a ``GenerationConfig``."""
        if isinstance(config, GenerationConfig):
            return self._with_threads(config, lambda: run_generation(
                config, seed, self.backbone(config), self.data(config), device=self.device))
        return self.fit(config, seed)[1]

    def fit(self, config: RunConfig, seed: int) -> tuple[nn.Module, dict]:
        """Fine-tune at ``seed``; returns the trained model (with its adapters) and the result of :meth:`run`."""
        return self._with_threads(config, lambda: training.train(self.setup(config, seed), self.progress))

    def replay(self, config: RunConfig | GenerationConfig, seed: int, steps: int) -> dict:
        """The first ``steps`` updates of ``(config, seed)`` exactly as :meth:`run` takes them (the same sample,
        batch order, dropout stream and rate schedule), for checking a stored run against its re-execution
        (:mod:`compressible.ledger.verify`). Returns ``train_loss`` and what the run fixes before it trains:
        ``lr`` and ``sample_idx`` (GLUE) or ``train_indices`` (generation)."""
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= config.steps:
            raise ValueError(f"steps must be an int in [1, {config.steps}] (the run's steps), got {steps!r}")
        if isinstance(config, GenerationConfig):
            return self._with_threads(config, lambda: replay_generation(
                config, seed, self.backbone(config), self.data(config), steps, device=self.device))
        return self._with_threads(config, lambda: training.train(self.setup(config, seed), self.progress, steps))[1]

    def _with_threads(self, config: RunConfig | GenerationConfig, fn):
        if not isinstance(config, (RunConfig, GenerationConfig)):
            raise TypeError(f"config must be a RunConfig or a GenerationConfig, got {type(config).__name__}")
        threads = self.threads if self.threads is not None else (1 if config.backbone == TINY_BERT else None)
        if threads is None:
            return fn()
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(previous)

    # ------------------------------------------------------------------ a GLUE run step by step

    def setup(self, config: RunConfig, seed: int) -> RunState:
        """Everything a GLUE run needs before its first step (:func:`~compressible.finetune.classify.training.start`)."""
        if not isinstance(config, RunConfig):
            raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        started = time.perf_counter()
        data = self.data(config)
        return training.start(config, seed, data, self.model(config, seed), self.device, started)

    def step(self, state: RunState, batch: dict, step: int) -> float:
        """One optimiser update (:func:`~compressible.finetune.classify.training.train_step`); returns its loss."""
        return training.train_step(state, batch, step)

    def evaluate(self, state: RunState, step: int) -> dict[str, float]:
        """Metrics on the run's evaluation set after ``step`` updates (recorded in ``state.evals``)."""
        return training.evaluate_state(state, step)

    def evaluate_holdout(self, state: RunState) -> dict[str, float]:
        """Metrics on the run's held-out training examples (recorded in ``state.holdout``)."""
        return training.evaluate_holdout(state)

    def probe(self, state: RunState, step: int) -> dict:
        """What the head sees on the first batch after ``step`` updates (recorded in ``state.probes``)."""
        return training.probe(state, step)

    def checkpoint(self, state: RunState, step: int) -> None:
        """Spectra and singular vectors of every ``Delta W`` after ``step`` updates (Fig. 2)."""
        training.checkpoint(state, step)

    def report(self, state: RunState) -> dict:
        """The JSON-ready result of a finished GLUE run."""
        return training.report(state)
