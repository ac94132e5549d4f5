"""Where a sweep's runs execute: one after another in this process, in a pool of local processes, or
as Ray tasks on a cluster.

A sweep is a list of ``(config, seeds)``; every ``(config, seed)`` that the
:class:`~compressible.store.ResultStore` does not hold yet is one *run*. :func:`execute` computes
the missing runs and returns a :class:`SweepSummary` (done / skipped as already stored / failed,
with each failure's config key and error):

``executor="local"``
    the runs one after another in this process (the default).
``executor="processes"``
    ``workers`` processes on this machine (default: one per CPU), each computing one run at a time
    with ``threads`` torch threads (default 1). On a CPU, two one-thread runs side by side do about
    1.5x the work of one two-thread run (a small model's step does not keep two threads busy), which
    is how the ci scale's GLUE sweep uses a 2-core machine. A worker's own output goes to a log file
    (its path is logged), so that it cannot land in a notebook; a run that fails is recorded in the
    store with its traceback as always.
``executor="ray"``
    each run is one `Ray <https://docs.ray.io>`_ task with ``cpus_per_run`` CPUs and
    ``gpus_per_run`` GPUs (Ray sets ``CUDA_VISIBLE_DEVICES`` so that ``cuda`` in a task is the GPU
    it was given). ``address=None`` starts a Ray instance on this machine (all its CPUs and GPUs);
    ``"auto"`` joins the cluster that ``ray start --head`` started here; ``"ray://host:10001"``
    joins a remote one. Workers write their own results into the store -- so on several machines
    the store must be shared (a network folder or an object store URL, see
    :mod:`compressible.store`) -- and return only a small status to the driver.

Faults: a run that raises is recorded in the store as failed, with its traceback, and the sweep
goes on; a Ray worker that dies (killed, out of memory, node lost) is retried up to
``max_retries`` times, and a run whose retries are spent is recorded as failed like the others.
Ctrl-C on the driver cancels the runs not finished yet and raises :class:`SweepInterrupted`
(a ``KeyboardInterrupt`` carrying the summary so far); finished results stay in the store.

Same numbers wherever a run executes: the run function is given the same ``(config, seed)`` as in
a local sweep (per-run seeds are part of the run, not of the executor), and every task fixes
torch's intra-op threads (``threads``, by default ``cpus_per_run``) for the duration of the run.

Ray is optional (``pip install compressible[cluster]``): it is imported only by the Ray executor. What one
run does wherever it executes (threads, storing its result or its failure) is :mod:`compressible.workers`.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import tempfile
import time
import traceback as tb
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from tqdm.auto import tqdm

from .store import ResultStore, config_key
from .workers import RunFactory, attempt, quiet_worker, run_task

__all__ = ["EXECUTORS", "Failure", "SweepSummary", "SweepInterrupted", "missing_runs", "execute"]

log = logging.getLogger(__name__)

EXECUTORS = ("local", "processes", "ray")
"""The executors :func:`execute` accepts."""


@dataclass(frozen=True)
class Failure:
    """One run that did not produce a result."""

    config_key: str
    """:func:`~compressible.store.config_key` of the run's config (its folder in the store)."""
    seed: int
    description: str
    """A short human-readable name of the config."""
    error: str
    """The exception, on one line (``ValueError: ...``)."""
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.config_key} seed {self.seed} ({self.description}): {self.error}"


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did: runs computed, skipped because already stored, and failed."""

    executor: str
    done: int
    skipped: int
    failed: tuple[Failure, ...] = ()
    cancelled: int = 0
    """Runs not finished when the sweep was interrupted (nothing of them is stored)."""
    seconds: float = 0.0
    stored_in: str = ""

    @property
    def total(self) -> int:
        return self.done + self.skipped + len(self.failed) + self.cancelled

    def then(self, later: "SweepSummary") -> "SweepSummary":
        """One summary of this sweep followed by ``later`` over a superset of its runs (a tuning grid, then
        the runs at the chosen rates): runs this one computed count as done, not as skipped by ``later``."""
        return dataclasses.replace(
            later, done=self.done + later.done, skipped=later.skipped - self.done,
            failed=self.failed + later.failed, seconds=self.seconds + later.seconds,
        )

    def line(self) -> str:
        """``"ray: 11 done, 1 skipped (already stored), 0 failed in 42.1 s, store ..."``."""
        text = f"{self.executor}: {self.done} done, {self.skipped} skipped (already stored), {len(self.failed)} failed"
        if self.cancelled:
            text += f", {self.cancelled} cancelled"
        text += f" in {self.seconds:.1f} s"
        return text + (f", store {self.stored_in}" if self.stored_in else "")

    def __str__(self) -> str:
        return "\n".join([self.line(), *(f"  failed: {f}" for f in self.failed)])


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`execute`: pending runs were cancelled; ``summary`` says what finished."""

    def __init__(self, summary: SweepSummary):
        super().__init__(summary.line())
        self.summary = summary


