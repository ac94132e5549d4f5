"""The deep matrix completion chapter (paper Sec. 3, Fig. 1, Fig. 5, App. D.1): plan, runs, summary, figures.

Three experiments, each a frozen config whose run returns a tidy DataFrame (stored in the result
store, so a rebuild only loads it):

- :func:`run_width_sweep` (Fig. 1): recovery error and iterations of narrow factorisations vs width;
- :func:`run_compression_race` (Fig. 5): the original vs its compression with ``gamma = 0`` and
  ``gamma > 0``, in iterations and wall time;
- :func:`run_random_vs_compressed` (App. D.1): the compression vs a randomly initialised narrow
  factorisation of the same width;
- :func:`run_scaling` (ours, not in the paper): wall time of the original and of the compression
  to the same recovery error at several ``d`` (:func:`race_to_same_error`, the rule of
  ``benchmarks/matrix_completion.py``), with this machine's matmul rate.

:func:`run` runs the four of a scale's :data:`PLANS` entry; :func:`summarise` reduces them to a
:class:`CompletionSummary` with :func:`width_sweep_stats`, :func:`race_stats`, :func:`d1_stats`
and :func:`scaling_stats` (log-log slopes against ``d`` by :func:`loglog_slope`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict
from tqdm.auto import tqdm

from ..matrix.chains import (
    Factorization,
    compressed_factorization,
    full_width_factorization,
    narrow_factorization,
    pad_width,
)
from ..matrix.completion import TrainConfig, matmul_rate, rescale_lr, step_time, torch_threads, train
from ..matrix.problems import CompletionProblem, ProblemConfig, check_int, make_problem, torch_dtype
from ..reference import PROVENANCE
from ..scales import check_scale, scale_label
from ..executors import execute
from ..store import ResultStore
from ..summaries import Summary
from .compression import finite_or_none, stored_frame

__all__ = [
    "WidthSweepConfig",
    "run_width_sweep",
    "Fig5Setting",
    "CompressionRaceConfig",
    "run_compression_race",
    "RandomVsCompressedConfig",
    "run_random_vs_compressed",
    "race_summary",
    "random_vs_compressed_summary",
    "SameErrorConfig",
    "same_error_target",
    "SameErrorRace",
    "race_to_same_error",
    "run_same_error",
    "ScalingConfig",
    "run_scaling",
    "CompletionPlan",
    "PLANS",
    "plan",
    "CompletionRuns",
    "run",
    "WidthSweepStats",
    "RaceMethod",
    "RaceStats",
    "RankEstimate",
    "RandomVsCompressedStats",
    "ScalingPoint",
    "scaling_point",
    "loglog_slope",
    "ScalingStats",
    "scaling_stats",
    "CompletionSummary",
    "width_sweep_stats",
    "race_stats",
    "d1_stats",
    "summarise",
    "comparison_table",
    "race_table",
    "d1_table",
    "scaling_table",
    "plot_width_sweep",
    "plot_race",
    "plot_random_vs_compressed",
    "plot_scaling",
]


@dataclass(frozen=True)
class WidthSweepConfig:
    """Fig. 1: recovery error and iterations to tolerance of narrow factorisations vs width.

    One run trains, for every width, ``trials`` independent problems at once (batched). The
    width-``d`` model is the full-width factorisation.

    Attributes:
        depth: ``L`` (2 or 3 in the paper); lr: its step (paper: 1e2 for L=2, 3e2 for L=3).
    """

    d: int = 100
    true_rank: int = 10
    observed_fraction: float = 0.3
    depth: int = 3
    lr: float = 300.0
    epsilon: float = 1e-3
    widths: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    max_steps: int = 60_000
    tol: float = 1e-10
    trials: int = 5
    dtype: str = "float64"
    threads: int | None = 1

    def __post_init__(self):
        ProblemConfig(self.d, self.true_rank, self.observed_fraction)
        check_int("depth", self.depth, 2)
        check_int("trials", self.trials)
        bad = [w for w in self.widths if not (isinstance(w, int) and 1 <= w <= self.d)]
        if bad or not self.widths:
            raise ValueError(f"widths must be non-empty ints in [1, d={self.d}], got {self.widths}")
        torch_dtype(self.dtype)
        TrainConfig(lr=self.lr, max_steps=self.max_steps, tol=self.tol, threads=self.threads)


def run_width_sweep(config: WidthSweepConfig, seed: int = 0, store=None) -> pd.DataFrame:
    """Rows ``depth, width, trial, steps, converged, train_loss, test_loss, wall_time``.

    Problem seeds are ``seed * 1000 + trial`` and init seeds ``seed * 1000 + 500 + trial``. All
    widths and trials run as one batch (narrow models zero-padded to the largest width with
    :func:`~compressible.matrix.chains.pad_width`); ``wall_time`` is that of the whole batch.
    """

    def compute() -> pd.DataFrame:
        dtype = torch_dtype(config.dtype)
        seeds = [seed * 1000 + i for i in range(config.trials)]
        init_seeds = [s + 500 for s in seeds]
        widths = list(config.widths)
        top = max(widths)
        problem = make_problem(
            ProblemConfig(config.d, config.true_rank, config.observed_fraction), seeds * len(widths), dtype=dtype
        )
        members = []
        for width in widths:
            if width == config.d:
                fact = full_width_factorization(config.d, config.depth, config.epsilon, init_seeds, dtype=dtype)
            else:
                fact = narrow_factorization(config.d, width, config.depth, config.epsilon, init_seeds, dtype=dtype)
            members.append(pad_width(fact, top))
        batch = Factorization(
            tuple(torch.cat([m.factors[k] for m in members]) for k in range(config.depth)), (False,) * config.depth, "narrow"
        )
        tc = TrainConfig(
            lr=config.lr, max_steps=config.max_steps, tol=config.tol, log_every=config.max_steps, threads=config.threads
        )
        df = train(batch, problem, tc).summary().drop(columns="kind")
        df["width"] = [w for w in widths for _ in seeds]
        df["trial"] = list(range(config.trials)) * len(widths)
        return df.drop(columns="member").assign(depth=config.depth)

    return stored_frame(config, seed, compute, store)


@dataclass(frozen=True)
class Fig5Setting:
    """The problem and step of Fig. 5 and App. D.1 (paper: ``d = 1000``, ``r* = 5``, ``p = 0.2``,
    ``L = 3``, ``eps = 1e-3``, ``lr = 5e3``), shared by :class:`CompressionRaceConfig` and
    :class:`RandomVsCompressedConfig`."""

    d: int = 1000
    true_rank: int = 5
    observed_fraction: float = 0.2
    depth: int = 3
    epsilon: float = 1e-3
    lr: float = 5e3

    def check_compressible(self) -> None:
        """Raise ``ValueError`` unless the problem is valid, ``depth >= 2`` and ``2 r* < d`` (the
        compression has width ``2 r*``)."""
        ProblemConfig(self.d, self.true_rank, self.observed_fraction)
        check_int("depth", self.depth, 2)
        if 2 * self.true_rank >= self.d:
            raise ValueError(f"compression needs 2 r* < d, got r*={self.true_rank}, d={self.d}")


@dataclass(frozen=True)
class CompressionRaceConfig(Fig5Setting):
    """Fig. 5: the original full-width factorisation vs its compression with ``gamma`` in ``gammas``.

    Every model runs until its train loss is below its tolerance (paper: 1e-9 for the original,
    1e-13 for the compressed ones) or ``max_steps``. Wall time excludes evaluation; the
    compressed models' time includes building the compression (one gradient and one SVD).
    """

    gammas: tuple[float, ...] = (0.0, 0.01)
    max_steps: int = 170_000
    max_steps_compressed: int | None = None
    tol_original: float = 1e-9
    tol_compressed: float = 1e-13
    log_every: int = 100
    dtype: str = "float32"
    threads: int | None = None
    include_original: bool = True

    def __post_init__(self):
        self.check_compressible()
        torch_dtype(self.dtype)
        for g in self.gammas:
            TrainConfig(lr=self.lr, gamma=g)
        TrainConfig(lr=self.lr, max_steps=self.max_steps, tol=self.tol_original, log_every=self.log_every, threads=self.threads)


def run_compression_race(config: CompressionRaceConfig, seed: int = 0, store=None) -> pd.DataFrame:
    """Histories of every model, stacked: columns ``method`` ("original", "compressed γ=..."),
    ``gamma``, ``step``, ``train_loss``, ``test_loss``, ``wall_time``, ``setup_time``."""

    def compute() -> pd.DataFrame:
        dtype = torch_dtype(config.dtype)
        problem = make_problem(ProblemConfig(config.d, config.true_rank, config.observed_fraction), seed, dtype=dtype)
        original = full_width_factorization(config.d, config.depth, config.epsilon, seed + 500, dtype=dtype)
        with torch_threads(config.threads):
            tic = time.perf_counter()
            compressed = compressed_factorization(original, problem, config.true_rank)
            setup = time.perf_counter() - tic
        frames = []
        if config.include_original:
            tc = TrainConfig(
                lr=config.lr, max_steps=config.max_steps, tol=config.tol_original,
                log_every=config.log_every, threads=config.threads,
            )
            h = train(original, problem, tc).history
            frames.append(h.assign(method="original", gamma=float("nan"), setup_time=0.0))
        for gamma in config.gammas:
            tc = TrainConfig(
                lr=config.lr, gamma=gamma, max_steps=config.max_steps_compressed or config.max_steps,
                tol=config.tol_compressed, log_every=config.log_every, threads=config.threads,
            )
            h = train(compressed, problem, tc).history
            h = h.assign(method=f"compressed γ={gamma:g}", gamma=gamma, setup_time=setup)
            h["wall_time"] = h["wall_time"] + setup
            frames.append(h)
        return pd.concat(frames, ignore_index=True).drop(columns="member")

    return stored_frame(config, seed, compute, store)


@dataclass(frozen=True)
class RandomVsCompressedConfig(Fig5Setting):
    """App. D.1: compressed (width ``2 r``, gamma) vs randomly initialised narrow width ``2 r``,
    for every rank estimate ``r`` in ``ranks``; ``trials`` problems batched per run."""

    gamma: float = 0.01
    ranks: tuple[int, ...] = (5, 8, 11, 14, 17, 20)
    trials: int = 5
    max_steps: int = 20_000
    tol: float = 1e-9
    dtype: str = "float32"
    threads: int | None = None

    def __post_init__(self):
        ProblemConfig(self.d, self.true_rank, self.observed_fraction)
        bad = [r for r in self.ranks if not (isinstance(r, int) and 1 <= r and 2 * r < self.d)]
        if bad or not self.ranks:
            raise ValueError(f"ranks must be non-empty ints with 1 <= r and 2r < d={self.d}, got {self.ranks}")
        check_int("trials", self.trials)
        torch_dtype(self.dtype)
        TrainConfig(lr=self.lr, gamma=self.gamma, max_steps=self.max_steps, tol=self.tol, threads=self.threads)


def run_random_vs_compressed(config: RandomVsCompressedConfig, seed: int = 0, store=None) -> pd.DataFrame:
    """Rows ``method`` ("compressed"/"random"), ``rank``, ``trial``, ``steps``, ``converged``,
    ``train_loss``, ``test_loss``, ``wall_time`` (per batch of trials; compression setup included)."""

    def compute() -> pd.DataFrame:
        dtype = torch_dtype(config.dtype)
        seeds = [seed * 1000 + i for i in range(config.trials)]
        init_seeds = [s + 500 for s in seeds]
        problem = make_problem(ProblemConfig(config.d, config.true_rank, config.observed_fraction), seeds, dtype=dtype)
        original = full_width_factorization(config.d, config.depth, config.epsilon, init_seeds, dtype=dtype)
        frames = []
        for rank in tqdm(config.ranks, desc="rank estimates", leave=False):
            with torch_threads(config.threads):
                tic = time.perf_counter()
                comp = compressed_factorization(original, problem, rank)
                setup = time.perf_counter() - tic
            narrow = narrow_factorization(config.d, 2 * rank, config.depth, config.epsilon, init_seeds, dtype=dtype)
            for method, fact, gamma, extra in (("compressed", comp, config.gamma, setup), ("random", narrow, 1.0, 0.0)):
                tc = TrainConfig(
                    lr=config.lr, gamma=gamma, max_steps=config.max_steps, tol=config.tol,
                    log_every=config.max_steps, threads=config.threads,
                )
                res = train(fact, problem, tc)
                df = res.summary().rename(columns={"member": "trial"}).drop(columns="kind")
                df["wall_time"] = df["wall_time"] + extra
                frames.append(df.assign(method=method, rank=rank))
        return pd.concat(frames, ignore_index=True)

    return stored_frame(config, seed, compute, store)


def race_summary(history: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """Per method of :func:`run_compression_race`: final step and recovery error, and the wall time
    and step at which the recovery error first came within ``tolerance`` (relative) of the
    original's final recovery error; ``speedup`` = original's time / the method's time."""
    orig = history[history.method == "original"]
    if orig.empty:
        raise ValueError("race_summary needs the 'original' run in the history")
    level = float(orig.test_loss.iloc[-1]) * (1 + tolerance)
    rows = []
    for method, h in history.groupby("method", sort=False):
        hit = h[h.test_loss <= level]
        rows.append({
            "method": method,
            "steps": int(h.step.iloc[-1]),
            "final_test_loss": float(h.test_loss.iloc[-1]),
            "final_train_loss": float(h.train_loss.iloc[-1]),
            "step_to_target": float(hit.step.iloc[0]) if len(hit) else float("nan"),
            "time_to_target": float(hit.wall_time.iloc[0]) if len(hit) else float("nan"),
            "total_time": float(h.wall_time.iloc[-1]),
        })
    out = pd.DataFrame(rows)
    t_orig = float(out.loc[out.method == "original", "time_to_target"].iloc[0])
    out["speedup"] = t_orig / out["time_to_target"]
    return out


