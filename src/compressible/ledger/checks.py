"""What :func:`~compressible.ledger.verify.verify` compares, and how it reports: a stored record against its
re-execution.

- :func:`compare_curves`: two loss curves, step by step (the largest relative difference);
- :func:`compare_rows`: the rows of a matrix part, matched by their keys, on every number but times;
- :func:`differing_fields` and :func:`compare_metrics`: a whole run, on every stored number but times (the
  same platform) or on its final metrics (another platform).

Fields that measure time or name the machine are never compared. Each comparison is one :class:`Check`; a
:class:`Report` holds them all, and :class:`VerificationError` carries the table of those that failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

__all__ = ["Check", "Report", "VerificationError", "compare_curves", "compare_rows", "compare_metrics",
           "differing_fields"]


_VOLATILE = {"timings", "wall_time", "seconds", "_environment", "_provenance", "_digest", "threads", "device",
             "setup_time", "time_original", "time_compressed", "train_time_original", "train_time_compressed",
             "time_to_target", "total_time", "speedup", "time_compressed_total"}
"""Fields of a record that measure time or name the machine: never compared."""


def _is_time(name: str) -> bool:
    """Whether a field measures the machine (a time, a speed-up, a measured FLOP rate) rather than the run."""
    return name in _VOLATILE or "time" in name or name.startswith(("speedup", "matmul_flops"))


class VerificationError(AssertionError):
    """The ledger's records and their re-execution differ; ``table`` says where."""

    def __init__(self, table: pd.DataFrame):
        self.table = table
        super().__init__("ledger verification failed:\n" + table.to_string(index=False))


@dataclass
class Check:
    """One comparison of :func:`~compressible.ledger.verify.verify`."""

    kind: str
    """``digest``, ``first K steps`` or ``whole run``."""
    group: str
    """``chapter / method`` (or the record for a digest)."""
    run: str
    """Config class, key prefix and seed."""
    platform: str
    """``same platform`` or how the platforms differ (a key of :data:`~compressible.ledger.verify.TOLERANCES`)."""
    difference: float
    allowed: float
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    """What :func:`~compressible.ledger.verify.verify` checked: one :class:`Check` per comparison, and the runs it drew."""

    checks: list[Check] = field(default_factory=list)
    records: int = 0
    seed: int = 0

    def table(self) -> pd.DataFrame:
        rows = [{"check": c.kind, "group": c.group, "run": c.run, "platform": c.platform,
                 "difference": c.difference, "allowed": c.allowed, "ok": c.ok, "compared": c.detail,
                 "s": round(c.seconds, 1)} for c in self.checks]
        return pd.DataFrame(rows)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def compare_curves(stored: Sequence[float], replayed: Sequence[float]) -> float:
    """Largest relative difference between two loss curves over the replayed steps (``inf`` when a
    value is missing or not finite on one side only)."""
    if len(replayed) > len(stored):
        return math.inf
    worst = 0.0
    for a, b in zip(stored, replayed):
        if a == b:
            continue
        if not (math.isfinite(a) and math.isfinite(b)):
            return math.inf
        worst = max(worst, abs(a - b) / max(abs(a), abs(b), 1e-3))
    return worst


def compare_rows(stored: list[dict], replayed: list[dict], keys: Sequence[str]) -> tuple[float, str]:
    """Largest relative difference over the non-time numeric columns of the replayed rows, matched to the
    stored rows by ``keys`` (``inf`` when a replayed row has no stored match or another value kind)."""
    index = {tuple(str(r.get(k)) for k in keys): r for r in stored}
    worst, where = 0.0, ""
    for row in replayed:
        match = index.get(tuple(str(row.get(k)) for k in keys))
        if match is None:
            return math.inf, f"row {dict((k, row.get(k)) for k in keys)} not stored"
        for name, value in row.items():
            if _is_time(name) or name in keys:
                continue
            other = match.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                if value != other and not (_nan(value) and _nan(other)):
                    return math.inf, f"{name}: {other!r} stored, {value!r} now"
                continue
            if not isinstance(other, (int, float)) or isinstance(other, bool):
                return math.inf, f"{name}: {other!r} stored, {value!r} now"
            if value == other or (_nan(value) and _nan(other)):
                continue
            diff = math.inf if not (math.isfinite(value) and math.isfinite(other)) else (
                abs(value - other) / max(abs(value), abs(other), 1e-12))
            if diff > worst:
                worst, where = diff, name
    return worst, where


def differing_fields(record: dict, result: dict) -> list[str]:
    """The fields of a whole run whose values differ between its ``record`` and its re-execution ``result``
    (sorted; fields starting with ``_`` and time measurements, also nested ones, are not compared)."""
    return sorted(k for k in set(record) | set(result)
                  if not k.startswith("_") and not _is_time(k) and _strip(record.get(k)) != _strip(result.get(k)))


def compare_metrics(record: dict, result: dict) -> float:
    """Largest absolute difference between the final metrics of a whole run's ``record`` and of its
    re-execution ``result`` (0 for a metric that is NaN or missing on both sides, ``inf`` on one side only)."""
    stored, now = _final_metrics(record), _final_metrics(result)
    return max((_metric_difference(stored[m], now.get(m)) for m in stored), default=0.0)


def _final_metrics(record: dict) -> dict[str, float]:
    if isinstance(record.get("final"), dict):
        return {k: v for k, v in record["final"].items() if isinstance(v, (int, float)) and k != "step"}
    if isinstance(record.get("metrics"), dict):
        return {k: v for k, v in record["metrics"].items() if isinstance(v, (int, float))}
    return {}


def _metric_difference(a: float | None, b: float | None) -> float:
    """``|a - b|``; 0 when both are NaN or missing (a constant predictor has no correlation), ``inf`` when one is."""
    a_nan = a is None or (isinstance(a, float) and math.isnan(a))
    b_nan = b is None or (isinstance(b, float) and math.isnan(b))
    if a_nan or b_nan:
        return 0.0 if a_nan and b_nan else math.inf
    return abs(a - b)


def _strip(value: Any) -> Any:
    """A result value without its time measurements (nested dicts), for comparing whole runs."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not _is_time(k)}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)
