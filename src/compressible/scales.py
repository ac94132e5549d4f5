"""The three scales every chapter and experiment runs at.

- ``smoke``: seconds; the test suite executes every chapter at this scale.
- ``ci``: the default of ``make book``; real models and data, fewer seeds and steps, so that the
  whole book builds in about 40 minutes on 2 CPU cores. Results are labelled "ci scale".
- ``paper``: the paper's protocol exactly (bert-base-cased, all seeds and steps); needs a GPU.
"""

from __future__ import annotations

SCALES = ("smoke", "ci", "paper")

__all__ = ["SCALES", "check_scale", "scale_label"]


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is one of ``SCALES``, else raise a ``ValueError`` naming it."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return scale


def scale_label(scale: str) -> str:
    """A short label to put on figures and tables, e.g. ``"ci scale"``."""
    return f"{check_scale(scale)} scale"
