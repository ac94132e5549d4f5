"""Wall time of the original deep matrix completion vs its compression (paper Fig. 5 setting).

In ONE process (absolute times on a shared machine are noisy; ratios within one run are not):

1. the plain matmul rate of this machine (``d x d`` times ``d x d``, median of several);
2. the original full-width depth-``L`` factorisation, trained until its train loss is below
   ``--tol`` (or ``--max-steps`` / ``--budget`` seconds run out); its final recovery error ``e*``
   and its achieved FLOP/s (``3 (L - 1)`` dense ``d x d`` products per step);
3. the compressed factorisation (Sec. 2.3, outer factors at ``gamma * lr``), trained until its
   recovery error is within 1 % of ``e*``; the time includes building the compression. If the
   budget stopped the original before it left the initial plateau (``e*`` above half the initial
   recovery error), the compressed model instead runs the same number of steps and the times of
   equal step counts are compared (the JSON says which comparison was made);
4. the per-step time of the compressed model for each residual mode (dense / observed / sampled).

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
import statistics
import sys
import time
from pathlib import Path

import torch

from compressible.matrix.chains import compressed_factorization, full_width_factorization
from compressible.matrix.completion import Stepper, TrainConfig, train
from compressible.matrix.problems import ProblemConfig, make_problem

log = logging.getLogger("benchmarks.matrix_completion")


def matmul_rate(d: int, dtype: torch.dtype, repeats: int = 7) -> float:
    """Median FLOP/s of a ``(d, d) @ (d, d)`` product."""
    a, b = torch.randn(d, d, dtype=dtype), torch.randn(d, d, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - tic)
    return 2 * d**3 / statistics.median(times)


def step_time(factorization, problem, config: TrainConfig, steps: int = 30) -> float:
    """Median seconds of one gradient-descent step (gradient + update)."""
    stepper = Stepper(factorization, problem, config)
    times = []
    for _ in range(steps):
        tic = time.perf_counter()
        _, grads = stepper.gradients()
        stepper.apply(grads, None)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


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
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)

    problem = make_problem(ProblemConfig(args.d, args.true_rank, args.observed), args.seed, dtype=dtype)
    original = full_width_factorization(args.d, args.depth, args.epsilon, args.seed + 500, dtype=dtype)
    tic = time.perf_counter()
    compressed = compressed_factorization(original, problem, args.true_rank)
    setup = time.perf_counter() - tic

    rate_before = matmul_rate(args.d, dtype)
    log.info("matmul rate %.1f GFLOP/s; training the original", rate_before / 1e9)

    # the original: stop at tol, max_steps or the time budget (checked at logged steps)
    budget_steps = args.max_steps
    if math.isfinite(args.budget):
        per_step = step_time(original, problem, TrainConfig(lr=args.lr), steps=3)
        budget_steps = max(1, min(args.max_steps, int(args.budget / per_step)))
    orig = train(
        original,
        problem,
        TrainConfig(lr=args.lr, max_steps=budget_steps, tol=args.tol, log_every=args.log_every),
    )
    target_error = float(orig.final_test_loss[0])
    orig_time = orig.time_to_test_loss(target_error)
    orig_steps = int(orig.steps[0])
    flops_per_step = 3 * (args.depth - 1) * 2 * args.d**3
    achieved = flops_per_step * orig_steps / orig.wall_time if orig.wall_time > 0 else float("nan")
    rate_after = matmul_rate(args.d, dtype)
    log.info("original: %d steps, %.1f s, recovery error %.3e", orig_steps, orig.wall_time, target_error)

    # A meaningful "same recovery error" needs the original to have left the initial plateau; when
    # the budget stopped it before (error within 50 % of its initial value), compare at equal steps.
    initial_error = float(orig.history.test_loss.iloc[0])
    meaningful = target_error < 0.5 * initial_error
    comp = train(
        compressed,
        problem,
        TrainConfig(
            lr=args.lr, gamma=args.gamma, max_steps=args.max_steps if meaningful else orig_steps,
            target_test_loss=1.01 * target_error if meaningful else None,
            log_every=max(1, args.log_every // 5),
        ),
    )
    comp_error = float(comp.final_test_loss[0])
    comp_time = comp.wall_time + setup
    log.info("compressed: %d steps, %.2f s (+%.2f s setup), recovery error %.3e", comp.steps[0], comp.wall_time, setup, comp_error)

    modes = {}
    for mode in ("dense", "observed", "sampled"):
        modes[mode] = step_time(compressed, problem, TrainConfig(lr=args.lr, gamma=args.gamma, residual=mode))
    mode_auto = Stepper(compressed, problem, TrainConfig(lr=args.lr, gamma=args.gamma)).mode
    orig_step = orig.wall_time / max(orig_steps, 1)

    result = {
        "setting": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "budget"},
        "budget_seconds": args.budget if math.isfinite(args.budget) else None,
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "python": sys.version.split()[0],
        },
        "matmul_gflops": [rate_before / 1e9, rate_after / 1e9],
        "original": {
            "steps": orig_steps,
            "reached_tol": bool(orig.converged[0]),
            "train_seconds": orig.wall_time,
            "seconds_to_target": orig_time,
            "final_train_loss": float(orig.final_train_loss[0]),
            "recovery_error": target_error,
            "seconds_per_step": orig_step,
            "achieved_gflops": achieved / 1e9,
            "fraction_of_matmul_rate": achieved / max(rate_before, rate_after),
        },
        "compressed": {
            "steps": int(comp.steps[0]),
            "reached_target": bool(comp.converged[0]),
            "setup_seconds": setup,
            "train_seconds": comp.wall_time,
            "seconds_to_target": comp_time,
            "recovery_error": comp_error,
            "relative_error_difference": (comp_error - target_error) / target_error,
            "seconds_per_step_by_residual_mode": modes,
            "auto_mode": mode_auto,
        },
        "original_left_plateau": meaningful,
        "initial_recovery_error": initial_error,
        "comparison": "time to the original's final recovery error (within 1 %)" if meaningful
        else "time for the same number of steps (the original did not leave the initial plateau in the budget)",
        "speedup": (orig_time if meaningful else orig.wall_time) / comp_time,
        "speedup_per_step": orig_step / modes[mode_auto],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))

    rows = [
        ("setting", f"d={args.d} r*={args.true_rank} p={args.observed} L={args.depth} eps={args.epsilon} "
                    f"lr={args.lr} gamma={args.gamma} {args.dtype}, {torch.get_num_threads()} threads"),
        ("matmul rate (GFLOP/s)", f"{rate_before / 1e9:.1f} before, {rate_after / 1e9:.1f} after"),
        ("original: steps / time", f"{orig_steps} steps, {orig.wall_time:.1f} s ({orig_step * 1e3:.1f} ms/step)"
                                   f"{'' if orig.converged[0] else ' (tol not reached)'}"),
        ("original: achieved", f"{achieved / 1e9:.1f} GFLOP/s = {result['original']['fraction_of_matmul_rate']:.0%} of matmul"),
        ("original: recovery error", f"{target_error:.4e}"),
        ("compressed: steps / time", f"{comp.steps[0]} steps, {comp.wall_time:.2f} s + {setup:.2f} s setup"),
        ("compressed: recovery error", f"{comp_error:.4e} ({result['compressed']['relative_error_difference']:+.2%})"),
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