def random_vs_compressed_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per rank estimate: mean steps and wall time of each method and the ratios random / compressed.

    ``converged_*`` is the fraction of trials that reached the tolerance. A method that did not
    converge was stopped at ``max_steps``, so its steps and time (and the ratios) are lower bounds;
    ``ratio_is_lower_bound`` flags those rows.
    """
    g = results.groupby(["rank", "method"])[["steps", "wall_time", "test_loss", "converged"]].mean().unstack("method")
    out = pd.DataFrame({
        "rank": g.index,
        "steps_compressed": g[("steps", "compressed")].to_numpy(),
        "steps_random": g[("steps", "random")].to_numpy(),
        "time_compressed": g[("wall_time", "compressed")].to_numpy(),
        "time_random": g[("wall_time", "random")].to_numpy(),
        "test_loss_compressed": g[("test_loss", "compressed")].to_numpy(),
        "test_loss_random": g[("test_loss", "random")].to_numpy(),
        "converged_compressed": g[("converged", "compressed")].to_numpy(),
        "converged_random": g[("converged", "random")].to_numpy(),
    })
    out["steps_ratio"] = out.steps_random / out.steps_compressed
    out["time_ratio"] = out.time_random / out.time_compressed
    out["ratio_is_lower_bound"] = (out.converged_random < 1) & (out.converged_compressed == 1)
    return out


# ---------------------------------------------------------------------------------------------
# how the speed-up grows with d: wall time to the same recovery error, one size at a time


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
    """What :func:`race_to_same_error` returns: ``record`` (one row of :func:`run_scaling`, see
    :class:`ScalingPoint` for what it becomes), and the ``problem`` and the ``compressed``
    factorisation that raced (for further timings)."""

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


def run_same_error(config: SameErrorConfig, seed: int = 0, store=None) -> pd.DataFrame:
    """The :func:`race_to_same_error` record of ``config`` at ``seed`` as a one-row frame (stored per size)."""
    return stored_frame(config, seed, lambda: pd.DataFrame([race_to_same_error(config, seed).record]), store)


def run_scaling(config: ScalingConfig, seed: int = 0, store=None) -> pd.DataFrame:
    """One :func:`race_to_same_error` record per size (rows in ``config.sizes`` order), seed ``seed``; each
    size is stored on its own (:func:`run_same_error`), so that workers can compute the sizes side by side."""
    sizes = tqdm(config.sizes, desc="sizes", leave=False)
    return pd.concat([run_same_error(config.at(d), seed, store) for d in sizes], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# the chapter's plan and runs

LR_FIG1 = {2: 100.0, 3: 300.0}
"""Fig. 1 step sizes at the paper's ``d = 100`` (``paper_numbers.json``, ``matrix_completion/figure1``)."""


