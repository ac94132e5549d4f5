"""The paper's reference numbers, with their provenance.

``data/paper_numbers.json`` holds the figures of *Compressible Dynamics in Deep Overparameterized
Low-Rank Learning & Adaptation* recomputed from the authors' own committed run logs
(cjyaras/deep-lora-transformers at commit 618c410791b5a47e47680bcf671589bf35a31439,
``experiments/**/results.json``) and the protocols of the matrix experiments. Its ``_about`` field
says exactly how. GLUE values are x100 means over seeds.

Chapters show these numbers labelled "paper (authors' logs)" next to the ones they compute.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["paper_numbers", "paper_value", "PROVENANCE"]

PROVENANCE = "paper (authors' logs)"


@lru_cache(maxsize=1)
def paper_numbers() -> dict[str, Any]:
    """The whole reference file as a dict (cached; treat it as read-only)."""
    text = resources.files("compressible").joinpath("data/paper_numbers.json").read_text()
    return json.loads(text)


def paper_value(*path: str) -> Any:
    """One entry, e.g. ``paper_value("table1_glue_1024", "deep", "average")`` -> ``69.37``.

    Raises:
        KeyError: naming the first key of ``path`` that does not exist and the keys that do.
    """
    node: Any = paper_numbers()
    for depth, key in enumerate(path):
        if not isinstance(node, dict) or key not in node:
            where = "/".join(path[:depth]) or "<top>"
            valid = sorted(node) if isinstance(node, dict) else []
            raise KeyError(f"no {key!r} under {where} in the paper's numbers; valid keys: {valid}")
        node = node[key]
    return node
