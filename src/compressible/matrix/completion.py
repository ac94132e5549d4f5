"""Training for deep matrix completion: full-batch gradient descent with a discrepant step (paper Sec. 3).

Training is plain full-batch gradient descent on

    ``train loss = 1/2 * ||Omega * (f - Phi)||_F^2 / d^2``

(the authors' normalisation: divide by *all* ``d^2`` entries), and the recovery error is the same
expression on the unobserved entries ``1 - Omega``. The problems come from :mod:`.problems`, the
chains of factors and the gradient kernels from :mod:`.chains`; a batch of ``B`` problems and ``B``
chains trains as one tensor program. Outer factors (those of a compressed chain) step with
``gamma * lr``; ``gamma = 0`` freezes them.

For a thin chain (first factor ``(b, d)``, last ``(d, a)`` with ``a, b << d``) a step costs
``O(d^2 (a + b))`` with the dense masked residual, and ``O(|Omega| (a + b) + d a b + L (2r)^3)``
with ``residual="observed"``, which never forms a ``(d, d)`` matrix. Which is faster depends on
``p`` and on the hardware's gather speed; ``residual="auto"`` picks by ``p`` (see :class:`TrainConfig`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .chains import (
    Factorization,
    ObservedPattern,
    gradients_dense,
    gradients_observed,
    masked_test_loss,
)
from .problems import CompletionProblem, check_int

__all__ = [
    "TrainConfig",
    "CompletionResult",
    "DivergenceError",
    "Stepper",
    "train",
    "torch_threads",
    "rescale_lr",
]

log = logging.getLogger(__name__)

_RESIDUAL_MODES = ("auto", "dense", "observed", "sampled")


class DivergenceError(FloatingPointError):
    """Training diverged (NaN/inf or a blown-up loss); the message names the step and the member."""


@dataclass(frozen=True)
class TrainConfig:
    """Full-batch gradient descent for deep matrix completion.

    Attributes:
        lr: step ``eta`` > 0 (for the mean-normalised loss).
        gamma: outer factors step ``gamma * eta``; ``gamma = 0`` freezes them. Must be >= 0.
        max_steps: at most this many updates.
        tol: a member stops once its train loss is < ``tol`` (``None``: never).
        target_test_loss: a member also stops at the first logged step whose recovery error is
            <= this value (``None``: never); used to time "reaching the same recovery error".
        weight_decay: ``lambda`` >= 0; ``W <- (1 - step lambda) W - step grad``.
        log_every: record train/test loss and wall time every this many steps (and at the end).
        residual: how a step evaluates the masked residual.
            "dense": form ``f`` and ``Omega * (f - Phi)`` as ``(d, d)`` tensors (any chain);
            "observed": gather rows of ``U M`` and ``V`` at the observed entries, never forming a
            ``(d, d)`` tensor, and scatter the gradients with sparse products;
            "sampled": form the thin product ``(U M) V^T`` with one BLAS call but read it only at
            the observed entries, scatter as in "observed";
            "auto": "observed" for thin chains when fewer than ``d^2 / 16`` entries are observed,
            else "dense" (measured fastest on CPUs; see ``Stepper._choose_mode``).
        divergence_factor: stop with :class:`DivergenceError` when the train loss exceeds this
            multiple of its initial value.
        progress: show a tqdm bar.
        threads: torch intra-op threads while training (``None``: leave torch's setting). Small
            problems run fastest with 1: their kernels are too short to amortise a thread team,
            and on a busy machine the team's synchronisation dominates. Restored afterwards.
    """

    lr: float
    gamma: float = 1.0
    max_steps: int = 10_000
    tol: float | None = None
    target_test_loss: float | None = None
    weight_decay: float = 0.0
    log_every: int = 100
    residual: str = "auto"
    divergence_factor: float = 1e6
    progress: bool = False
    threads: int | None = None

    def __post_init__(self):
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive and finite, got {self.lr!r}")
        if not (isinstance(self.gamma, (int, float)) and self.gamma >= 0 and math.isfinite(self.gamma)):
            raise ValueError(f"gamma must be >= 0 and finite (0 freezes the outer factors), got {self.gamma!r}")
        check_int("max_steps", self.max_steps, 0)
        check_int("log_every", self.log_every, 1)
        if self.tol is not None and not self.tol > 0:
            raise ValueError(f"tol must be positive or None, got {self.tol!r}")
        if self.target_test_loss is not None and not self.target_test_loss > 0:
            raise ValueError(f"target_test_loss must be positive or None, got {self.target_test_loss!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.residual not in _RESIDUAL_MODES:
            raise ValueError(f"residual must be one of {_RESIDUAL_MODES}, got {self.residual!r}")
        if not self.divergence_factor > 1:
            raise ValueError(f"divergence_factor must be > 1, got {self.divergence_factor!r}")
        if self.threads is not None:
            check_int("threads", self.threads)


@dataclass
class CompletionResult:
    """What :func:`train` returns.

    Attributes:
        history: tidy DataFrame, one row per member and logged step: ``member``, ``step``,
            ``train_loss``, ``test_loss`` (recovery error), ``wall_time`` (seconds of training
            so far, evaluation excluded) and any columns an observer adds.
        steps: updates each member took before it stopped, ``(B,)``.
        converged: whether the member reached ``tol`` (or ``target_test_loss``), ``(B,)``.
        final_train_loss, final_test_loss: at the member's last step, ``(B,)``.
        wall_time: seconds of training for the whole batch (evaluation excluded).
        factorization: the final factors.
    """

    history: pd.DataFrame
    steps: np.ndarray
    converged: np.ndarray
    final_train_loss: np.ndarray
    final_test_loss: np.ndarray
    wall_time: float
    factorization: Factorization
    kind: str = ""
    extra: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """One row per member."""
        return pd.DataFrame(
            {
                "member": np.arange(len(self.steps)),
                "kind": self.kind,
                "steps": self.steps,
                "converged": self.converged,
                "train_loss": self.final_train_loss,
                "test_loss": self.final_test_loss,
                "wall_time": self.wall_time,
            }
        )

    def time_to_test_loss(self, level: float, member: int = 0) -> float:
        """Wall time of the first logged step at which ``test_loss <= level`` (``nan`` if never)."""
        h = self.history[(self.history.member == member) & (self.history.test_loss <= level)]
        return float(h.wall_time.iloc[0]) if len(h) else float("nan")

    def steps_to_test_loss(self, level: float, member: int = 0) -> float:
        h = self.history[(self.history.member == member) & (self.history.test_loss <= level)]
        return float(h.step.iloc[0]) if len(h) else float("nan")


class Stepper:
    """One gradient-descent step at a time on a private copy of a factorisation.

    :func:`train` and :func:`~compressible.matrix.track.track_compression` drive it; ``benchmarks/matrix_completion.py`` times
    its steps directly.
    """

    def __init__(self, factorization: Factorization, problem: CompletionProblem, config: TrainConfig):
        if factorization.batch != problem.batch:
            raise ValueError(f"factorisation has {factorization.batch} members but the problem has {problem.batch}")
        if factorization.factors[0].shape[-1] != problem.d or factorization.factors[-1].shape[-2] != problem.d:
            raise ValueError(
                f"the factorisation maps {factorization.factors[0].shape[-1]} -> "
                f"{factorization.factors[-1].shape[-2]} but the target is {problem.d} x {problem.d}"
            )
        if factorization.factors[0].dtype != problem.target.dtype:
            raise ValueError(
                f"dtype mismatch: factors are {factorization.factors[0].dtype}, target is {problem.target.dtype}"
            )
        self.factors = [w.clone() for w in factorization.factors]
        self.template = factorization
        self.problem = problem
        self.config = config
        self.scale = 1.0 / (problem.d * problem.d)
        dtype = problem.target.dtype
        self.unobserved_f = (~problem.mask).to(dtype)
        self.mode = self._choose_mode(factorization, problem, config.residual)
        self.mask_f = problem.mask.to(dtype) if self.mode == "dense" else None
        self.pattern = ObservedPattern(problem) if self.mode in ("observed", "sampled") else None
        self.lrs = [config.lr * (config.gamma if o else 1.0) for o in factorization.outer]

    @staticmethod
    def _choose_mode(fact: Factorization, problem: CompletionProblem, mode: str) -> str:
        if mode in ("observed", "sampled") and len(fact.factors) < 2:
            raise ValueError(f"residual={mode!r} needs a chain of at least two factors, got {len(fact.factors)}")
        if mode != "auto":
            return mode
        if not fact.is_thin():
            return "dense"  # a full-width chain forms (d, d) products anyway
        # Measured on CPUs (benchmarks/matrix_completion.py reports all three per run): torch's
        # gathers and sparse products cost 10-30 BLAS multiply-adds per observed entry, so the
        # observed-entries residual only pays when few entries are observed (p < 1/16).
        return "observed" if problem.n_observed * 16 < problem.d**2 else "dense"

    def gradients(self) -> tuple[Tensor, list[Tensor]]:
        if self.mode in ("observed", "sampled"):
            return gradients_observed(self.factors, self.pattern, self.scale, self.mode == "sampled")
        return gradients_dense(self.factors, self.problem, self.mask_f, self.scale)

    def apply(self, grads: Sequence[Tensor], active: Tensor | None) -> None:
        wd = self.config.weight_decay
        for w, g, lr in zip(self.factors, grads, self.lrs):
            if lr == 0.0:
                continue  # gamma = 0: frozen, bit-identical
            step = g if wd == 0.0 else g + wd * w
            if active is not None:
                step = step * active.view(-1, 1, 1)
            w.sub_(lr * step)

    def test_loss(self) -> Tensor:
        return masked_test_loss(self.factorization(), self.problem, self.unobserved_f, self.scale)

    def factorization(self) -> Factorization:
        return replace(self.template, factors=tuple(self.factors))


def train(
    factorization: Factorization,
    problem: CompletionProblem,
    config: TrainConfig,
    observer: Callable[[int, Tensor], dict[str, Sequence[float]]] | None = None,
) -> CompletionResult:
    """Gradient descent on the masked mean loss for every member of the batch.

    Args:
        factorization: the starting point (not modified).
        problem: targets and masks, same batch size.
        config: step sizes, stopping rules and logging.
        observer: optional ``observer(step, end_to_end)`` called at logged steps with the
            ``(B, d, d)`` product; it returns a dict of per-member values added to ``history``.

    Raises:
        DivergenceError: the train loss became NaN/inf or exceeded ``divergence_factor`` times its
            initial value; the message names the step and the member.
    """
    with torch_threads(config.threads):
        return _train(factorization, problem, config, observer)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads (``None``: unchanged); restore the setting after."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(factorization, problem, config, observer) -> CompletionResult:
    stepper = Stepper(factorization, problem, config)
    batch = problem.batch
    active = torch.ones(batch, dtype=torch.bool, device=problem.target.device)
    steps = np.full(batch, config.max_steps)
    converged = np.zeros(batch, dtype=bool)
    final_train = np.full(batch, np.nan)
    final_test = np.full(batch, np.nan)
    rows: list[dict] = []
    wall = 0.0
    initial = None
    bar = tqdm(total=config.max_steps, disable=not config.progress, desc=f"{factorization.kind} GD")
    for t in range(config.max_steps + 1):
        tic = time.perf_counter()
        loss, grads = stepper.gradients()
        loss_np = loss.detach().cpu().numpy().astype(np.float64)
        wall += time.perf_counter() - tic
        if initial is None:
            initial = np.maximum(loss_np, np.finfo(np.float64).tiny)
        bad = ~np.isfinite(loss_np) | (loss_np > config.divergence_factor * initial)
        bad &= active.cpu().numpy()
        if bad.any():
            member = int(np.flatnonzero(bad)[0])
            raise DivergenceError(
                f"{factorization.kind} factorisation diverged at step {t} (member {member}, train loss "
                f"{loss_np[member]:.3g}, initial {initial[member]:.3g}); lower lr (now {config.lr}) or gamma"
            )
        act = active.cpu().numpy()
        newly_done = act & (loss_np < config.tol) if config.tol is not None else np.zeros(batch, bool)
        log_now = t % config.log_every == 0 or t == config.max_steps or newly_done.any()
        if log_now:
            test_np = stepper.test_loss().detach().cpu().numpy().astype(np.float64)
            extra = observer(t, stepper.factorization().end_to_end()) if observer is not None else {}
            for i in range(batch):
                if act[i]:
                    row = {"member": i, "step": t, "train_loss": loss_np[i], "test_loss": test_np[i], "wall_time": wall}
                    row.update({k: float(v[i]) for k, v in extra.items()})
                    rows.append(row)
            final_test = np.where(act, test_np, final_test)
            if config.target_test_loss is not None:
                newly_done |= act & (test_np <= config.target_test_loss)
        final_train = np.where(act, loss_np, final_train)
        if newly_done.any():
            steps[newly_done] = t
            converged |= newly_done
            if not log_now:
                final_test = np.where(newly_done, stepper.test_loss().cpu().numpy(), final_test)
            active &= ~torch.as_tensor(newly_done, device=active.device)
            if not bool(active.any()):
                break
        if t == config.max_steps:
            break
        tic = time.perf_counter()
        stepper.apply(grads, None if bool(active.all()) else active)
        wall += time.perf_counter() - tic
        bar.update(1)
    bar.close()
    history = pd.DataFrame(rows)
    return CompletionResult(
        history=history,
        steps=steps,
        converged=converged,
        final_train_loss=final_train,
        final_test_loss=final_test,
        wall_time=wall,
        factorization=stepper.factorization(),
        kind=factorization.kind,
    )


def rescale_lr(lr: float, d: int, d_ref: int) -> float:
    """The step for size ``d`` that matches step ``lr`` at size ``d_ref``: ``lr (d / d_ref)^(4/3)``.

    For a Gaussian-based target ``sigma_max(Phi) ~ 2 sqrt(d)``; the curvature of the mean loss of a
    depth-3 factorisation near the solution scales like ``sigma_max^(4/3) / d^2 ~ d^(-4/3)``, so this
    keeps ``lr`` at the same fraction of the stability limit when ``d`` is reduced.
    """
    check_int("d", d)
    check_int("d_ref", d_ref)
    return float(lr) * (d / d_ref) ** (4.0 / 3.0)
