"""A result store that makes sweeps survive interruption, on a local disk or shared storage.

An experiment is a frozen dataclass config; one run is ``(config, seed)``. Its result (a
JSON-serialisable dict: metrics at each evaluation step, the loss curve, wall time, ...) is written
atomically to ``<root>/<ConfigClass>/<key>/seed-<seed>.json``, where ``key`` is a hash of the
config's fields. Re-running a sweep recomputes only the runs whose file is missing; a run killed
half-way leaves no file.

``root`` is a local folder or an `fsspec <https://filesystem-spec.readthedocs.io>`_ URL
(``file:///scratch/results``, ``s3://bucket/results``, ``gs://...``; the object-store protocols need
their fsspec package, e.g. ``s3fs``). On a file system a result is written to a temporary file
beside its destination and renamed when complete; on an object store it is one ``put`` of the whole
object, which the store makes visible only when complete. So several machines can write into one
store at once: each run has its own file.

A run that raised is recorded as ``seed-<seed>.failed.json`` (its traceback and environment); it
does not count as stored, so the next sweep tries it again, and a later success removes the record.

Every stored result also records the environment it was computed in (package versions, device,
git commit, CPU model and capability, threads: :func:`compressible.environment.environment_info`) under
``"_environment"`` and the config itself under ``"_config"``.

**The ledger.** A store may read through a second, read-only store first: the repository's committed
``ledger/`` (:mod:`compressible.ledger.records`). ``ResultStore()`` (no root) does so when
``$COMPRESSIBLE_LEDGER`` names a folder (the Makefile sets it to the project's ``ledger/``; ``off``
bypasses it); a run held by the ledger is loaded from it and never recomputed, new runs are written
under ``root`` as always. With ``$COMPRESSIBLE_LEDGER_ONLY=1`` (the book's CI build) a store that
reads a ledger computes nothing: asking it for a run that neither holds raises
:class:`LedgerMissingError`, which lists the runs and the command that computes them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

from .environment import environment_info, measured
from .hub import results_dir

__all__ = ["ResultStore", "config_key", "KEY_OPTIONAL", "LEDGER_ENV", "LEDGER_ONLY_ENV", "ledger_dir", "ledger_only",
           "LedgerMissingError"]

log = logging.getLogger(__name__)


LEDGER_ENV = "COMPRESSIBLE_LEDGER"
"""The environment variable naming the ledger folder that ``ResultStore()`` reads through (unset, empty or
``off`` for none)."""

LEDGER_ONLY_ENV = "COMPRESSIBLE_LEDGER_ONLY"
"""The environment variable that, set to ``1``, makes every store that reads a ledger refuse to compute a
missing run."""

_OFF = {"", "0", "off", "none", "false", "no"}


def ledger_dir() -> Path | None:
    """The ledger folder named by ``$COMPRESSIBLE_LEDGER``, or ``None`` when it is unset or switched off."""
    value = os.environ.get(LEDGER_ENV, "").strip()
    return None if value.lower() in _OFF else Path(value).expanduser().resolve()


def ledger_only() -> bool:
    """Whether ``$COMPRESSIBLE_LEDGER_ONLY`` forbids computing runs that the ledger lacks."""
    return os.environ.get(LEDGER_ONLY_ENV, "").strip().lower() not in _OFF


class LedgerMissingError(RuntimeError):
    """A build that may only read the ledger asked for runs that it does not hold."""

    def __init__(self, runs: list[tuple[Any, int]], ledger: str):
        self.runs = [(type(c).__name__, config_key(c), s) for c, s in runs]
        shown = ", ".join(f"{name} {key} seed {seed}" for name, key, seed in self.runs[:8])
        more = f" and {len(self.runs) - 8} more" if len(self.runs) > 8 else ""
        super().__init__(
            f"{len(self.runs)} run(s) are not in the ledger {ledger} and ${LEDGER_ONLY_ENV} forbids computing them: "
            f"{shown}{more}. Grow the ledger (python -m compressible.sweeps run <chapter> --scale <scale> --into ledger, "
            f"see ledger/README.md) or build without ${LEDGER_ONLY_ENV}."
        )


def _config_dict(config: Any) -> dict:
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise TypeError(f"a config must be a dataclass instance, got {type(config).__name__}")
    return dataclasses.asdict(config)


KEY_OPTIONAL = "compressible.store.key_optional"
"""Field metadata flag: a field added to a config class after results were stored, whose default
reproduces the earlier behaviour, is left out of the key while it holds that default (so the stored
results keep their keys). Use ``field(default=..., metadata={KEY_OPTIONAL: True})``."""


def _key_dict(config: Any) -> Any:
    """``dataclasses.asdict`` of ``config``, without the :data:`KEY_OPTIONAL` fields at their defaults."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        return config
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get(KEY_OPTIONAL) and f.default is not dataclasses.MISSING and value == f.default:
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[f.name] = _key_dict(value)
        else:
            out[f.name] = dataclasses.asdict(config)[f.name] if isinstance(value, (list, tuple, dict)) else value
    return out


