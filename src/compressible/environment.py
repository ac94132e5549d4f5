"""Where a run was computed: the environment recorded beside every stored result.

:func:`environment_info` (package versions, device, host, git commit and :func:`machine_info`: CPU model
and capability, threads, GPU) is what :class:`~compressible.store.ResultStore` writes under a record's
``"_environment"``; :func:`measured` adds the torch threads a run used and its wall time to its result.
The ledger compares these fields to decide whether a re-execution ran on the record's platform
(:mod:`compressible.ledger.verify`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["environment_info", "machine_info", "git_commit", "measured"]


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The package's git commit (asked once per process: a sweep saves many results)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() if commit.returncode == 0 else None


def environment_info(device: str | None = None) -> dict:
    """Versions, device and git commit, stored beside every result."""
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "host": platform.node(),
        "pid": os.getpid(),
        "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **machine_info(),
    }
    for name in ("transformers", "peft", "datasets", "numpy"):
        try:  # from the installed metadata: importing transformers costs seconds in a fresh worker
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    from . import __version__

    info["compressible"] = __version__
    commit = git_commit()
    if commit:
        info["git_commit"] = commit
    return info


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """What decides a run's arithmetic on this machine: CPU model, torch's CPU capability (the kernels it
    dispatches to: ``AVX2``, ``AVX512``, ...), torch's thread count now, and the GPU model when CUDA is
    there. Stored in every record's ``_environment``; :mod:`compressible.ledger.verify` compares it."""
    import torch

    info = {
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info




def measured(fn: Callable[[Any, int], dict], config: Any, seed: int) -> dict:
    """``fn(config, seed)`` with the torch threads it ran with and its wall time added (where it does not
    report them itself), for the record's provenance."""
    import torch

    tic = time.perf_counter()
    result = fn(config, seed)
    if isinstance(result, dict):
        result.setdefault("threads", torch.get_num_threads())
        result.setdefault("wall_time", time.perf_counter() - tic)
    return result
