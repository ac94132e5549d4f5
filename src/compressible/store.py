"""A result store that makes sweeps survive interruption.

An experiment is a frozen dataclass config; one run is ``(config, seed)``. Its result (a
JSON-serialisable dict: metrics at each evaluation step, the loss curve, wall time, ...) is written
atomically to ``<root>/<ConfigClass>/<key>/seed-<seed>.json``, where ``key`` is a hash of the
config's fields. Re-running a sweep recomputes only the runs whose file is missing; a run killed
half-way leaves no file (the write goes to a temporary file that is renamed when complete).

Every stored result also records the environment it was computed in (package versions, device,
git commit) under ``"_environment"`` and the config itself under ``"_config"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

from .hub import results_dir

__all__ = ["ResultStore", "config_key", "environment_info"]

log = logging.getLogger(__name__)


def _config_dict(config: Any) -> dict:
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise TypeError(f"a config must be a dataclass instance, got {type(config).__name__}")
    return dataclasses.asdict(config)


def config_key(config: Any) -> str:
    """A stable 16-hex-digit key for a dataclass config (same fields and values -> same key)."""
    payload = json.dumps(_config_dict(config), sort_keys=True, default=str)
    digest = hashlib.sha1(f"{type(config).__name__}:{payload}".encode()).hexdigest()
    return digest[:16]


def environment_info(device: str | None = None) -> dict:
    """Versions, device and git commit, stored beside every result."""
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for name in ("transformers", "peft", "datasets", "numpy"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            pass
    try:
        from . import __version__

        info["compressible"] = __version__
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


class ResultStore:
    """Stores one JSON result per ``(config, seed)`` under ``root`` (default: :func:`compressible.hub.results_dir`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser().resolve() if root is not None else results_dir()

    def path(self, config: Any, seed: int) -> Path:
        """Where the result of ``(config, seed)`` lives."""
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        return self.root / type(config).__name__ / config_key(config) / f"seed-{seed}.json"

    def has(self, config: Any, seed: int) -> bool:
        return self.path(config, seed).is_file()

    def load(self, config: Any, seed: int) -> dict:
        path = self.path(config, seed)
        if not path.is_file():
            raise KeyError(f"no stored result for {type(config).__name__} seed {seed} (looked at {path})")
        with open(path) as handle:
            return json.load(handle)

    def save(self, config: Any, seed: int, result: dict) -> Path:
        """Write ``result`` atomically (temporary file + rename); returns its path."""
        if not isinstance(result, dict):
            raise TypeError(f"a result must be a dict, got {type(result).__name__}")
        path = self.path(config, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        config_file = path.parent / "config.json"
        if not config_file.exists():
            self._atomic_write(config_file, {"class": type(config).__name__, **_config_dict(config)})
        record = {"_config": _config_dict(config), "_seed": seed, **result}
        record.setdefault("_environment", environment_info())
        self._atomic_write(path, record)
        return path

    @staticmethod
    def _atomic_write(path: Path, payload: dict) -> None:
        text = json.dumps(payload, indent=1, sort_keys=True, default=_json_default)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def run(
        self,
        config: Any,
        seeds: Iterable[int],
        fn: Callable[[Any, int], dict],
        progress: bool = True,
        desc: str | None = None,
    ) -> list[dict]:
        """Results for every seed, computing ``fn(config, seed)`` only where none is stored."""
        seeds = list(seeds)
        missing = [s for s in seeds if not self.has(config, s)]
        if len(missing) < len(seeds):
            log.info("%s: %d of %d runs already stored", type(config).__name__, len(seeds) - len(missing), len(seeds))
        for seed in tqdm(missing, disable=not progress or not missing, desc=desc or type(config).__name__):
            self.save(config, seed, fn(config, seed))
        return [self.load(config, s) for s in seeds]


def _json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store a value of type {type(value).__name__} in a result: {value!r}")
