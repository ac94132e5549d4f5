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
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from .hub import results_dir
from .scales import check_scale

__all__ = ["Frozen", "Summary", "save_summary", "load_summary", "summary_path"]


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
