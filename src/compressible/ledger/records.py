"""The ledger's records: sealed, compact JSON files in the result store's layout, with their provenance.

A ledger is a :class:`~compressible.store.ResultStore` folder committed to the repository
(``ledger/`` at the project's root). Its records are the store's records -- ``_config``, ``_seed``,
the run's result, ``_environment`` -- plus two fields that :class:`Ledger` adds when it writes one:

``_provenance``
    where and how the run was computed, in the terms that decide its arithmetic: package commit,
    torch / transformers versions, device (``cpu`` or ``cuda``), CPU model and torch's CPU capability
    (``AVX2``, ``AVX512``, ...), GPU model, torch threads, the precision actually used (``float32``,
    ``bfloat16`` autocast, ``float64``) and the wall time of the run;
``_digest``
    the SHA-256 of the record's canonical JSON without this field, so that an edited record is caught
    by :func:`check_digest` (every build checks every record's digest).

Records are written without indentation (``sort_keys``, compact separators): one run of the ci
plan's GLUE sweep takes a few kilobytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

from ..environment import environment_info
from ..store import ResultStore, _config_dict, _json_default

__all__ = ["Ledger", "LedgerRecord", "canonical", "digest", "check_digest", "provenance", "precision_of",
           "iter_records", "same_platform", "PLATFORM_FIELDS", "import_record"]

PLATFORM_FIELDS = ("device", "cpu_capability", "gpu", "precision", "threads", "torch", "transformers")
"""The provenance fields that decide a run's arithmetic. A re-execution that matches a record on all of
them must reproduce it bit for bit (:func:`same_platform`)."""


def canonical(record: dict) -> bytes:
    """The record as canonical JSON (sorted keys, compact separators): what is written and what is hashed."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=True).encode()


def digest(record: dict) -> str:
    """SHA-256 of :func:`canonical` of ``record`` without its ``_digest``."""
    body = {k: v for k, v in record.items() if k != "_digest"}
    return hashlib.sha256(canonical(body)).hexdigest()


def check_digest(record: dict) -> bool:
    """Whether ``record`` carries the digest of its own content (``False`` for an edited or unsealed record)."""
    return record.get("_digest") == digest(record)


def precision_of(config: Any, result: dict, device: str = "cpu") -> str:
    """The precision a run actually computed in: the autocast dtype it recorded (GLUE runs), else its
    config's ``autocast`` resolved on ``device`` (when the record is written where it was computed), else
    its config's ``dtype``, else ``float32``."""
    recorded = result.get("autocast")
    if isinstance(recorded, str):
        return "float32" if recorded == "off" else recorded
    get = config.get if isinstance(config, dict) else (lambda name, default=None: getattr(config, name, default))
    autocast = get("autocast", None)
    if isinstance(autocast, str):
        from ..finetune.classify import autocast_dtype

        dtype = autocast_dtype(autocast, device)
        return "float32" if dtype is None else str(dtype).removeprefix("torch.")
    dtype = get("dtype", None)
    return dtype if isinstance(dtype, str) else "float32"


def _wall_time(result: dict) -> float | None:
    if isinstance(result.get("wall_time"), (int, float)):
        return float(result["wall_time"])
    seconds = result.get("seconds")
    if isinstance(seconds, dict) and all(isinstance(v, (int, float)) for v in seconds.values()):
        return float(sum(seconds.values()))
    return None


def provenance(config: Any, result: dict, environment: dict) -> dict:
    """The ``_provenance`` block of a record (see the module docstring)."""
    device = str(result.get("device") or environment.get("device", "cpu"))  # the run's own device, where it says
    out = {
        "commit": environment.get("git_commit"),
        "compressible": environment.get("compressible"),
        "torch": environment.get("torch"),
        "transformers": environment.get("transformers"),
        "device": "cuda" if device.startswith("cuda") else device,
        "cpu": environment.get("cpu"),
        "cpu_capability": environment.get("cpu_capability"),
        "gpu": environment.get("gpu") if device.startswith("cuda") else None,
        # torch's threads around the run (what a replay sets); a part whose config fixes its own threads for
        # its training loop applies them inside, in the replay as in the run
        "threads": result.get("threads", environment.get("threads")),
        "precision": precision_of(config, result, device),
        "wall_time": _wall_time(result),
        "time": environment.get("time"),
    }
    return out


