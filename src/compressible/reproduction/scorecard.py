"""The reproduction scorecard: every quantitative claim of the paper against this build.

Each chapter saves its typed summary (:mod:`compressible.summaries`). Each claim of
:data:`~compressible.reproduction.claims.CLAIMS` reads the summary it is measured in into what we measured
and one evidence record; the verdict and its reason come from
:func:`~compressible.reproduction.verdicts.verdict` alone, so every rule lives (and is tested) in one place.
"""

from __future__ import annotations

import pandas as pd
from pydantic import ValidationError

from ..scales import check_scale
from ..summaries import Summary, load_summary
from .claims import CLAIMS, Claim, Unmeasured
from .verdicts import Verdict, verdict, weakest

__all__ = ["judge", "scorecard", "chapter_verdicts"]


def judge(claim: Claim, summary: Summary) -> tuple[str, str, str]:
    """What we measured for ``claim`` in ``summary``, its verdict and the reason."""
    try:
        ours, evidence = claim.read(summary)
    except Unmeasured as missing:
        return "—", Verdict.NOT_RUN, str(missing)
    if isinstance(evidence, dict):
        judged = weakest({part: verdict(e) for part, e in evidence.items()})
    else:
        judged = verdict(evidence)
    return ours, judged.verdict, judged.reason


def chapter_verdicts(summary: Summary, claims: tuple[Claim, ...] = CLAIMS) -> dict[str, tuple[str, str]]:
    """``{claim id: (verdict, reason)}`` of every claim judged from ``summary``'s type (for a chapter's finding)."""
    return {c.key: judge(c, summary)[1:] for c in claims if isinstance(summary, c.summary)}


def scorecard(scale: str, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """One row per claim: where, claim, paper, ours, the scale it was measured at, verdict, why.

    A claim whose chapter has no summary, a summary from another scale or one stored in an older
    format, is ``not run at this scale``; so is one whose summary lacks a quantity it needs (the
    reason says which).
    """
    check_scale(scale)
    rows = []
    for claim in claims:
        chapter = claim.summary.chapter
        summary, stale = None, None
        try:
            summary = load_summary(claim.summary)
        except ValidationError as error:
            stale = (f"the stored {chapter} summary does not fit {claim.summary.__name__} "
                     f"({error.error_count()} error(s)): rerun the chapter")
        if summary is None or summary.scale != scale:
            ours, verdict_, why, measured = "—", Verdict.NOT_RUN, stale or f"the {chapter} chapter did not run at this scale", "—"
        else:
            measured = summary.scale
            ours, verdict_, why = judge(claim, summary)
        rows.append({"where": claim.where, "claim": claim.claim, "paper": claim.paper, "ours": ours,
                     "scale": measured, "verdict": verdict_, "why": why, "chapter": chapter})
    return pd.DataFrame(rows)