def config_key(config: Any) -> str:
    """A stable 16-hex-digit key for a dataclass config (same fields and values -> same key; fields
    flagged :data:`KEY_OPTIONAL` count only when they differ from their default)."""
    _config_dict(config)  # the type check
    payload = json.dumps(_key_dict(config), sort_keys=True, default=str)
    digest = hashlib.sha1(f"{type(config).__name__}:{payload}".encode()).hexdigest()
    return digest[:16]


_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2", "memory"})
"""fsspec protocols whose objects appear whole when one ``put`` completes (no rename needed)."""


class ResultStore:
    """Stores one JSON result per ``(config, seed)`` under ``root``.

    ``root``: a local folder, an fsspec URL (``file://``, ``s3://``, ``gs://``, ...) or ``None`` for
    :func:`compressible.hub.results_dir`. ``root`` is a resolved :class:`~pathlib.Path` for a
    local store and the URL otherwise; ``url`` is always a string that another process (a Ray
    worker) can open the same store with.
    """

    def __init__(self, root: str | os.PathLike | None = None, ledger: "str | os.PathLike | ResultStore | None" = "default",
                 compute_missing: bool | None = None):
        import fsspec.core

        if isinstance(ledger, str) and ledger == "default":
            ledger = ledger_dir() if root is None else None
        if ledger is None or isinstance(ledger, ResultStore):
            self.ledger = ledger
        else:
            self.ledger = ResultStore(ledger, ledger=None)
        """The read-only store consulted first (the committed ledger), or ``None``."""
        self.compute_missing = (not ledger_only()) if compute_missing is None else bool(compute_missing)
        """``False``: :meth:`run` (and :func:`compressible.executors.execute`) refuse to compute a run that
        neither this store nor its ledger holds (only meaningful with a ledger)."""
        if root is None:
            root = results_dir()
        text = os.fspath(root)
        if not isinstance(text, str) or not text:
            raise ValueError(f"a store root must be a non-empty folder or URL, got {root!r}")
        try:
            self.fs, base = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError) as error:
            raise ValueError(f"cannot open the result store {text!r}: {error}") from error
        self.local = "file" in _protocols(self.fs)
        if self.local:
            self.root: Path | str = Path(base).expanduser().resolve()
            self._base = str(self.root)
            self.url = str(self.root)
        else:
            self._base = base.rstrip("/")
            self.root = self.url = text.rstrip("/")

    def __repr__(self) -> str:
        return f"ResultStore({self.url!r})" if self.ledger is None else f"ResultStore({self.url!r}, ledger={self.ledger.url!r})"

    def __reduce__(self):  # workers reopen the store from its URL (file systems need not pickle)
        return (type(self), (self.url, None if self.ledger is None else self.ledger.url, self.compute_missing))

    def check_compute(self, runs: list[tuple[Any, int]]) -> None:
        """Raise :class:`LedgerMissingError` when ``runs`` (missing ones) may not be computed here."""
        if runs and self.ledger is not None and not self.compute_missing:
            raise LedgerMissingError(runs, str(self.ledger.url))

    def in_ledger(self, config: Any, seed: int) -> bool:
        """Whether ``(config, seed)`` comes from the ledger."""
        return self.ledger is not None and self.ledger.has(config, seed)

    def _location(self, config: Any, seed: int, suffix: str = ".json") -> str:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        return f"{self._base}/{type(config).__name__}/{config_key(config)}/seed-{seed}{suffix}"

    def _shown(self, location: str) -> Path | str:
        return Path(location) if self.local else self.url + location[len(self._base):]

    def path(self, config: Any, seed: int) -> Path | str:
        """Where the result of ``(config, seed)`` lives (a ``Path`` for a local store, else a URL)."""
        return self._shown(self._location(config, seed))

    def failure_path(self, config: Any, seed: int) -> Path | str:
        """Where the failure record of ``(config, seed)`` lives (see :meth:`save_failure`)."""
        return self._shown(self._location(config, seed, ".failed.json"))

    def has(self, config: Any, seed: int) -> bool:
        return self.in_ledger(config, seed) or self.fs.isfile(self._location(config, seed))

    def load(self, config: Any, seed: int) -> dict:
        if self.in_ledger(config, seed):
            return self.ledger.load(config, seed)
        location = self._location(config, seed)
        try:
            with self.fs.open(location, "r") as handle:
                return json.load(handle)
        except FileNotFoundError:
            raise KeyError(
                f"no stored result for {type(config).__name__} seed {seed} (looked at {self._shown(location)})"
            ) from None

    def save(self, config: Any, seed: int, result: dict) -> Path | str:
        """Write ``result`` atomically; returns its path (see the module docstring)."""
        if not isinstance(result, dict):
            raise TypeError(f"a result must be a dict, got {type(result).__name__}")
        location = self._location(config, seed)
        self._save_config(config, location)
        record = {"_config": _config_dict(config), "_seed": seed, **result}
        record.setdefault("_environment", environment_info(result.get("device")))
        self._atomic_write(location, record)
        failed = self._location(config, seed, ".failed.json")
        if self.fs.exists(failed):
            self.fs.rm(failed)
        return self._shown(location)

    def save_failure(self, config: Any, seed: int, error: str, traceback: str = "") -> Path | str:
        """Record that ``(config, seed)`` failed with ``error`` (one line) and its ``traceback``."""
        location = self._location(config, seed, ".failed.json")
        self._save_config(config, location)
        record = {"_config": _config_dict(config), "_seed": seed, "error": str(error), "traceback": str(traceback),
                  "_environment": environment_info()}
        self._atomic_write(location, record)
        return self._shown(location)

    def failure(self, config: Any, seed: int) -> dict | None:
        """The failure record of ``(config, seed)``, or ``None`` when its last attempt did not fail."""
        try:
            with self.fs.open(self._location(config, seed, ".failed.json"), "r") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    def _save_config(self, config: Any, location: str) -> None:
        config_file = location.rsplit("/", 1)[0] + "/config.json"
        if not self.fs.exists(config_file):
            self._atomic_write(config_file, {"class": type(config).__name__, **_config_dict(config)})

    def _atomic_write(self, location: str, payload: dict) -> None:
        self._write_bytes(location, json.dumps(payload, indent=1, sort_keys=True, default=_json_default).encode())

    def _write_bytes(self, location: str, data: bytes) -> None:
        """Write ``data`` to ``location`` so that readers see the whole file or none (see the module docstring)."""
        folder, name = location.rsplit("/", 1)
        if self.local:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, location)
            except FileNotFoundError:
                if not os.path.isfile(location):
                    raise
                # another writer of the same file renamed first and removed our temporary file as stale
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            for stale in Path(folder).glob(f".{name}.*.tmp"):  # left by an attempt whose process was killed
                stale.unlink(missing_ok=True)
        elif _protocols(self.fs) & _OBJECT_STORES:
            self.fs.pipe_file(location, data)  # one put: the object appears whole or not at all
        else:  # another file system (sftp, hdfs, ...): write beside, then rename
            self.fs.makedirs(folder, exist_ok=True)
            tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
            try:
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, location)
            except BaseException:
                if self.fs.exists(tmp):
                    self.fs.rm(tmp)
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
        self.check_compute([(config, s) for s in missing])
        if len(missing) < len(seeds):
            log.info("%s: %d of %d runs already stored", type(config).__name__, len(seeds) - len(missing), len(seeds))
        for seed in tqdm(missing, disable=not progress or not missing, desc=desc or type(config).__name__):
            self.save(config, seed, measured(fn, config, seed))
        return [self.load(config, s) for s in seeds]


def _protocols(fs: Any) -> set[str]:
    protocol = fs.protocol
    return {protocol} if isinstance(protocol, str) else set(protocol)


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
