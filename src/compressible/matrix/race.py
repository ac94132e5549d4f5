"""The compressed model against the original and against a random narrow one (paper Fig. 5, App. D.1).

- :func:`compression_race` (Fig. 5): the original full-width factorisation vs its compression with
  ``gamma = 0`` and ``gamma > 0``, in iterations and wall time; :func:`race_summary` reduces its
  history to the time each model took to the original's final recovery error;
- :func:`random_vs_compressed` (App. D.1): the compression vs a randomly initialised narrow
  factorisation of the same width; :func:`random_vs_compressed_summary` reduces it per rank estimate.

Each run is a frozen config and returns a tidy frame; storing it is the caller's business (the
chapter ``book/completion.py`` keeps it in the result store).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
from tqdm.auto import tqdm

from .chains import compressed_factorization, full_width_factorization, narrow_factorization
from .completion import TrainConfig, torch_threads, train
from .problems import ProblemConfig, check_int, make_problem, torch_dtype

__all__ = [
    "Fig5Setting",
    "CompressionRaceConfig",
    "compression_race",
    "race_summary",
    "RandomVsCompressedConfig",
    "random_vs_compressed",
    "random_vs_compressed_summary",
]


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


def compression_race(config: CompressionRaceConfig, seed: int = 0) -> pd.DataFrame:
    """Histories of every model, stacked: columns ``method`` ("original", "compressed γ=..."),
    ``gamma``, ``step``, ``train_loss``, ``test_loss``, ``wall_time``, ``setup_time``."""
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


def race_summary(history: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """Per method of :func:`compression_race`: final step and recovery error, and the wall time
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


def random_vs_compressed(config: RandomVsCompressedConfig, seed: int = 0) -> pd.DataFrame:
    """Rows ``method`` ("compressed"/"random"), ``rank``, ``trial``, ``steps``, ``converged``,
    ``train_loss``, ``test_loss``, ``wall_time`` (per batch of trials; compression setup included)."""
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
