"""The one shape of every chapter module (or package) in ``compressible.experiments``.

A chapter exposes:

- ``CHAPTER``: the chapter's file name in ``book/``;
- ``PLANS``: ``{scale: plan}``, frozen dataclasses with every knob of the chapter at that scale;
- ``plan(scale)``: ``PLANS[scale]``, with a clear error for an unknown scale;
- ``run(plan, store=None, device="cpu", *, execution=None) -> runs``: computes what the result store
  (and the ledger it reads through) lacks, then loads every run the plan needs; ``plan`` is a plan
  object or a scale name. It reads as one linear script. The book's chapters and
  ``python -m compressible.sweeps`` call this same function;
- ``summarise(runs) -> Summary``: pure, reads nothing but its argument; every conclusion the book
  draws is a typed field of the summary (:class:`compressible.summaries.Summary`);
- tables and figures that take a summary (and, for figures that show every run, the runs).

Words live in the book's chapters: numbers reach their Markdown through MyST-NB's ``glue``, and the
few sentences that depend on a decision (a summary field) are chosen there.

:class:`Execution` says how runs are computed (processes, threads, an executor such as Ray) without
changing what is computed; :func:`resolve` turns ``run``'s ``plan`` argument into ``(scale, plan)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

from ..scales import check_scale

__all__ = ["Execution", "resolve"]

P = TypeVar("P")


@dataclass(frozen=True)
class Execution:
    """How a chapter's missing runs are computed; the results do not depend on it."""

    progress: bool = True
    """Progress bars in a terminal."""
    threads: int | None = None
    """Torch CPU threads per run (``None``: the plan's choice, else torch's default)."""
    workers: int | None = None
    """Local worker processes (``None``: the plan's choice)."""
    executor: str = "local"
    """``"local"`` (this process), ``"processes"`` (``workers`` local processes) or ``"ray"``
    (:func:`compressible.executors.execute`)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Further keyword arguments of :func:`compressible.executors.execute` (``address``, ``gpus_per_run``,
    ``cpus_per_run``, ``max_retries``)."""

    def __post_init__(self) -> None:
        for name in ("threads", "workers"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"Execution.{name} must be None or an int >= 1, got {value!r}")
        if self.executor not in ("local", "processes", "ray"):
            raise ValueError(f"Execution.executor must be 'local', 'processes' or 'ray', got {self.executor!r}")
        if self.options and self.executor != "ray":
            raise ValueError(f"Execution.options {sorted(self.options)} are Ray's: give executor='ray'")
        for name in ("gpus_per_run", "cpus_per_run"):
            value = self.options.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def resolve(plans: Mapping[str, P], plan: P | str, scale: str | None = None) -> tuple[str, P]:
    """``(scale, plan)`` of ``run``'s argument: a scale name, or a plan object (its scale is the key of
    ``plans`` whose plan equals it, else ``scale``, which must then be given)."""
    if isinstance(plan, str):
        name = check_scale(plan)
        if name not in plans:
            raise ValueError(f"no plan at scale {name!r}; this chapter's scales are {sorted(plans)}")
        return name, plans[name]
    if scale is not None:
        return check_scale(scale), plan
    for name, known in plans.items():
        if known == plan:
            return name, plan
    raise ValueError(f"{type(plan).__name__} is none of this chapter's PLANS ({sorted(plans)}): pass scale=... "
                     "to say which scale's label its summary carries")
