"""Headline measurements of each chapter, for the reproduction scorecard.

Each chapter writes one flat JSON object to ``<results>/summaries/<chapter>.json`` with the
values it measured (and the scale it ran at); the scorecard chapter reads them all. A summary is
rewritten every time its chapter runs, so it always describes the latest build.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .hub import results_dir
from .scales import check_scale

__all__ = ["save_summary", "load_summary", "summary_path"]


def summary_path(chapter: str) -> Path:
    if not chapter or "/" in chapter:
        raise ValueError(f"chapter must be a plain name like 'invariant_subspaces', got {chapter!r}")
    return results_dir() / "summaries" / f"{chapter}.json"


def save_summary(chapter: str, scale: str, values: dict[str, Any]) -> Path:
    """Write ``values`` (numbers, strings, lists) as the summary of ``chapter`` at ``scale``."""
    check_scale(scale)
    bad = {k: v for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise ValueError(f"summary values must be finite, got {bad}")
    path = summary_path(chapter)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"chapter": chapter, "scale": scale, **values}, indent=1, default=float))
    tmp.replace(path)
    return path


def load_summary(chapter: str) -> dict[str, Any] | None:
    """The latest summary of ``chapter``, or ``None`` when the chapter has not run."""
    path = summary_path(chapter)
    return json.loads(path.read_text()) if path.is_file() else None
