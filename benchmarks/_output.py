"""Where the benchmark scripts write their JSON: ``benchmarks/output/<name>.json``, with the versions and time."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

OUTPUT = Path(__file__).resolve().parent / "output"


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` plus torch's version, the platform and the UTC time to ``OUTPUT/<name>.json``; prints the path."""
    out = OUTPUT / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        **result, "torch": torch.__version__, "platform": platform.platform(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }, indent=2) + "\n")
    print(f"wrote {out}")
    return out