@dataclass(frozen=True)
class CompletionPlan:
    """What the chapter runs at one scale.

    Attributes:
        fig1: the Fig. 1 width sweeps, depth 2 then depth 3.
        race: the Fig. 5 run.
        d1: the App. D.1 comparison.
        scaling: the speed-up against ``d`` (not in the paper).
        notes: how this scale departs from the paper's protocol (shown in the chapter).
        workers: processes that compute the parts side by side, one torch thread each (``1``: one after
            another in this process, with each part's own thread setting).
    """

    fig1: tuple[WidthSweepConfig, WidthSweepConfig]
    race: CompressionRaceConfig
    d1: RandomVsCompressedConfig
    scaling: ScalingConfig
    notes: str
    workers: int = 1

    def __post_init__(self):
        if [c.depth for c in self.fig1] != [2, 3]:
            raise ValueError(f"fig1 must hold the depth-2 and the depth-3 sweep, got depths {[c.depth for c in self.fig1]}")
        check_int("workers", self.workers, 1)

    def parts(self) -> list[tuple[Any, tuple[int]]]:
        """Every part as ``(config, (seed 0,))``: the speed-up against ``d`` one size at a time, largest first
        (its original model costs most, ``O(d^3)`` a step), then the Fig. 5 race, App. D.1, the smaller sizes
        and Fig. 1, so that a pool of workers ends together."""
        largest, *smaller = [self.scaling.at(d) for d in reversed(self.scaling.sizes)]
        return [(largest, (0,)), (self.race, (0,)), (self.d1, (0,)), *((c, (0,)) for c in smaller),
                *((c, (0,)) for c in self.fig1)]


