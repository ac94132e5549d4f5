"""Fine-tuning a sequence classifier with Deep LoRA adapters on GLUE (paper Sec. 4).

One run is ``(RunConfig, seed)``; :func:`~compressible.finetune.classify.training.run` returns a JSON-ready dict that
:class:`compressible.store.ResultStore` can keep. The defaults are the authors' protocol
(``dlt/train.py``, ``dlt/finetune.py`` and their logged configs):

- backbone ``bert-base-cased`` (:data:`compressible.finetune.backbones.BACKBONES`); inputs of at most 128 tokens; batch 16, eval batch 32;
- Adam with the authors' settings (:data:`compressible.finetune.optim.ADAM`), constant learning
  rate, no warm-up (a linear decay ``lr -> lr_end`` is available for Fig. 2);
- dropout on while training, off while evaluating and while computing the compression gradient;
- **only adapters train**: the classification head (and any part of the backbone missing from the
  checkpoint) stays at its random initialisation. ``train_head=True`` trains the classifier too
  (the usual PEFT practice; a different protocol -- say which one you run);
- ``pooler="random"`` re-draws the pooler at random too, as the authors' checkpoint had none (it
  then stays frozen unless the targets give it an adapter, as the authors' ``"all-dense"`` ones
  do); the default ``"pretrained"`` keeps the checkpoint's pooler;
- ``autocast="bf16"`` runs the model's forward (and so its backward) under bf16 autocast, while
  adapters, head, loss and optimiser state stay float32; ``"auto"`` does so where bf16 is fast
  (:func:`~compressible.finetune.precision.autocast_dtype`); the default ``"off"`` computes everything in float32;
- STS-B is a regression: one output and MSE loss; every other task uses cross-entropy;
- the compressed Deep LoRA of the paper (``DeepLoRAConfig()``: depth 3, rank 8) with the App. D.2
  learning rates: inner factors at ``1e-2``, outer factors at ``gamma * 1e-2`` with
  ``DeepLoRAConfig.gamma = 1e-2``. Other adapters default to ``lr = 1e-4``
  (:func:`compressible.finetune.optim.default_lr`).

The package's rooms: :mod:`.config` (:class:`~compressible.finetune.classify.config.RunConfig`), :mod:`.training` (one run step by step:
setup, update, evaluations, probes, checkpoints, the result dict), :mod:`.evaluation` (metrics and the
head-input probe). The precision helpers are :mod:`compressible.finetune.precision`'s, re-exported here.
A run is four steps of the one :class:`~compressible.finetune.runner.Runner` (which also computes the
generation runs): :meth:`~compressible.finetune.runner.Runner.setup` (data, model, adapters,
compression, optimiser, schedule), :meth:`~compressible.finetune.runner.Runner.step` (one update),
:meth:`~compressible.finetune.runner.Runner.evaluate` and
:meth:`~compressible.finetune.runner.Runner.report` (the result dict, spectra and Fig. 2 alignments).

Every random stream has its own generator derived from the seed (see
:func:`compressible.finetune.glue.derived_seed`): the training subset depends on ``(task, n, seed)``, the
batch order and the dropout masks on ``(task, seed)``, the random head on ``seed``, the random pooler
on ``seed`` (its own stream: the head is the same with either pooler), the adapters on ``seed`` -- so at a given seed every method sees the same data in the same order and starts from
the same head. Global RNG state is left as it was found.
"""

from __future__ import annotations

from typing import Any

from ..precision import AUTOCAST, autocast_dtype, autocast_region, cast_frozen_linears, cpu_has_bf16
from .config import COMPRESS_FROM, DTYPES, RunConfig
from .evaluation import PROBES, SATURATED, evaluate, head_input_probe
from .training import RunState, run

__all__ = ["DTYPES", "AUTOCAST", "COMPRESS_FROM", "RunConfig", "Runner", "RunState", "run", "evaluate", "autocast_dtype",
           "autocast_region", "cpu_has_bf16", "cast_frozen_linears", "head_input_probe", "PROBES", "SATURATED"]


def __getattr__(name: str) -> Any:
    # The one Runner lives in compressible.finetune.runner, which imports this package: importing it lazily lets
    # either module be imported first.
    if name == "Runner":
        from ..runner import Runner

        return Runner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
