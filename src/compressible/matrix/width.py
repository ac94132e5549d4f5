"""Depth and width in deep matrix completion (paper Fig. 1): narrow factorisations trained side by side.

:class:`WidthSweepConfig` is one depth's sweep over widths; :func:`width_sweep` trains every width and
trial of it as one batch and returns a tidy frame. The chapter ``book/completion.py`` stores and plots it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from .chains import Factorization, full_width_factorization, narrow_factorization, pad_width
from .completion import TrainConfig, train
from .problems import ProblemConfig, check_int, make_problem, torch_dtype

__all__ = ["WidthSweepConfig", "width_sweep"]


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


def width_sweep(config: WidthSweepConfig, seed: int = 0) -> pd.DataFrame:
    """Rows ``depth, width, trial, steps, converged, train_loss, test_loss, wall_time``.

    Problem seeds are ``seed * 1000 + trial`` and init seeds ``seed * 1000 + 500 + trial``. All
    widths and trials run as one batch (narrow models zero-padded to the largest width with
    :func:`~compressible.matrix.chains.pad_width`); ``wall_time`` is that of the whole batch.
    """
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
