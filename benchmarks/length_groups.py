"""Step time of a GLUE training step in one padded batch against sub-batches of similar length.

What is measured: :meth:`compressible.finetune.classify.Runner.step` (forward, backward, Adam step) of
LoRA (the ``ci`` plan of the Few-shot GLUE chapter: ``all-MiniLM-L6-v2``, random pooler, "all dense"
targets, bf16 autocast where the CPU has it), one torch thread (as each worker of the ci sweep), on
the real STS-B training batches of the ci plan: the whole n = 16 sample at seeds 0-2 and the first
batches of the n = 256 sample at seed 0. ``split_by_length=False`` (one batch padded to its longest
pair) against ``split_by_length=True`` at several values of the per-pass overhead of
:func:`compressible.finetune.batches.length_groups`. Blocks of steps of each setting are interleaved, so
that load from other processes hits all alike; the ratios of the medians to the padded step are printed.

Run with the mirrors of a ``../shared`` folder beside the project (as ``make`` sets them)::

    HF_HUB_OFFLINE=1 HF_HUB_CACHE=../shared/hf/hub COMPRESSIBLE_GLUE=../shared/data/glue \\
        .venv/bin/python benchmarks/length_groups.py

Prints a table and writes JSON to ``benchmarks/output/length_groups_<device>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import torch

from compressible.experiments.glue_methods import FEWSHOT_METHODS
from compressible.finetune.batches import LENGTH_GROUP_OVERHEAD, split_batch
from compressible.finetune.classify import training
from compressible.finetune.classify import RunConfig, Runner

from _output import write_result  # benchmarks/_output.py (the script's folder is on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--overheads", type=int, nargs="+", default=[32, 64, 128, 256],
                        help="per-pass overheads (tokens) of length_groups to compare")
    parser.add_argument("--blocks", type=int, default=3, help="interleaved blocks per setting")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    methods = FEWSHOT_METHODS["ci"]
    runner = Runner(args.device, progress=False)
    batches = {}
    for n, seed, count in ((16, 0, 1), (16, 1, 1), (16, 2, 1), (256, 0, 4)):
        config = RunConfig("stsb", n_train=n, steps=1, backbone=methods.backbone, eval_limit=methods.eval_limit,
                           **methods.method("lora"))
        state = runner.setup(config, seed)
        batches[f"n={n} seed {seed}"] = [state.first] + [next(state.batches) for _ in range(count - 1)]
    settings = [None, *args.overheads]  # None: one padded batch
    config = RunConfig("stsb", n_train=16, steps=1, backbone=methods.backbone, **methods.method("lora"))
    states = {s: runner.setup(config.replace(split_by_length=s is not None), seed=0) for s in settings}
    all_batches = [b for group in batches.values() for b in group]

    def steps(setting) -> float:
        state = states[setting]
        split = (lambda b: split_batch(b, setting)) if setting is not None else split_batch
        with mock.patch.object(training, "split_batch", split):
            tic = time.perf_counter()
            for batch in all_batches:
                runner.step(state, dict(batch), 1)
        return (time.perf_counter() - tic) / len(all_batches)

    for state in states.values():
        state.model.train()  # dropout on, as in a training run
    for setting in settings:
        steps(setting)  # warm-up
    seconds: dict = {s: [] for s in settings}
    for _ in range(args.blocks):
        for setting in settings:
            seconds[setting].append(steps(setting))
    medians = {s: statistics.median(v) for s, v in seconds.items()}

    real = sum(int(b["attention_mask"].sum()) for b in all_batches)
    padded = sum(b["attention_mask"].numel() for b in all_batches)
    print(f"MiniLM, LoRA (ci plan), {args.threads} thread(s), {len(all_batches)} STS-B batches of 16 "
          f"({', '.join(batches)}); real tokens {real / padded:.0%} of the padded batches")
    print(f"  {'setting':<28} {'median step':>12} {'speed-up':>9} {'passes/step':>12} {'tokens/step':>12}")
    for setting in settings:
        if setting is None:
            name, passes, tokens = "one padded batch", 1.0, padded / len(all_batches)
        else:
            parts = [split_batch(b, setting) for b in all_batches]
            name = f"split, overhead {setting}"
            passes = sum(len(p) for p in parts) / len(parts)
            tokens = sum(sub["attention_mask"].numel() for p in parts for _, sub in p) / len(parts)
        print(f"  {name:<28} {1e3 * medians[setting]:9.0f} ms {medians[None] / medians[setting]:8.2f}x "
              f"{passes:12.1f} {tokens:12.0f}")
    print(f"  the package's default overhead: {LENGTH_GROUP_OVERHEAD} tokens per pass")

    write_result(f"length_groups_{torch.device(args.device).type}", {
        "args": vars(args), "batches": list(batches), "real_token_share": real / padded,
        "median_seconds": {str(s): m for s, m in medians.items()},
        "block_seconds": {str(s): v for s, v in seconds.items()},
        "speedup": {str(s): medians[None] / m for s, m in medians.items()},
        "default_overhead": LENGTH_GROUP_OVERHEAD,
    })


if __name__ == "__main__":
    main()