def same_platform(a: dict, b: dict) -> bool:
    """Whether two provenance blocks agree on every field of :data:`PLATFORM_FIELDS`."""
    return all(a.get(k) == b.get(k) for k in PLATFORM_FIELDS)


class Ledger(ResultStore):
    """A :class:`~compressible.store.ResultStore` that writes sealed, compact records with provenance.

    Use it as the store of a sweep to grow the ledger (``python -m compressible.sweeps run ... --into
    ledger``): finished runs are skipped, each new run is one atomic file, so a sweep can be stopped and
    started again at any point.
    """

    def __init__(self, root: str | os.PathLike):
        super().__init__(root, ledger=None, compute_missing=True)

    def __repr__(self) -> str:
        return f"Ledger({self.url!r})"

    def __reduce__(self):
        return (type(self), (self.url,))

    def save(self, config: Any, seed: int, result: dict) -> Path | str:
        if not isinstance(result, dict):
            raise TypeError(f"a result must be a dict, got {type(result).__name__}")
        location = self._location(config, seed)
        self._save_config(config, location)
        environment = result.get("_environment") or environment_info(result.get("device"))
        record = {k: v for k, v in result.items() if k not in ("_digest", "_provenance", "_config", "_seed")}
        record.update({"_config": json.loads(canonical(_config_dict(config))), "_seed": seed, "_environment": environment})
        record["_provenance"] = result.get("_provenance") or provenance(config, result, environment)
        record = json.loads(canonical(record))  # numpy scalars, paths, tuples: as they will read back
        record["_digest"] = digest(record)
        self._write_bytes(location, canonical(record) + b"\n")
        return self._shown(location)


def import_record(ledger_root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Copy the record at ``path`` (a file of a local result store, ``<Class>/<key>/seed-<n>.json``) into the
    ledger at ``ledger_root``, sealed, with its provenance. Its precision is read from the record or, where
    the record does not say it (``autocast="auto"``), resolved on this machine: import on the machine that
    computed the run (the record's host must be this one)."""
    import platform

    path = Path(path)
    record = json.loads(path.read_text())
    environment = record.get("_environment", {})
    if "_provenance" not in record and environment.get("host") not in (None, platform.node()):
        raise ValueError(f"{path} was computed on {environment.get('host')!r}, not here ({platform.node()!r}): "
                         "import it on that machine, where its precision can be resolved")
    record.setdefault("_provenance", provenance(record.get("_config", {}), record, environment))
    record.pop("_digest", None)
    record = json.loads(canonical(record))
    record["_digest"] = digest(record)
    target = Path(ledger_root) / path.parent.parent.name / path.parent.name / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    config_file = path.parent / "config.json"
    if config_file.is_file() and not (target.parent / "config.json").is_file():
        (target.parent / "config.json").write_bytes(canonical(json.loads(config_file.read_text())) + b"\n")
    Ledger(ledger_root)._write_bytes(str(target), canonical(record) + b"\n")
    return target


class LedgerRecord:
    """One record file of a ledger: its path, class name, key and seed, and (lazily) its content."""

    def __init__(self, path: Path):
        self.path = path
        self.cls = path.parent.parent.name
        self.key = path.parent.name
        self.seed = int(path.stem.removeprefix("seed-"))
        self._data: dict | None = None

    @property
    def data(self) -> dict:
        if self._data is None:
            self._data = json.loads(self.path.read_text())
        return self._data

    @property
    def provenance(self) -> dict:
        return self.data.get("_provenance", {})

    def __repr__(self) -> str:
        return f"{self.cls} {self.key} seed {self.seed}"


def iter_records(root: str | os.PathLike) -> Iterator[LedgerRecord]:
    """Every record of the ledger at ``root`` (not failures, not configs), in a stable order."""
    root = Path(root)
    for path in sorted(root.glob("*/*/seed-*.json")):
        if not path.name.endswith(".failed.json"):
            yield LedgerRecord(path)

