"""Wall time of the original deep matrix completion vs its compression (paper Fig. 5 setting).

In ONE process (absolute times on a shared machine are noisy; ratios within one run are not):

1. the plain matmul rate of this machine (``d x d`` times ``d x d``, median of several);
2. the original full-width depth-``L`` factorisation, trained until its train loss is below
   ``--tol`` (or ``--max-steps`` / ``--budget`` seconds run out); its final recovery error ``e*``
   and its achieved FLOP/s (``3 (L - 1)`` dense ``d x d`` products per step);
3. the compressed factorisation (Sec. 2.3, outer factors at ``gamma * lr``), trained until its
   recovery error is within 1 % of ``e*``; the time includes building the compression. If the
   budget stopped the original before it left the initial plateau (``e*`` not below half the initial
   recovery error), the compressed model instead runs the same number of steps and the times of
   equal step counts are compared (the JSON says which comparison was made);
4. the per-step time of the compressed model for each residual mode (dense / observed / sampled).

Steps 1-3 are :func:`compressible.matrix.scaling.race_to_same_error` (the deep matrix
completion chapter runs it at several ``d`` for its speed-up-against-``d`` figure); this script
adds step 4 and the report.

Training time excludes the evaluation of the recovery error at logged steps, for both models.

    python benchmarks/matrix_completion.py                 # Fig. 5 setting, float32
    python benchmarks/matrix_completion.py --d 300 --dtype float64

Prints a table and writes ``benchmarks/output/matrix_completion.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
from pathlib import Path

import torch

from compressible.experiments.completion.stats import scaling_point
from compressible.matrix.completion import Stepper, TrainConfig, torch_threads
from compressible.matrix.scaling import SameErrorConfig, race_to_same_error, step_time

log = logging.getLogger("benchmarks.matrix_completion")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=int, default=1000)
    p.add_argument("--true-rank", type=int, default=5)
    p.add_argument("--observed", type=float, default=0.2)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--epsilon", type=float, default=1e-3)
    p.add_argument("--lr", type=float, default=5e3)
    p.add_argument("--gamma", type=float, default=0.01)
    p.add_argument("--tol", type=float, default=1e-9, help="train-loss tolerance of the original")
    p.add_argument("--max-steps", type=int, default=170_000)
    p.add_argument("--budget", type=float, default=math.inf, help="stop the original after this many seconds")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "output" / "matrix_completion.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = SameErrorConfig(
        d=args.d, true_rank=args.true_rank, observed_fraction=args.observed, depth=args.depth, epsilon=args.epsilon,
        lr=args.lr, gamma=args.gamma, tol_original=args.tol, max_steps=args.max_steps,
        budget=args.budget if math.isfinite(args.budget) else None, log_every=args.log_every, dtype=args.dtype,
        threads=args.threads,
    )
    log.info("racing the original and its compression to the same recovery error at d=%d", args.d)
    race = race_to_same_error(config, seed=args.seed)
    rec, point = race.record, scaling_point(race.record)
    meaningful = rec["comparison"] == "same error"
    log.info("original: %d steps, %.1f s, recovery error %.3e", point.steps_original, rec["train_time_original"],
             point.error_original)

    with torch_threads(args.threads):
        modes = {}
        for mode in ("dense", "observed", "sampled"):
            modes[mode] = step_time(race.compressed, race.problem, TrainConfig(lr=args.lr, gamma=args.gamma, residual=mode))
        mode_auto = Stepper(race.compressed, race.problem, TrainConfig(lr=args.lr, gamma=args.gamma)).mode
    rates = [rec["matmul_flops_before"], rec["matmul_flops_after"]]

    result = {
        "setting": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "budget"},
        "budget_seconds": config.budget,
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": rec["threads"],
            "python": sys.version.split()[0],
        },
        "matmul_gflops": [r / 1e9 for r in rates],
        "original": {
            "steps": point.steps_original,
            "reached_tol": rec["reached_tol"],
            "train_seconds": rec["train_time_original"],
            "seconds_to_target": rec["time_original"],
            "final_train_loss": rec["train_loss_original"],
            "recovery_error": point.error_original,
            "seconds_per_step": point.step_time_original,
            "achieved_gflops": point.achieved_flops / 1e9,
            "fraction_of_matmul_rate": point.flops_fraction,
        },
        "compressed": {
            "steps": point.steps_compressed,
            "reached_target": point.reached,
            "setup_seconds": point.setup_time,
            "train_seconds": rec["train_time_compressed"],
            "seconds_to_target": point.time_compressed,
            "recovery_error": point.error_compressed,
            "relative_error_difference": (point.error_compressed - point.error_original) / point.error_original,
            "seconds_per_step_by_residual_mode": modes,
            "auto_mode": mode_auto,
        },
        "original_left_plateau": meaningful,
        "initial_recovery_error": rec["initial_error"],
        "comparison": "time to the original's final recovery error (within 1 %)" if meaningful
        else "time for the same number of steps (the original did not leave the initial plateau in the budget)",
        "speedup": point.time_original / point.time_compressed,
        "speedup_per_step": point.step_time_original / modes[mode_auto],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))

    rows = [
        ("setting", f"d={args.d} r*={args.true_rank} p={args.observed} L={args.depth} eps={args.epsilon} "
                    f"lr={args.lr} gamma={args.gamma} {args.dtype}, {rec['threads']} threads"),
        ("matmul rate (GFLOP/s)", f"{rates[0] / 1e9:.1f} before, {rates[1] / 1e9:.1f} after"),
        ("original: steps / time", f"{point.steps_original} steps, {rec['train_time_original']:.1f} s "
                                   f"({point.step_time_original * 1e3:.1f} ms/step)"
                                   f"{'' if rec['reached_tol'] else ' (tol not reached)'}"),
        ("original: achieved", f"{point.achieved_flops / 1e9:.1f} GFLOP/s = {point.flops_fraction:.0%} of matmul"),
        ("original: recovery error", f"{point.error_original:.4e}"),
        ("compressed: steps / time", f"{point.steps_compressed} steps, {rec['train_time_compressed']:.2f} s + "
                                     f"{point.setup_time:.2f} s setup"),
        ("compressed: recovery error", f"{point.error_compressed:.4e} ({result['compressed']['relative_error_difference']:+.2%})"),
        ("compressed: ms/step by mode", ", ".join(f"{k} {v * 1e3:.2f}" for k, v in modes.items()) + f" (auto: {mode_auto})"),
        ("comparison", result["comparison"]),
        ("speedup", f"{result['speedup']:.1f}x"),
        ("speedup per step", f"{result['speedup_per_step']:.1f}x"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
