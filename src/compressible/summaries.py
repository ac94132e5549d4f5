"""Headline measurements of each chapter: typed data with a contract.

Each experiment module (``compressible.experiments``) defines one subclass of :class:`Summary`
for its chapter -- frozen, validated, every field documented -- and its ``summarise()`` returns
an instance. The chapter shows it and stores it with :func:`save_summary` under
``<results>/summaries/<chapter>.json``; the scorecard reads it back with :func:`load_summary`
and uses its attributes. No module parses another's text.

A summary is rewritten every time its chapter runs, so it always describes the latest build.
"""

from __future__ import annotations

import math
from pathlib import Path
import json
import sys
from typing import Any, ClassVar, Iterator, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from .hub import results_dir
from .scales import check_scale

__all__ = ["Frozen", "Summary", "finite", "save_summary", "load_summary", "summary_path", "summary_differences"]


def _finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"summary value {where} must be finite, got {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _finite(v, f"{where}[{i}]")


class Frozen(BaseModel):
    """The one base of every typed record in the package: immutable, and unknown fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Summary(Frozen):
    """Base class of every chapter's summary.

    Subclasses set ``chapter`` (the chapter's file name in ``book/``) and declare their fields
    with types; instances are immutable. Floats must be finite: a quantity that was not measured
    is ``None``, never ``nan``.
    """

    chapter: ClassVar[str] = ""
    scale: str
    """The scale the chapter ran at: ``smoke``, ``ci`` or ``paper``."""

    @field_validator("scale")
    @classmethod
    def _check_scale(cls, value: str) -> str:
        return check_scale(value)

    @model_validator(mode="after")
    def _check_finite(self):
        for name, value in self:
            _finite(value, name)
        return self


def finite(x) -> float | None:
    """``float(x)``, or ``None`` when it is NaN or infinite: how a summary holds a quantity that may be
    undefined (a summary holds no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


S = TypeVar("S", bound=Summary)


def summary_path(chapter: str) -> Path:
    if not chapter or "/" in chapter:
        raise ValueError(f"chapter must be a plain name like 'invariant_subspaces', got {chapter!r}")
    return results_dir() / "summaries" / f"{chapter}.json"


def _chapter(cls: type[Summary]) -> str:
    if not cls.chapter:
        raise TypeError(f"{cls.__name__} must set the class attribute 'chapter'")
    return cls.chapter


def save_summary(summary: Summary) -> Path:
    """Write ``summary`` atomically to ``<results>/summaries/<chapter>.json``."""
    path = summary_path(_chapter(type(summary)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(summary.model_dump_json(indent=1))
    tmp.replace(path)
    return path


def load_summary(cls: type[S]) -> S | None:
    """The latest summary of ``cls.chapter``, or ``None`` when the chapter has not run."""
    path = summary_path(_chapter(cls))
    return cls.model_validate_json(path.read_text()) if path.is_file() else None


def _leaves(value: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{where}[{i}]")
    else:
        yield where, value


def summary_differences(before: Path | str, after: Path | str, ignore: tuple[str, ...] = ()) -> list[str]:
    """Every leaf of the summaries in folder ``before`` that is missing or differs in folder ``after``
    (``<chapter>.json`` files, compared value for value, floats to the last digit); leaves whose path
    contains one of ``ignore`` (e.g. ``"wall_time"``) are skipped. Fields only ``after`` has are new
    data, not differences. Empty when every number is unchanged."""
    out = []
    for path in sorted(Path(before).glob("*.json")):
        other = Path(after) / path.name
        if not other.is_file():
            out.append(f"{path.name}: missing")
            continue
        new = dict(_leaves(json.loads(other.read_text())))
        for where, value in _leaves(json.loads(path.read_text())):
            if any(part in where for part in ignore):
                continue
            if where not in new:
                out.append(f"{path.name}: {where} missing (was {value!r})")
            elif new[where] != value:
                out.append(f"{path.name}: {where} {value!r} -> {new[where]!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m compressible.summaries compare BEFORE AFTER [--ignore KEY ...]``: exit 1 when a number changed."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m compressible.summaries")
    sub = parser.add_subparsers(dest="command", required=True)
    cmp_ = sub.add_parser("compare", help="compare two folders of summaries leaf by leaf")
    cmp_.add_argument("before")
    cmp_.add_argument("after")
    cmp_.add_argument("--ignore", nargs="*", default=[], help="skip leaves whose path contains one of these")
    args = parser.parse_args(argv)
    diffs = summary_differences(args.before, args.after, tuple(args.ignore))
    for line in diffs:
        print(line)
    print(f"{len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
