"""One run of a sweep, wherever it executes: what a worker of :func:`compressible.executors.execute` does.

:func:`attempt` computes one ``(config, seed)`` with torch's threads fixed (:class:`Threads`), stores the
result (or, when the run raises, its failure) and returns a small status; :func:`run_task` is the same in a
Ray task or a worker process, whose run function is built once per process from a :data:`RunFactory`;
:func:`quiet_worker` sends a worker process's output to a log file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import traceback as tb
from typing import Any, Callable

from .environment import measured
from .store import ResultStore, config_key

__all__ = ["RunFactory", "Threads", "attempt", "run_task", "quiet_worker"]

log = logging.getLogger("compressible.executors")  # the sweep's log: a failure is reported with the sweep's messages

RunFactory = Callable[[], Callable[[Any, int], dict]]
"""Makes the function that computes one run, ``run_one(config, seed) -> result dict``. A factory
(e.g. ``functools.partial(Runner, device="cuda", progress=False)``) rather than the function itself,
so that each Ray worker builds its own (with its own caches) instead of receiving a pickled one."""


class Threads:
    """Fixes torch's intra-op threads for one run (``None``: leave them as they are)."""

    def __init__(self, threads: int | None):
        self.threads, self.previous = threads, None

    def __enter__(self) -> None:
        if self.threads is not None:
            import torch

            self.previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            import torch

            torch.set_num_threads(self.previous)


_WORKER_RUNNERS: dict[str, Callable[[Any, int], dict]] = {}
"""In a worker process: the run function of each factory, built once and reused by later tasks."""


def _runner(make_runner: RunFactory) -> Callable[[Any, int], dict]:
    try:
        key = hashlib.sha1(pickle.dumps(make_runner)).hexdigest()
    except (pickle.PicklingError, TypeError, AttributeError):
        try:  # a lambda or closure: Ray's cloudpickle serialises it by value
            from ray import cloudpickle

            key = hashlib.sha1(cloudpickle.dumps(make_runner)).hexdigest()
        except Exception:
            return make_runner()  # not cacheable: a fresh run function for this task
    if key not in _WORKER_RUNNERS:
        _WORKER_RUNNERS[key] = make_runner()
    return _WORKER_RUNNERS[key]


def attempt(run_one: Callable[[Any, int], dict], store: ResultStore, config: Any, seed: int, threads: int | None) -> dict:
    """Compute and store one run; a run that raises is stored as failed. Returns a small status."""
    try:
        with Threads(threads):
            result = measured(run_one, config, seed)
        store.save(config, seed, result)
    except Exception as error:  # recorded, reported, and the sweep goes on
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        trace = tb.format_exc()
        try:
            store.save_failure(config, seed, message, trace)
        except Exception:  # the store itself failed: still report the run's error
            log.exception("could not record the failure of %s seed %d", config_key(config), seed)
        return {"ok": False, "error": message, "traceback": trace}
    return {"ok": True}


def run_task(make_runner: RunFactory, store: ResultStore, config: Any, seed: int, threads: int | None) -> dict:
    """One task of a Ray or ``processes`` sweep: :func:`attempt` with this worker's run function of ``make_runner``
    (built once per worker process and factory, then reused)."""
    return attempt(_runner(make_runner), store, config, seed, threads)


def quiet_worker(log_path: str) -> None:
    """Initialiser of a ``processes`` worker: its stdout and stderr go to ``log_path`` (appended)."""
    import sys

    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