def missing_runs(
    experiments: Iterable[tuple[Any, Iterable[int]]], store: ResultStore
) -> tuple[list[tuple[Any, int]], int]:
    """``([(config, seed) not stored yet], number already stored)``, in the experiments' order."""
    todo, skipped, seen = [], 0, set()
    for config, seeds in experiments:
        for seed in seeds:
            if (config_key(config), seed) in seen:
                continue
            seen.add((config_key(config), seed))
            if store.has(config, seed):
                skipped += 1
            else:
                todo.append((config, seed))
    return todo, skipped


def _describe(config: Any) -> str:
    simple = (str, int, float, type(None))
    shown = [f"{k}={v}" for k, v in vars(config).items() if isinstance(v, simple)][:4]
    return " ".join([type(config).__name__, *shown])


def _check_positive(name: str, value: Any, integer: bool) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < (1 if integer else 0):
        raise ValueError(f"{name} must be {'an int >= 1' if integer else 'a number >= 0'}, got {value!r}")


def execute(
    experiments: Sequence[tuple[Any, Sequence[int]]],
    make_runner: RunFactory,
    store: ResultStore | str | None = None,
    executor: str = "local",
    *,
    address: str | None = None,
    gpus_per_run: float = 0,
    cpus_per_run: float = 1,
    threads: int | None = None,
    max_retries: int = 3,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "runs",
    describe: Callable[[Any], str] = _describe,
) -> SweepSummary:
    """Compute every ``(config, seed)`` of ``experiments`` that ``store`` does not hold yet.

    ``make_runner()`` returns the function ``run_one(config, seed) -> dict`` whose result is
    stored (see :data:`~compressible.workers.RunFactory`). ``executor`` is ``"local"`` or ``"ray"`` (see the module
    docstring for ``address``); ``gpus_per_run`` and ``cpus_per_run`` are each Ray task's
    resources, ``max_retries`` how often Ray reruns a task whose worker died. ``workers`` is the
    number of processes of ``executor="processes"`` (default: ``os.cpu_count()``). ``threads`` fixes
    torch's intra-op threads during each run (default: ``cpus_per_run`` rounded down, at least 1,
    on Ray; 1 in processes; unchanged locally). ``describe(config)`` names a failed run's config in the summary.
    One progress bar counts finished runs; raises
    :class:`SweepInterrupted` on Ctrl-C after cancelling what is pending.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid executors are {EXECUTORS}")
    _check_positive("cpus_per_run", cpus_per_run, integer=False)
    _check_positive("gpus_per_run", gpus_per_run, integer=False)
    if threads is not None:
        _check_positive("threads", threads, integer=True)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
    if executor != "ray" and (address is not None or gpus_per_run):
        raise ValueError(f"address={address!r} and gpus_per_run={gpus_per_run!r} need executor='ray'")
    if workers is not None:
        _check_positive("workers", workers, integer=True)
        if executor != "processes":
            raise ValueError(f"workers={workers!r} needs executor='processes'")
    if not callable(make_runner):
        raise TypeError(f"make_runner must be callable (a factory of run functions), got {make_runner!r}")
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    todo, skipped = missing_runs(experiments, store)
    store.check_compute(todo)
    sweep = _Sweep(executor, skipped, str(store.url), describe)
    if executor == "ray" and address is not None and store.local:
        log.warning("every Ray node writes its results under %s on its own disk: give a folder that all nodes share "
                    "or an object-store URL (s3://..., gs://...)", store.url)
    if todo:
        log.info("%s executor: %d runs to compute, %d already stored", executor, len(todo), skipped)
    bar = tqdm(total=len(todo), disable=not progress or not todo, desc=desc, unit="run")
    try:
        if executor == "local" or not todo:  # nothing to compute: no Ray instance to start
            sweep.local(todo, make_runner(), store, threads, bar)
        elif executor == "processes":
            sweep.processes(todo, make_runner, store, 1 if threads is None else threads, bar,
                            workers or os.cpu_count() or 1)
        else:
            threads = threads if threads is not None else max(1, int(cpus_per_run))
            sweep.ray(todo, make_runner, store, threads, bar, address, cpus_per_run, gpus_per_run, max_retries)
    finally:
        bar.close()
    summary = sweep.summary()
    log.info("%s", summary.line())
    return summary


@dataclass
class _Sweep:
    """Book-keeping of one :func:`execute`: what finished, what failed."""

    executor: str
    skipped: int
    stored_in: str
    describe: Callable[[Any], str]
    done: int = 0
    failed: list[Failure] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)

    def summary(self, cancelled: int = 0) -> SweepSummary:
        return SweepSummary(self.executor, self.done, self.skipped, tuple(self.failed), cancelled,
                            time.perf_counter() - self.start, self.stored_in)

    def record(self, config: Any, seed: int, status: dict, bar: Any) -> None:
        if status["ok"]:
            self.done += 1
        else:
            failure = Failure(config_key(config), seed, self.describe(config), status["error"], status.get("traceback", ""))
            self.failed.append(failure)
            log.warning("run failed: %s", failure)
        bar.update(1)

    def local(self, todo: list, run_one: Callable[[Any, int], dict], store: ResultStore, threads: int | None, bar: Any) -> None:
        for i, (config, seed) in enumerate(todo):
            try:
                status = attempt(run_one, store, config, seed, threads)
            except KeyboardInterrupt:
                raise SweepInterrupted(self.summary(cancelled=len(todo) - i)) from None
            self.record(config, seed, status, bar)

    def ray(self, todo, make_runner, store, threads, bar, address, cpus_per_run, gpus_per_run, max_retries) -> None:
        try:
            import ray
        except ImportError as error:
            raise ImportError("executor='ray' needs Ray: pip install 'compressible[cluster]'") from error
        started = False
        if not ray.is_initialized():
            if address is None:
                ray.init(include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address)
            started = True
        try:
            task = ray.remote(run_task).options(
                num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries, retry_exceptions=False
            )
            pending: dict = {}
            try:
                factory = ray.put(make_runner)
                for config, seed in todo:
                    pending[task.remote(factory, store, config, seed, threads)] = (config, seed)
                while pending:
                    # a timeout returns to Python regularly, so that Ctrl-C is raised here and not lost in ray.wait
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                    for ref in ready:
                        config, seed = pending.pop(ref)
                        self.record(config, seed, self._status(ray, ref, store, config, seed), bar)
            except KeyboardInterrupt:
                for ref in pending:
                    ray.cancel(ref, force=True)
                # runs not finished: the pending ones and any not yet submitted when Ctrl-C came
                raise SweepInterrupted(self.summary(cancelled=len(todo) - self.done - len(self.failed))) from None
        finally:
            if started:
                ray.shutdown()

    def processes(self, todo, make_runner, store, threads, bar, workers) -> None:
        log_file = tempfile.NamedTemporaryFile(prefix="compressible-workers-", suffix=".log", delete=False)
        log_file.close()
        log.info("processes executor: %d workers x %d thread(s); their output goes to %s", workers, threads, log_file.name)
        pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=quiet_worker, initargs=(log_file.name,))
        pending: dict = {}
        try:
            for config, seed in todo:
                pending[pool.submit(run_task, make_runner, store, config, seed, threads)] = (config, seed)
            while pending:
                # a timeout returns to Python regularly, so that Ctrl-C is raised here
                done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    config, seed = pending.pop(future)
                    self.record(config, seed, self._future_status(future, store, config, seed), bar)
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()  # a run in progress leaves no result (the store writes atomically)
            pool.shutdown(wait=False, cancel_futures=True)
            raise SweepInterrupted(self.summary(cancelled=len(todo) - self.done - len(self.failed))) from None
        pool.shutdown(wait=True)

    @staticmethod
    def _future_status(future: Any, store: ResultStore, config: Any, seed: int) -> dict:
        """The worker's status; a worker that died (killed, out of memory) makes the run a failure."""
        try:
            return future.result()
        except Exception as error:  # BrokenProcessPool and the like: the run itself did not return
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            try:
                store.save_failure(config, seed, message, tb.format_exc())
            except Exception:
                log.exception("could not record the failure of %s seed %d", config_key(config), seed)
            return {"ok": False, "error": message, "traceback": tb.format_exc()}

    @staticmethod
    def _status(ray: Any, ref: Any, store: ResultStore, config: Any, seed: int) -> dict:
        """The task's status; a task whose retries are spent (its worker kept dying) becomes a failure."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as error:
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            try:
                store.save_failure(config, seed, message, str(error))
            except Exception:
                log.exception("could not record the failure of %s seed %d", config_key(config), seed)
            return {"ok": False, "error": message, "traceback": str(error)}