#: The frozen plan of the completion chapter at each scale (``smoke``, ``ci``, ``paper``).
PLANS: dict[str, CompletionPlan] = {
    "paper": CompletionPlan(
        fig1=tuple(WidthSweepConfig(depth=L, lr=LR_FIG1[L]) for L in (2, 3)),
        race=CompressionRaceConfig(),
        d1=RandomVsCompressedConfig(),
        scaling=ScalingConfig(race=SameErrorConfig(threads=None)),
        notes="the paper's protocol (Fig. 5 and App. D.1 in float32); the speed-up against d, ours, with torch's thread count",
    ),
    # Fig. 1: d 100 -> 50 (r* 10 -> 5, widths scaled), 2 trials, at most 20 000 steps, tol 1e-10.
    # Fig. 5 and D.1: d 1000 -> 200, steps rescaled by rescale_lr; D.1 with 3 rank estimates, 2 trials.
    "ci": CompletionPlan(
        fig1=tuple(
            WidthSweepConfig(d=50, true_rank=5, depth=L, lr=rescale_lr(LR_FIG1[L], 50, 100), widths=(5, 10, 20, 30, 50),
                             max_steps=20_000, trials=2)
            for L in (2, 3)
        ),
        race=CompressionRaceConfig(d=200, lr=rescale_lr(5e3, 200, 1000), max_steps=40_000, log_every=100, threads=1),
        d1=RandomVsCompressedConfig(d=200, lr=rescale_lr(5e3, 200, 1000), ranks=(5, 10, 15), trials=2,
                                    max_steps=20_000, threads=1),
        scaling=ScalingConfig(sizes=(100, 200, 400), race=SameErrorConfig(max_steps=40_000)),
        notes="d = 50 for Fig. 1 and d = 200 for Fig. 5 / App. D.1, step sizes rescaled, fewer trials and widths; "
              "the speed-up against d only up to d = 400; the parts run in two processes side by side, one torch "
              "thread each (every time is measured within one process, original and compressed alike)",
        workers=2,
    ),
    # smoke: tiny problems, larger init so that learning starts quickly
    "smoke": CompletionPlan(
        fig1=tuple(
            WidthSweepConfig(d=16, true_rank=2, depth=L, lr=20.0, epsilon=0.1, widths=(2, 8, 16), max_steps=300,
                             tol=1e-8, trials=2)
            for L in (2, 3)
        ),
        race=CompressionRaceConfig(d=24, true_rank=2, observed_fraction=0.5, lr=20.0, epsilon=0.1, max_steps=400,
                                   tol_original=1e-8, tol_compressed=1e-10, log_every=10, dtype="float64", threads=1),
        d1=RandomVsCompressedConfig(d=24, true_rank=2, observed_fraction=0.5, lr=20.0, epsilon=0.1, ranks=(2, 4),
                                    trials=2, max_steps=300, tol=1e-8, dtype="float64", threads=1),
        scaling=ScalingConfig(sizes=(16, 24, 32), race=SameErrorConfig(
            d=24, true_rank=2, observed_fraction=0.5, epsilon=0.1, lr=20.0, tol_original=1e-6, max_steps=2000,
            log_every=10, dtype="float64")),
        notes="tiny problems for a smoke test",
        workers=2,  # so that the test suite's smoke build computes the ci scale's way
    ),
}


def plan(scale: str) -> CompletionPlan:
    """The plan of ``scale`` (``smoke``, ``ci`` or ``paper``)."""
    return PLANS[check_scale(scale)]


@dataclass(frozen=True)
class CompletionRuns:
    """The tidy results of one scale: ``sweep`` (:func:`run_width_sweep`, both depths),
    ``race`` (:func:`run_compression_race`), ``d1`` (:func:`run_random_vs_compressed`) and
    ``scaling`` (:func:`run_scaling`)."""

    sweep: pd.DataFrame
    race: pd.DataFrame
    d1: pd.DataFrame
    scaling: pd.DataFrame


def _run_part(config: Any, seed: int) -> dict:
    """The stored record of one part (what :func:`~compressible.experiments.compression.stored_frame` keeps)."""
    run_part = {WidthSweepConfig: run_width_sweep, CompressionRaceConfig: run_compression_race,
                RandomVsCompressedConfig: run_random_vs_compressed, SameErrorConfig: run_same_error}[type(config)]
    return {"rows": run_part(config, seed).to_dict("records")}


def _part_runner() -> Callable[[Any, int], dict]:
    """The run factory of :func:`compressible.executors.execute` for the chapter's parts."""
    return _run_part


def run(scale: str, store: ResultStore | None = None, progress: bool = True) -> CompletionRuns:
    """Run (or load from ``store``, default the results folder's) every experiment of ``scale``, seed 0.

    With ``plan(scale).workers > 1`` the missing parts are computed first in that many processes, one
    torch thread each (:func:`compressible.executors.execute`); a part that fails raises ``RuntimeError``.
    """
    p = plan(scale)
    store = store if store is not None else ResultStore()
    if p.workers > 1:
        summary = execute(p.parts(), _part_runner, store, "processes", workers=p.workers, progress=progress,
                          desc="completion parts")
        if summary.failed:
            raise RuntimeError(f"{len(summary.failed)} part(s) of the completion chapter failed: "
                               + "; ".join(f"{f.description} seed {f.seed}: {f.error}" for f in summary.failed))
    sweep = pd.concat([run_width_sweep(cfg, seed=0, store=store) for cfg in p.fig1], ignore_index=True)
    race = run_compression_race(p.race, seed=0, store=store)
    d1 = run_random_vs_compressed(p.d1, seed=0, store=store)
    scaling = run_scaling(p.scaling, seed=0, store=store)
    return CompletionRuns(sweep, race, d1, scaling)


# ---------------------------------------------------------------------------------------------
# the summary


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WidthSweepStats(_Part):
    """Fig. 1: depth and width."""

    d: int
    """Size of the ``(d, d)`` targets."""
    true_rank: int
    """``r*`` of the targets."""
    error_widest: dict[int, float | None]
    """Depth -> median recovery error over trials at the widest width (``None`` if not finite)."""
    narrowest_width: int | None
    """Smallest width of the depth-3 sweep."""
    widest_width: int | None
    """Largest width of the depth-3 sweep."""
    steps_narrowest: float | None
    """Depth 3: mean iterations to the tolerance at the smallest width (the cap if not reached)."""
    steps_widest: float | None
    """Depth 3: mean iterations to the tolerance at the widest width."""


