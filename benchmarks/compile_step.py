"""Does ``torch.compile`` make a few-shot GLUE training step cheaper, and does it keep the numbers?

What is measured: :meth:`compressible.finetune.classify.Runner.step` (forward, backward, Adam step, the
``ci`` protocol of the Few-shot GLUE chapter: ``all-MiniLM-L6-v2``, random frozen pooler and head, bf16
autocast where the CPU has it, sub-batches of similar length) for LoRA, compressed Deep LoRA and the
full-width depth-3 adapter, one torch thread (as every ledger run), at n = 16 (one batch is the whole
sample) and n = 256. Two runs start from the same seed: one eager, one whose model is
``torch.compile(model, dynamic=True)`` with inductor's ``fallback_random`` (dropout draws the same masks as
eager, so the two runs differ by rounding only). Per setting the script reports

- the compile cost: the time of the first ``--warmup`` compiled steps minus as many eager steps;
- the speed-up: the median eager step over the median compiled step, in blocks of steps interleaved
  between the two (load from other processes hits both alike);
- the numbers: the largest absolute difference of the training loss over the first ``--warmup`` steps,
  which both runs take from the same generator state on the same batches, to set beside the ledger's
  verification tolerances (:data:`compressible.ledger.verify.TOLERANCES`).

The ledger adopts compiled steps only if the speed-up is at least 1.3x and the losses stay within
those tolerances (issue #26). Run with the mirrors of a ``../shared`` folder beside the project::

    make benchmarks  # or: HF_HUB_OFFLINE=1 HF_HUB_CACHE=../shared/hf/hub COMPRESSIBLE_GLUE=../shared/data/glue \\
                     #     .venv/bin/python benchmarks/compile_step.py

Prints a table and writes JSON to ``benchmarks/output/compile_step_<device>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch._inductor.config as inductor_config

from compressible.experiments.glue_methods import ATTENTION_POOLER_TARGETS, FEWSHOT_METHODS
from compressible.finetune.classify import RunConfig, Runner

from _output import write_result  # benchmarks/_output.py (the script's folder is on sys.path)


def _config(method: str, n: int) -> RunConfig:
    m = FEWSHOT_METHODS["ci"]
    fields = {"targets": ATTENTION_POOLER_TARGETS} if method == "full" else {}
    return RunConfig("stsb", n_train=n, steps=10_000, backbone=m.backbone, eval_limit=m.eval_limit,
                     **m.method(method, **fields))


def _block(runner: Runner, state, steps: int, start: int) -> float:
    tic = time.perf_counter()
    for k in range(steps):
        runner.step(state, next(state.batches), start + k)
    return (time.perf_counter() - tic) / steps


def measure(runner: Runner, method: str, n: int, warmup: int, blocks: int, block_steps: int) -> dict:
    config = _config(method, n)
    eager = runner.setup(config, seed=0)
    compiled = runner.setup(config, seed=0)
    compiled.model = torch.compile(compiled.model, dynamic=True)
    eager.model.train()
    compiled.model.train()
    # the numbers: the first `warmup` steps of both from the same generator state (dropout draws from it),
    # on the same batches; the compiled steps include the compilation
    torch.manual_seed(0)
    tic = time.perf_counter()
    _block(runner, compiled, warmup, 1)
    compiled_warmup = time.perf_counter() - tic
    torch.manual_seed(0)
    eager_warmup = _block(runner, eager, warmup, 1) * warmup
    seconds = {"eager": [], "compiled": []}
    step = warmup + 1
    for _ in range(blocks):
        seconds["eager"].append(_block(runner, eager, block_steps, step))
        seconds["compiled"].append(_block(runner, compiled, block_steps, step))
        step += block_steps
    losses = list(zip(eager.losses[:warmup], compiled.losses[:warmup]))
    median = {k: statistics.median(v) for k, v in seconds.items()}
    return {
        "method": method, "n": n, "compared_steps": len(losses),
        "compile_seconds": compiled_warmup - eager_warmup,
        "median_step_seconds": median, "block_seconds": seconds,
        "speedup": median["eager"] / median["compiled"],
        "max_abs_loss_difference": max(abs(a - b) for a, b in losses),
        "autocast": str(eager.autocast),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["lora", "compressed", "full"])
    parser.add_argument("--n", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--warmup", type=int, default=8, help="compiled steps that include the compilation")
    parser.add_argument("--blocks", type=int, default=3, help="interleaved blocks per setting")
    parser.add_argument("--block-steps", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    inductor_config.fallback_random = True  # dropout through torch's own generator: the same masks as eager

    runner = Runner(args.device, progress=False)
    rows = [measure(runner, method, n, args.warmup, args.blocks, args.block_steps)
            for method in args.methods for n in args.n]
    print(f"torch.compile on a Few-shot GLUE step (MiniLM, ci protocol), {args.threads} thread(s), "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"  {'method':<11} {'n':>4} {'eager ms':>9} {'compiled ms':>12} {'speed-up':>9} {'compile s':>10} "
          f"{'max |Δ loss|':>13}")
    for r in rows:
        m = r["median_step_seconds"]
        print(f"  {r['method']:<11} {r['n']:>4} {1e3 * m['eager']:9.0f} {1e3 * m['compiled']:12.0f} "
              f"{r['speedup']:8.2f}x {r['compile_seconds']:10.0f} {r['max_abs_loss_difference']:13.2e}")
    write_result(f"compile_step_{torch.device(args.device).type}", {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
