"""How the compressed model's speed-up grows with ``d``: the race to the same recovery error.

:func:`race_to_same_error` times the original full-width factorisation and its compression to the
same recovery error at one size (:class:`SameErrorConfig`, the rule of
``benchmarks/matrix_completion.py``, which runs it); :class:`ScalingConfig` repeats it at several
sizes. :func:`matmul_rate` and :func:`step_time` measure this machine, :func:`loglog_slope` fits the
exponent of a power law. A step of the original costs ``O(d^3)``, one of the compression ``O(d^2 r)``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from .chains import Factorization, compressed_factorization, full_width_factorization
from .completion import Stepper, TrainConfig, rescale_lr, torch_threads, train
from .problems import CompletionProblem, ProblemConfig, check_int, make_problem, torch_dtype
from .race import Fig5Setting

__all__ = [
    "SameErrorConfig",
    "same_error_target",
    "SameErrorRace",
    "race_to_same_error",
    "ScalingConfig",
    "matmul_rate",
    "step_time",
    "loglog_slope",
]


@dataclass(frozen=True)
class SameErrorConfig(Fig5Setting):
    """One size of the wall-time race to the same recovery error (the rule of
    ``benchmarks/matrix_completion.py``, which runs this).

    The original full-width model trains until its train loss is below ``tol_original`` (or
    ``max_steps``, or ``budget`` seconds); ``e*`` is its final recovery error. The compression
    (outer factors at ``gamma * lr``) then trains until its recovery error is within ``tolerance``
    of ``e*``; its time includes building the compression. If the original never left its initial
    plateau (``e*`` not below ``plateau`` times its initial recovery error) the compression runs as
    many steps as the original did and the times of equal step counts are compared
    (:func:`same_error_target`). Training time excludes evaluating the recovery error.

    Attributes:
        lr: the step at this ``d`` (used as given; :class:`ScalingConfig` rescales it with ``d``).
        budget: seconds for the original (``None``: no budget); converted to a step cap from a
            3-step timing, so a run with a budget is not reproducible step for step.
        log_every: the original logs (and checks its recovery error) every this many steps, the
            compression five times as often.
        threads: torch intra-op threads for the whole measurement (``None``: torch's setting).
    """

    gamma: float = 0.01
    tol_original: float = 1e-9
    max_steps: int = 170_000
    budget: float | None = None
    log_every: int = 25
    tolerance: float = 0.01
    plateau: float = 0.5
    dtype: str = "float32"
    threads: int | None = 1

    def __post_init__(self):
        self.check_compressible()
        torch_dtype(self.dtype)
        TrainConfig(lr=self.lr, gamma=self.gamma, max_steps=self.max_steps, tol=self.tol_original,
                    log_every=self.log_every, threads=self.threads)
        if self.budget is not None and not self.budget > 0:
            raise ValueError(f"budget must be positive seconds or None, got {self.budget!r}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance!r}")
        if not 0 < self.plateau <= 1:
            raise ValueError(f"plateau must be in (0, 1], got {self.plateau!r}")


def same_error_target(initial_error: float, final_error: float, tolerance: float = 0.01,
                      plateau: float = 0.5) -> float | None:
    """The recovery error the compression must reach: ``(1 + tolerance) e*`` with ``e*`` the
    original's ``final_error``, or ``None`` (compare equal step counts) when the original never
    left its plateau, i.e. ``e*`` is not below ``plateau * initial_error``."""
    if not (initial_error > 0 and final_error >= 0):
        raise ValueError(f"recovery errors must be initial > 0 and final >= 0, got {initial_error!r}, {final_error!r}")
    return (1 + tolerance) * final_error if final_error < plateau * initial_error else None


@dataclass
class SameErrorRace:
    """What :func:`race_to_same_error` returns: ``record`` (one row of the speed-up against ``d``, the
    record the chapter stores per size), and the ``problem`` and the ``compressed`` factorisation that
    raced (for further timings)."""

    record: dict
    problem: CompletionProblem
    compressed: Factorization


def race_to_same_error(config: SameErrorConfig, seed: int = 0) -> SameErrorRace:
    """Time the original and its compression to the same recovery error (:class:`SameErrorConfig`),
    with this machine's ``(d, d)`` matmul rate measured before and after the original's training.

    ``record`` keys: ``d``, ``lr``, ``threads`` (torch threads used), ``comparison`` ("same error"
    or "equal steps"), ``initial_error``, ``error_original`` (``e*``), ``train_loss_original`` (final), ``reached_tol``,
    ``steps_original``, ``train_time_original``, ``time_original`` (to ``e*``, or all of training
    for equal steps), ``target_error`` (NaN for equal steps), ``reached_target``,
    ``error_compressed``, ``steps_compressed``, ``setup_time``, ``train_time_compressed``,
    ``time_compressed`` (setup included), ``flops_per_step_original`` (``3 (L - 1)`` dense
    products), ``matmul_flops_before``, ``matmul_flops_after``.
    """
    dtype = torch_dtype(config.dtype)
    with torch_threads(config.threads):
        threads = torch.get_num_threads()
        problem = make_problem(ProblemConfig(config.d, config.true_rank, config.observed_fraction), seed, dtype=dtype)
        original = full_width_factorization(config.d, config.depth, config.epsilon, seed + 500, dtype=dtype)
        tic = time.perf_counter()
        compressed = compressed_factorization(original, problem, config.true_rank)
        setup = time.perf_counter() - tic
        rate_before = matmul_rate(config.d, dtype)
        cap = config.max_steps
        if config.budget is not None:
            per_step = step_time(original, problem, TrainConfig(lr=config.lr), steps=3)
            cap = max(1, min(cap, int(config.budget / per_step)))
        orig = train(original, problem, TrainConfig(lr=config.lr, max_steps=cap, tol=config.tol_original,
                                                    log_every=config.log_every))
        rate_after = matmul_rate(config.d, dtype)
        e_star = float(orig.final_test_loss[0])
        initial = float(orig.history.test_loss.iloc[0])
        target = same_error_target(initial, e_star, config.tolerance, config.plateau)
        steps_orig = int(orig.steps[0])
        comp = train(compressed, problem, TrainConfig(
            lr=config.lr, gamma=config.gamma, max_steps=config.max_steps if target is not None else steps_orig,
            target_test_loss=target, log_every=max(1, config.log_every // 5),
        ))
    record = {
        "d": config.d, "lr": config.lr, "threads": threads,
        "comparison": "same error" if target is not None else "equal steps",
        "initial_error": initial, "error_original": e_star, "train_loss_original": float(orig.final_train_loss[0]),
        "reached_tol": bool(orig.converged[0]),
        "steps_original": steps_orig, "train_time_original": orig.wall_time,
        "time_original": orig.time_to_test_loss(e_star) if target is not None else orig.wall_time,
        "target_error": float("nan") if target is None else target,
        "reached_target": bool(comp.converged[0]) if target is not None else True,
        "error_compressed": float(comp.final_test_loss[0]), "steps_compressed": int(comp.steps[0]),
        "setup_time": setup, "train_time_compressed": comp.wall_time, "time_compressed": comp.wall_time + setup,
        "flops_per_step_original": 3 * (config.depth - 1) * 2 * config.d**3,
        "matmul_flops_before": rate_before, "matmul_flops_after": rate_after,
    }
    return SameErrorRace(record, problem, compressed)


@dataclass(frozen=True)
class ScalingConfig:
    """The race :class:`SameErrorConfig` ``race`` repeated at every size in ``sizes``, its step
    rescaled from ``race.lr`` at ``race.d`` by :func:`~compressible.matrix.completion.rescale_lr`.
    A step of the original costs ``O(d^3)``, one of the compression ``O(d^2 r)``."""

    sizes: tuple[int, ...] = (250, 500, 1000, 2000)
    race: SameErrorConfig = SameErrorConfig()

    def __post_init__(self):
        if len(self.sizes) < 2 or list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError(f"sizes must be at least two increasing distinct sizes, got {self.sizes}")
        for d in self.sizes:
            self.at(d)

    def at(self, d: int) -> SameErrorConfig:
        """The race at size ``d``."""
        return replace(self.race, d=d, lr=rescale_lr(self.race.lr, d, self.race.d))


def matmul_rate(d: int, dtype: torch.dtype, repeats: int = 7) -> float:
    """This machine's FLOP/s for one ``(d, d) @ (d, d)`` product (``2 d^3`` flops; median of ``repeats``
    after one warm-up), at the current torch thread count."""
    check_int("d", d)
    check_int("repeats", repeats)
    a, b = torch.randn(d, d, dtype=dtype), torch.randn(d, d, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - tic)
    return 2 * d**3 / statistics.median(times)


def step_time(factorization: Factorization, problem: CompletionProblem, config: TrainConfig, steps: int = 30) -> float:
    """Median seconds of one gradient-descent step (gradient + update) over ``steps`` steps, at the
    current torch thread count (``config.threads`` is not applied here)."""
    check_int("steps", steps)
    stepper = Stepper(factorization, problem, config)
    times = []
    for _ in range(steps):
        tic = time.perf_counter()
        _, grads = stepper.gradients()
        stepper.apply(grads, None)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``: the exponent ``k`` of ``y ≈ c x^k``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(np.unique(x)) < 2:
        raise ValueError(f"need two 1-d arrays of equal length with at least two distinct x, got x={x}, y={y}")
    if not (np.isfinite(x).all() and np.isfinite(y).all() and (x > 0).all() and (y > 0).all()):
        raise ValueError(f"a log-log slope needs positive finite values, got x={x}, y={y}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