class RaceMethod(_Part):
    """One model of the Fig. 5 race (a row of :func:`race_summary`)."""

    method: str
    """``original`` or ``compressed γ=<gamma>``."""
    steps: int
    """Last step of the run."""
    final_test_loss: float
    """Recovery error at the last step."""
    final_train_loss: float
    """Train loss at the last step."""
    step_to_target: float | None
    """First logged step within 1 % of the original's final recovery error (``None``: never)."""
    time_to_target: float | None
    """Wall time (s) at that step, compression setup included (``None``: never)."""
    total_time: float
    """Wall time (s) of the whole run."""
    speedup: float | None
    """Original's time to target / this method's (``None``: not reached)."""


class RaceStats(_Part):
    """Fig. 5: original vs compressed with ``gamma = 0`` and ``gamma > 0``."""

    d: int
    """Size of the target."""
    gamma: float | None
    """The positive ``gamma`` compared with the original (``None`` if only ``gamma = 0`` ran)."""
    speedup: float | None
    """Original / compressed (``gamma > 0``) wall time to the original's final recovery error (+1 %)."""
    error_original: float | None
    """Final recovery error of the original."""
    error_compressed: float | None
    """Final recovery error of the compression with ``gamma > 0``."""
    error_gamma0: float | None
    """Final recovery error of the compression with ``gamma = 0`` (``None`` if it did not run)."""
    methods: list[RaceMethod]
    """Every model of the race, in run order."""

    def row(self, method: str) -> RaceMethod | None:
        """The race row of ``method`` (e.g. ``"original"``), or ``None``."""
        return next((m for m in self.methods if m.method == method), None)

    @property
    def compressed(self) -> RaceMethod | None:
        """The race row of the compression with the positive ``gamma`` (``None`` if it did not run)."""
        return None if self.gamma is None else self.row(f"compressed γ={self.gamma:g}")


class RankEstimate(_Part):
    """App. D.1 at one rank estimate (a row of :func:`random_vs_compressed_summary`, means over trials)."""

    rank: int
    """Rank estimate ``r^``; both models have width ``2 r^``."""
    steps_compressed: float
    """Mean iterations of the compression (the cap when not converged)."""
    steps_random: float
    """Mean iterations of the random narrow model."""
    time_compressed: float
    """Wall time (s) of the batch of trials, compression setup included."""
    time_random: float
    """Wall time (s) of the random narrow batch."""
    test_loss_compressed: float
    """Mean final recovery error of the compression."""
    test_loss_random: float
    """Mean final recovery error of the random narrow model."""
    converged_compressed: float
    """Fraction of trials of the compression that reached the tolerance."""
    converged_random: float
    """Fraction of trials of the random narrow model that reached the tolerance."""
    steps_ratio: float
    """``steps_random / steps_compressed``."""
    time_ratio: float
    """``time_random / time_compressed``."""
    ratio_is_lower_bound: bool
    """The random model hit the step cap while the compression converged: the ratios are lower bounds."""


class RandomVsCompressedStats(_Part):
    """App. D.1: compression vs random narrow factorisation of the same width."""

    d: int
    """Size of the targets."""
    max_steps: int
    """Step cap of every run."""
    trials: int
    """Problems per rank estimate (trained as one batch)."""
    speedup: float | None
    """Geometric mean over rank estimates of ``time_random / time_compressed``."""
    steps_ratio: float | None
    """Geometric mean over rank estimates of ``steps_random / steps_compressed``."""
    ratio_is_lower_bound: bool
    """True when at some rank estimate the random model hit the cap and the compression converged:
    the ratios are then lower bounds."""
    converged_random: float
    """Fraction of random narrow runs that reached the tolerance (mean over rank estimates)."""
    converged_compressed: float
    """Fraction of compressed runs that reached the tolerance."""
    ranks: list[RankEstimate]
    """Per rank estimate."""


class ScalingPoint(_Part):
    """One size of the speed-up against ``d`` (a record of :func:`race_to_same_error`)."""

    d: int
    """Size of the target."""
    lr: float
    """Step at this size."""
    comparison: str
    """``same error`` (times to the original's final recovery error within 1 %) or ``equal steps``
    (the original never left its initial plateau)."""
    steps_original: int
    """Steps of the original (to its tolerance or the cap)."""
    steps_compressed: int
    """Steps of the compression (to the target error, or as many as the original)."""
    time_original: float
    """Seconds of the original to ``e*`` (``same error``) or of all its steps (``equal steps``)."""
    time_compressed: float
    """Seconds of the compression to the same point, building the compression included."""
    setup_time: float
    """Seconds to build the compression (one gradient and one SVD)."""
    reached: bool
    """The compression reached the target error (always true for ``equal steps``)."""
    speedup: float | None
    """``time_original / time_compressed`` (``None`` if the compression did not reach the target)."""
    error_original: float
    """``e*``: the original's final recovery error."""
    error_compressed: float
    """The compression's recovery error where it stopped."""
    step_time_original: float
    """Seconds per step of the original (its training time / its steps)."""
    step_time_compressed: float
    """Seconds per step of the compression (its training time / its steps, set-up excluded)."""
    achieved_flops: float
    """FLOP/s of the original's training: ``3 (L - 1)`` dense ``(d, d)`` products per step."""
    matmul_flops: float
    """This machine's ``(d, d)`` matmul FLOP/s (the larger of before and after the original's training)."""

    @property
    def flops_fraction(self) -> float:
        """``achieved_flops / matmul_flops``: how close the original ran to the machine's matmul rate."""
        return self.achieved_flops / self.matmul_flops

    @property
    def step_speedup(self) -> float:
        """Seconds per step of the original / of the compression."""
        return self.step_time_original / self.step_time_compressed


