"""Pages: the numbers and words a chapter pastes into its Markdown with MyST-NB's glue.

A chapter glues every number its prose shows (MyST-NB's ``glue:text`` role, with a format spec) and every
sentence it chooses (the ``glue:md`` role). These helpers do the gluing and the formatting the chapters
share; they hold no sentence of their own (the words stay in the chapters, see CONTRIBUTING.md):

- :func:`glue_number` glues one number, NaN where a summary has none, so that a format spec in the
  Markdown still applies; :func:`glue_numbers` glues a mapping of them;
- :func:`glue_words` glues Markdown text;
- :func:`number` formats a number for a sentence built in a chapter cell, ``"n/a"`` where it is
  undefined.

MyST-NB is imported when a glue helper is called, so the module imports without the ``book`` extras.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

__all__ = ["NOT_AVAILABLE", "glue_number", "glue_numbers", "glue_words", "number"]

#: What :func:`number` shows for an undefined number (None or NaN).
NOT_AVAILABLE = "n/a"


def _undefined(value) -> bool:
    return value is None or (isinstance(value, numbers.Real) and math.isnan(value))


def glue_number(key: str, value) -> None:
    """Glue ``value`` under ``key`` without displaying it; None is glued as NaN, so that the format spec
    of a ``glue:text`` role (such as ``.3f``) still applies, and shows ``nan``."""
    from myst_nb import glue

    glue(key, float("nan") if value is None else value, display=False)


def glue_numbers(values: Mapping[str, object]) -> None:
    """:func:`glue_number` for every ``key: value`` of ``values``."""
    for key, value in values.items():
        glue_number(key, value)


def glue_words(key: str, text: str) -> None:
    """Glue ``text`` under ``key`` as Markdown without displaying it, for a ``glue:md`` role."""
    from IPython.display import Markdown
    from myst_nb import glue

    glue(key, Markdown(text), display=False)


def number(value, spec: str = "") -> str:
    """``format(value, spec)``, or :data:`NOT_AVAILABLE` when ``value`` is None or NaN (e.g. the Pearson
    correlation of constant predictions)."""
    return NOT_AVAILABLE if _undefined(value) else format(value, spec)
