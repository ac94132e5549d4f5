"""An original factorisation and its compression trained side by side (paper Sec. 2.3, Fig. 4).

:func:`track_compression` steps both with one :class:`~compressible.matrix.completion.Stepper` each, times
each model's steps separately, and logs the distance between their end-to-end matrices (Proposition 2.2)
and both trajectories along the target's leading singular pairs.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import torch
from tqdm.auto import tqdm

from .chains import Factorization
from .completion import DivergenceError, Stepper, TrainConfig, torch_threads
from .problems import CompletionProblem

__all__ = ["track_compression"]


def track_compression(
    original: Factorization,
    compressed: Factorization,
    problem: CompletionProblem,
    config: TrainConfig,
    directions: int = 2,
) -> pd.DataFrame:
    """Run an original and its compression side by side (member 0) and compare them.

    Both take the same number of steps with the same ``config`` (``gamma`` applies to the
    compressed outer factors; the original has none). Each model's step is timed separately.
    Logged every ``config.log_every`` steps: ``step``, ``train_loss_original``,
    ``train_loss_compressed``, ``test_loss_*``, ``time_original``, ``time_compressed`` (cumulative
    seconds of stepping), ``distance`` = ``||f - f~||_F``, and for ``k < directions`` the
    coordinates ``u_k^T f v_k`` of both trajectories along the target's top singular pairs
    (``coord{k}_original``, ``coord{k}_compressed``).
    """
    with torch_threads(config.threads):
        return _track(original, compressed, problem, config, directions)


def _track(original, compressed, problem, config, directions) -> pd.DataFrame:
    problem = problem.member(0)
    runs = {"original": Stepper(original.member(0), problem, config), "compressed": Stepper(compressed.member(0), problem, config)}
    u, _, vh = torch.linalg.svd(problem.target[0])
    u, v = u[:, :directions], vh[:directions].T
    times = {k: 0.0 for k in runs}
    rows = []
    for t in tqdm(range(config.max_steps + 1), disable=not config.progress, desc="original vs compressed"):
        losses, grads = {}, {}
        for name, s in runs.items():
            tic = time.perf_counter()
            loss, g = s.gradients()
            losses[name] = float(loss[0])
            grads[name] = g
            times[name] += time.perf_counter() - tic
            if not math.isfinite(losses[name]):
                raise DivergenceError(f"{name} factorisation diverged at step {t} (train loss {losses[name]})")
        if t % config.log_every == 0 or t == config.max_steps:
            f = {name: s.factorization().end_to_end()[0] for name, s in runs.items()}
            row = {"step": t, "distance": float(torch.linalg.matrix_norm(f["original"] - f["compressed"]))}
            for name, s in runs.items():
                row[f"train_loss_{name}"] = losses[name]
                row[f"test_loss_{name}"] = float(s.test_loss()[0])
                row[f"time_{name}"] = times[name]
                coords = ((u.T @ f[name]) * v.T).sum(-1)
                for k in range(directions):
                    row[f"coord{k}_{name}"] = float(coords[k])
            rows.append(row)
        if t == config.max_steps:
            break
        for name, s in runs.items():
            tic = time.perf_counter()
            s.apply(grads[name], None)
            times[name] += time.perf_counter() - tic
    return pd.DataFrame(rows)