def scaling_point(record: dict) -> ScalingPoint:
    """A :class:`ScalingPoint` from a :func:`race_to_same_error` record."""
    reached = bool(record["reached_target"])
    steps_o, steps_c = int(record["steps_original"]), int(record["steps_compressed"])
    return ScalingPoint(
        d=int(record["d"]), lr=float(record["lr"]), comparison=str(record["comparison"]),
        steps_original=steps_o, steps_compressed=steps_c,
        time_original=float(record["time_original"]), time_compressed=float(record["time_compressed"]),
        setup_time=float(record["setup_time"]), reached=reached,
        speedup=finite_or_none(record["time_original"] / record["time_compressed"]) if reached else None,
        error_original=float(record["error_original"]), error_compressed=float(record["error_compressed"]),
        step_time_original=float(record["train_time_original"]) / max(steps_o, 1),
        step_time_compressed=float(record["train_time_compressed"]) / max(steps_c, 1),
        achieved_flops=record["flops_per_step_original"] * steps_o / record["train_time_original"],
        matmul_flops=max(float(record["matmul_flops_before"]), float(record["matmul_flops_after"])),
    )


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x``: the exponent ``k`` of ``y ≈ c x^k``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(np.unique(x)) < 2:
        raise ValueError(f"need two 1-d arrays of equal length with at least two distinct x, got x={x}, y={y}")
    if not (np.isfinite(x).all() and np.isfinite(y).all() and (x > 0).all() and (y > 0).all()):
        raise ValueError(f"a log-log slope needs positive finite values, got x={x}, y={y}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


class ScalingStats(_Part):
    """Speed-up against ``d``: wall time of the original and of the compression to the same
    recovery error, with the log-log slopes against ``d``."""

    threads: int
    """Torch intra-op threads of the measurement."""
    dtype: str
    """Floating-point type."""
    points: list[ScalingPoint]
    """Per size, increasing ``d``."""
    slope_speedup: float | None
    """Slope of ``log speedup`` against ``log d`` (expected ≈ 1; ``None``: fewer than two speed-ups)."""
    slope_step_original: float
    """Slope of the original's seconds per step against ``d`` on log-log axes (expected ≈ 3)."""
    slope_step_compressed: float
    """Slope of the compression's seconds per step against ``d`` (expected ≈ 2)."""
    flops_fraction: float
    """Smallest ``achieved / matmul`` FLOP/s of the original over the sizes."""


def scaling_stats(results: pd.DataFrame, config: ScalingConfig) -> ScalingStats:
    """Speed-up statistics of a :func:`run_scaling` frame."""
    points = sorted((scaling_point(r) for r in results.to_dict("records")), key=lambda p: p.d)
    with_speedup = [p for p in points if p.speedup is not None]
    d = [p.d for p in points]
    return ScalingStats(
        threads=int(results.threads.iloc[0]), dtype=config.race.dtype, points=points,
        slope_speedup=loglog_slope([p.d for p in with_speedup], [p.speedup for p in with_speedup])
        if len(with_speedup) >= 2 else None,
        slope_step_original=loglog_slope(d, [p.step_time_original for p in points]),
        slope_step_compressed=loglog_slope(d, [p.step_time_compressed for p in points]),
        flops_fraction=min(p.flops_fraction for p in points),
    )


class CompletionSummary(Summary):
    """Sec. 3: Fig. 1, Fig. 5 and App. D.1 measured at one scale."""

    chapter = "completion"

    fig1: WidthSweepStats
    """Fig. 1: depth and width."""
    fig5: RaceStats
    """Fig. 5: original vs compressed."""
    d1: RandomVsCompressedStats
    """App. D.1: compressed vs random narrow."""
    scaling: ScalingStats | None = None
    """Speed-up against ``d`` (not in the paper; ``None`` in summaries without it)."""


def width_sweep_stats(sweep: pd.DataFrame, d: int, true_rank: int) -> WidthSweepStats:
    """Fig. 1 statistics of a :func:`run_width_sweep` frame (both depths stacked)."""
    widest = sweep[sweep.width == sweep.width.max()].groupby("depth").test_loss.median()
    steps_by_width = sweep[sweep.depth == 3].groupby("width").steps.mean()
    empty = steps_by_width.empty
    return WidthSweepStats(
        d=d, true_rank=true_rank,
        error_widest={int(L): finite_or_none(e) for L, e in widest.items()},
        narrowest_width=None if empty else int(steps_by_width.index[0]),
        widest_width=None if empty else int(steps_by_width.index[-1]),
        steps_narrowest=None if empty else finite_or_none(steps_by_width.iloc[0]),
        steps_widest=None if empty else finite_or_none(steps_by_width.iloc[-1]),
    )


def race_stats(history: pd.DataFrame, d: int) -> RaceStats:
    """Fig. 5 statistics of a :func:`run_compression_race` history."""
    table = race_summary(history)
    gamma_pos = [m for m in table.method if m.startswith("compressed") and not m.endswith("γ=0")]
    g0 = table[table.method.str.endswith("γ=0")]
    row_gp = table[table.method == gamma_pos[0]].iloc[0] if gamma_pos else None
    orig_row = table[table.method == "original"].iloc[0]
    gammas = history.drop_duplicates("method").set_index("method").gamma
    return RaceStats(
        d=d,
        gamma=float(gammas[gamma_pos[0]]) if gamma_pos else None,
        speedup=finite_or_none(float(row_gp.speedup) if row_gp is not None else float("nan")),
        error_original=finite_or_none(orig_row.final_test_loss),
        error_compressed=finite_or_none(row_gp.final_test_loss) if row_gp is not None else None,
        error_gamma0=finite_or_none(g0.iloc[0].final_test_loss) if len(g0) else None,
        methods=[
            RaceMethod(
                method=r.method, steps=int(r.steps), final_test_loss=float(r.final_test_loss),
                final_train_loss=float(r.final_train_loss), step_to_target=finite_or_none(r.step_to_target),
                time_to_target=finite_or_none(r.time_to_target), total_time=float(r.total_time),
                speedup=finite_or_none(r.speedup),
            )
            for r in table.itertuples()
        ],
    )


def d1_stats(results: pd.DataFrame, config: RandomVsCompressedConfig) -> RandomVsCompressedStats:
    """App. D.1 statistics of a :func:`run_random_vs_compressed` frame."""
    per_rank = random_vs_compressed_summary(results)
    return RandomVsCompressedStats(
        d=config.d, max_steps=config.max_steps, trials=config.trials,
        speedup=finite_or_none(float(np.exp(np.log(per_rank.time_ratio).mean()))),
        steps_ratio=finite_or_none(float(np.exp(np.log(per_rank.steps_ratio).mean()))),
        ratio_is_lower_bound=bool(per_rank.ratio_is_lower_bound.any()),
        converged_random=float(per_rank.converged_random.mean()),
        converged_compressed=float(per_rank.converged_compressed.mean()),
        ranks=[RankEstimate(**{k: v.item() if hasattr(v, "item") else v for k, v in row.items()})
               for row in per_rank.to_dict("records")],
    )


def summarise(runs: CompletionRuns, completion_plan: CompletionPlan, scale: str) -> CompletionSummary:
    """The chapter's numbers from :func:`run`'s results."""
    c3 = completion_plan.fig1[-1]
    return CompletionSummary(
        scale=scale,
        fig1=width_sweep_stats(runs.sweep, c3.d, c3.true_rank),
        fig5=race_stats(runs.race, completion_plan.race.d),
        d1=d1_stats(runs.d1, completion_plan.d1),
        scaling=scaling_stats(runs.scaling, completion_plan.scaling),
    )


# ---------------------------------------------------------------------------------------------
# tables and figures


def _g(value, fmt: str = ".3g") -> str:
    return "–" if value is None else format(value, fmt)


def comparison_table(summary: CompletionSummary) -> pd.DataFrame:
    """Sec. 3: each claim, the paper's statement and this build's numbers."""
    f1, f5, d1 = summary.fig1, summary.fig5, summary.d1
    orig = f5.row("original")
    g0 = f"{f5.error_gamma0:.2e}" if f5.error_gamma0 is not None else "not run"
    bound = "≥ " if d1.ratio_is_lower_bound else ""
    d1_text = f"{bound}{_g(d1.speedup, '.1f')}× (geometric mean over r̂, d={d1.d}); iterations {bound}{_g(d1.steps_ratio, '.1f')}×"
    if d1.ratio_is_lower_bound:
        d1_text += (f"; random converged in {d1.converged_random:.0%} of runs within {d1.max_steps} steps, "
                    f"compressed in {d1.converged_compressed:.0%}")
    rows = [
        ("Fig. 1: at the widest width, depth 2 overfits, depth 3 recovers", "L=2 error ≫ L=3 error",
         f"median recovery error L=2: {_g(f1.error_widest.get(2), '.2e')}, L=3: {_g(f1.error_widest.get(3), '.2e')} (d={f1.d})"),
        ("Fig. 1: wider converges in fewer iterations (L=3)", "decreasing in width",
         f"{_g(f1.steps_narrowest, '.0f')} steps at w={f1.narrowest_width}, {_g(f1.steps_widest, '.0f')} at w={f1.widest_width}"),
        ("Fig. 5: compressed γ>0 vs original, wall time to the same recovery error", "≈5× faster (GPU)",
         f"{f5.speedup:.1f}× at d={f5.d}" if f5.speedup is not None
         else f"not reached: γ>0 never came within 1 % of the original's error (d={f5.d})"),
        ("Fig. 5: γ=0 drifts from the original", "worse recovery",
         f"final recovery error {g0} vs original {_g(orig.final_test_loss if orig else None, '.2e')}"),
        ("App. D.1: compressed vs random narrow, wall time", "≈3× faster", d1_text),
    ]
    sc = summary.scaling
    if sc is not None:
        ends = [p for p in sc.points if p.speedup is not None]
        rows.append((
            "Speed-up against d (not measured in the paper): O(d³) vs O(d² r) per step", "≈5× at d=1000 (GPU)",
            (f"{_g(ends[0].speedup, '.1f')}× at d={ends[0].d} to {_g(ends[-1].speedup, '.1f')}× at d={ends[-1].d}; "
             if ends else "no size reached the same error; ")
            + f"slopes vs d: speed-up {_g(sc.slope_speedup, '.2f')}, s/step original {sc.slope_step_original:.2f}, "
            f"compressed {sc.slope_step_compressed:.2f}",
        ))
    return pd.DataFrame(rows, columns=["claim", PROVENANCE, f"ours ({scale_label(summary.scale)})"])


def race_table(summary: CompletionSummary) -> pd.DataFrame:
    """Fig. 5 per model: steps, errors, time to the original's final recovery error and speed-up."""
    return pd.DataFrame([
        {"method": m.method, "steps": m.steps, "final recovery error": _g(m.final_test_loss),
         "final train loss": _g(m.final_train_loss), "step to target": _g(m.step_to_target, ".0f"),
         "time to target (s)": _g(m.time_to_target), "total time (s)": _g(m.total_time), "speed-up": _g(m.speedup)}
        for m in summary.fig5.methods
    ])


def d1_table(summary: CompletionSummary) -> pd.DataFrame:
    """App. D.1 per rank estimate (means over trials)."""
    return pd.DataFrame([
        {"r̂": r.rank, "iterations compressed": _g(r.steps_compressed, ".0f"), "iterations random": _g(r.steps_random, ".0f"),
         "time compressed (s)": _g(r.time_compressed), "time random (s)": _g(r.time_random),
         "recovery error compressed": _g(r.test_loss_compressed), "recovery error random": _g(r.test_loss_random),
         "converged compressed": f"{r.converged_compressed:.0%}", "converged random": f"{r.converged_random:.0%}",
         "time ratio": ("≥ " if r.ratio_is_lower_bound else "") + _g(r.time_ratio)}
        for r in summary.d1.ranks
    ])


def plot_width_sweep(sweep: pd.DataFrame, completion_plan: CompletionPlan, scale: str) -> plt.Figure:
    """Fig. 1: recovery error and iterations to the tolerance against the width, per depth."""
    c3 = completion_plan.fig1[-1]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for L, h in sweep.groupby("depth"):
        g = h.groupby("width")
        ax1.semilogy(g.test_loss.mean().index, g.test_loss.mean(), "o-", label=f"L = {L}")
        ax1.scatter(h.width, h.test_loss, s=8, alpha=0.4)
        ax2.plot(g.steps.mean().index, g.steps.mean(), "o-", label=f"L = {L}")
    ax1.axvline(c3.true_rank, color="gray", ls=":", label="$r^*$")
    ax1.set_xlabel("width w")
    ax1.set_ylabel("recovery error")
    ax1.legend()
    ax2.set_xlabel("width w")
    ax2.set_ylabel(f"iterations to train loss < {c3.tol:g}")
    ax2.legend()
    fig.suptitle(f"Fig. 1: depth and width, {scale_label(scale)}")
    fig.tight_layout()
    return fig


def plot_race(history: pd.DataFrame, scale: str) -> plt.Figure:
    """Fig. 5: recovery error of every model against iterations and against wall time."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for method, h in history.groupby("method", sort=False):
        ax1.semilogy(h.step, h.test_loss, label=method)
        ax2.loglog(h.wall_time, h.test_loss, label=method)
    ax1.set_xlabel("iteration")
    ax2.set_xlabel("wall time (s)")
    for ax in (ax1, ax2):
        ax.set_ylabel("recovery error")
        ax.legend()
    fig.suptitle(f"Fig. 5: recovery error, original vs compressed, {scale_label(scale)}")
    fig.tight_layout()
    return fig


def plot_random_vs_compressed(summary: CompletionSummary, config: RandomVsCompressedConfig) -> plt.Figure:
    """App. D.1: iterations and wall time of both models against the rank estimate."""
    ranks = [r.rank for r in summary.d1.ranks]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for method in ("compressed", "random"):
        ax1.plot(ranks, [getattr(r, f"steps_{method}") for r in summary.d1.ranks], "o-", label=method)
        ax2.plot(ranks, [getattr(r, f"time_{method}") for r in summary.d1.ranks], "o-", label=method)
    ax1.set_ylabel(f"iterations to train loss < {config.tol:g}")
    ax2.set_ylabel(f"wall time for {config.trials} batched trials (s)")
    for ax in (ax1, ax2):
        ax.set_xlabel(r"rank estimate $\hat r$ (width $2\hat r$)")
        ax.legend()
    fig.suptitle(f"App. D.1: compressed vs random narrow, d = {config.d}, {scale_label(summary.scale)}")
    fig.tight_layout()
    return fig


def scaling_table(summary: CompletionSummary) -> pd.DataFrame:
    """Speed-up against ``d``, one row per size: steps, wall time to the same recovery error, the
    ratio, seconds per step and the original's FLOP/s against the matmul rate."""
    if summary.scaling is None:
        raise ValueError("this summary has no speed-up-against-d part (summary.scaling is None)")
    return pd.DataFrame([
        {"d": p.d, "compared at": p.comparison, "steps original": p.steps_original,
         "steps compressed": p.steps_compressed, "time original (s)": _g(p.time_original),
         "time compressed (s)": _g(p.time_compressed), "speed-up": _g(p.speedup),
         "ms/step original": _g(p.step_time_original * 1e3), "ms/step compressed": _g(p.step_time_compressed * 1e3),
         "per-step ratio": _g(p.step_speedup), "original GFLOP/s": _g(p.achieved_flops / 1e9),
         "matmul GFLOP/s": _g(p.matmul_flops / 1e9), "of matmul rate": f"{p.flops_fraction:.0%}"}
        for p in summary.scaling.points
    ])


def _loglog_fit(ax, d, y, slope, style, label):
    """Plot ``y`` against ``d`` and the line of slope ``slope`` through their geometric mean."""
    d, y = np.asarray(d, dtype=float), np.asarray(y, dtype=float)
    ax.loglog(d, y, style, label=label if slope is None else f"{label} (slope {slope:.2f})")
    if slope is not None:
        c = np.mean(np.log(y) - slope * np.log(d))
        ax.loglog(d, np.exp(c) * d**slope, ":", color=ax.lines[-1].get_color())


def plot_scaling(summary: CompletionSummary) -> plt.Figure:
    """Speed-up against ``d``: time to the same recovery error, seconds per step, their ratios (log-log,
    fitted slopes in the legends) and the original's FLOP/s against this machine's matmul rate."""
    s = summary.scaling
    if s is None:
        raise ValueError("this summary has no speed-up-against-d part (summary.scaling is None)")
    d = [p.d for p in s.points]
    fig, ((ax1, ax2), (ax3, ax4)) = plt.subplots(2, 2, figsize=(11, 8))
    ax1.loglog(d, [p.time_original for p in s.points], "o-", label="original")
    ax1.loglog(d, [p.time_compressed for p in s.points], "s-", label="compressed (set-up included)")
    ax1.set_ylabel("wall time to the same recovery error (s)")
    _loglog_fit(ax2, d, [p.step_time_original for p in s.points], s.slope_step_original, "o-", "original")
    _loglog_fit(ax2, d, [p.step_time_compressed for p in s.points], s.slope_step_compressed, "s-", "compressed")
    ax2.set_ylabel("seconds per step")
    fitted = [p for p in s.points if p.speedup is not None]
    _loglog_fit(ax3, [p.d for p in fitted], [p.speedup for p in fitted], s.slope_speedup, "o-", "end to end")
    ax3.loglog(d, [p.step_speedup for p in s.points], "s--", label="per step")
    ax3.set_ylabel("speed-up (original / compressed)")
    ax4.semilogx(d, [p.matmul_flops / 1e9 for p in s.points], "k^--", label="(d, d) matmul, this machine")
    ax4.semilogx(d, [p.achieved_flops / 1e9 for p in s.points], "o-", label="original, achieved")
    ax4.set_ylim(bottom=0)
    ax4.set_ylabel("GFLOP/s")
    for ax in (ax1, ax2, ax3, ax4):
        ax.set_xlabel("d")
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticks(d, [str(x) for x in d])
        ax.legend()
    fig.suptitle(f"Speed-up against d, {s.dtype}, {s.threads} thread(s), {scale_label(summary.scale)}")
    fig.tight_layout()
    return fig
