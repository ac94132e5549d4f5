"""Step time of a GLUE fine-tuning step in float32 against bf16 autocast (``RunConfig.autocast``).

What is measured: one training step of :meth:`compressible.finetune.classify.Runner.step` (forward,
backward, Adam step) of LoRA (r = 8, the ``attention-mlp`` targets) on ``all-MiniLM-L6-v2`` (the
``ci`` backbone), STS-B, on one fixed batch of 16 examples x 32 tokens, with 2 torch threads;
``autocast="off"`` against ``autocast="bf16"``. Repetitions are interleaved (a block of steps of
each setting in turn), so that load from other processes hits both alike; the ratio of the medians
over blocks is printed (target >= 1.8x on an idle CPU with native bf16, ``avx512_bf16`` / AMX).

Run with the mirrors of a ``../shared`` folder beside the project (as ``make`` sets them)::

    HF_HUB_OFFLINE=1 HF_HUB_CACHE=../shared/hf/hub COMPRESSIBLE_GLUE=../shared/data/glue \\
        .venv/bin/python benchmarks/autocast.py

Prints the medians and the ratio and writes JSON to ``benchmarks/output/autocast_<device>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from compressible.deeplora import DeepLoRAConfig
from compressible.finetune.classify import RunConfig, Runner, cpu_has_bf16

from _output import write_result  # benchmarks/_output.py (the script's folder is on sys.path)

MODES = ("off", "bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=8, help="interleaved blocks per setting")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per block")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per setting before the first block")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    runner = Runner(args.device, progress=False)
    base = RunConfig("stsb", n_train=64, steps=1, batch_size=args.batch, backbone="all-MiniLM-L6-v2",
                     adapter=DeepLoRAConfig(init="lora"))
    states = {mode: runner.setup(base.replace(autocast=mode), seed=0) for mode in MODES}
    vocab = len(runner.tokenizer(base.backbone))
    gen = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(1000, vocab, (args.batch, args.tokens), generator=gen),
        "attention_mask": torch.ones(args.batch, args.tokens, dtype=torch.long),
        "labels": 5 * torch.rand(args.batch, generator=gen),
    }
    for state in states.values():
        state.model.train()  # dropout on, as in a training run
        for step in range(1, args.warmup + 1):
            runner.step(state, dict(batch), step)

    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu_seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.blocks):
        for mode, state in states.items():
            tic, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                runner.step(state, dict(batch), 1)
            seconds[mode].append((time.perf_counter() - tic) / args.steps)
            cpu_seconds[mode].append((time.process_time() - cpu) / args.steps)
    medians = {mode: statistics.median(s) for mode, s in seconds.items()}
    ratio = medians["off"] / medians["bf16"]
    best_ratio = min(seconds["off"]) / min(seconds["bf16"])  # the least disturbed block of each: robust to load
    cpu_ratio = statistics.median(cpu_seconds["off"]) / statistics.median(cpu_seconds["bf16"])

    print(f"MiniLM, LoRA r=8, batch {args.batch} x {args.tokens} tokens, {args.threads} threads, "
          f"{args.blocks} interleaved blocks of {args.steps} steps; native bf16 CPU: {cpu_has_bf16()}")
    for mode in MODES:
        print(f"  autocast={mode:<4}  median step {1e3 * medians[mode]:7.1f} ms  "
              f"(blocks: {', '.join(f'{1e3 * s:.0f}' for s in seconds[mode])})")
    print(f"  step-time ratio float32 / bf16: {ratio:.2f}x of the medians, {best_ratio:.2f}x of the fastest blocks "
          "(target >= 1.8x on an idle machine)")
    print(f"  CPU-time ratio (process CPU seconds, all threads; less sensitive to other processes): {cpu_ratio:.2f}x")

    write_result(f"autocast_{torch.device(args.device).type}", {
        "args": vars(args), "median_seconds": medians, "block_seconds": seconds, "ratio": ratio,
        "best_block_ratio": best_ratio,
        "cpu_seconds": cpu_seconds, "cpu_ratio": cpu_ratio,
        "cpu_has_bf16": cpu_has_bf16(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    })


if __name__ == "__main__":
    main()
