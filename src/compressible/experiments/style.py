"""What every figure of the book shares: how the paper's numbers are labelled and each method's colour."""

from __future__ import annotations

from typing import Sequence

from ..reference import PROVENANCE
from .glue_runs import METHOD_LABELS
from .glue_stats import DEEP, LORA

__all__ = ["PAPER_LABEL", "COLORS", "color"]

PAPER_LABEL = f"{PROVENANCE}, bert-base-cased"
"""Legend and column label of the paper's numbers in the Deep LoRA chapters."""

COLORS = {
    LORA: "tab:blue",
    DEEP: "tab:red",
    METHOD_LABELS["full"]: "tab:green",
    METHOD_LABELS["random"]: "tab:gray",
}
"""The colour of each method in every figure (variants a chapter adds get :func:`color`'s spare colours)."""

_SPARE = ("tab:purple", "tab:orange", "tab:brown", "tab:olive", "tab:cyan", "tab:pink")


def color(label: str, labels: Sequence[str] = ()) -> str:
    """``label``'s colour in a plot of ``labels``: its own (:data:`COLORS`), else the next spare colour in
    the order the other labels appear."""
    if label in COLORS:
        return COLORS[label]
    others = [x for x in dict.fromkeys([*labels, label]) if x not in COLORS]
    return _SPARE[others.index(label) % len(_SPARE)]
