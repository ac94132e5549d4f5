"""What a stored run's probes and update spectra show: whether the head's input collapsed, and whether the
updates are rank one. Shared by Fig. 8's probe section and the diagnosis."""

from __future__ import annotations

from ...summaries import Frozen

__all__ = ["COLLAPSED", "is_collapsed", "spread_course", "RANK_ONE_RATIO", "rank_one_modules", "SATURATED_SHARE", "RunProbe"]

COLLAPSED = 0.1
"""A run's head input has collapsed when its spread over examples ends below this fraction of its start."""

SATURATED_SHARE = 0.5
"""A run's pooler counts as saturated when more than this share of its tanh units ended saturated."""

RANK_ONE_RATIO = 1e-2
"""An update counts as rank one when its second singular value is below this fraction of its first."""


def is_collapsed(start_spread: float, spread: float) -> bool:
    """Whether the head input's ``spread`` is below :data:`COLLAPSED` of its ``start_spread`` (every example
    then reaches the frozen head as nearly the same input)."""
    return spread < COLLAPSED * start_spread


def spread_course(result: dict) -> dict | None:
    """What a stored run's probes of the head's input (``result["probes"]``, see
    :func:`~compressible.finetune.classify.evaluation.head_input_probe`) show, or ``None`` when it stored none:
    ``start_spread``, ``min_spread`` and ``final_spread`` (the spread over the first batch at the first,
    smallest and last probe), ``collapse_step`` (the first probed step whose spread is below
    :data:`COLLAPSED` of the start; ``None`` if none) and ``final_saturated`` (the share of saturated tanh
    pooler units at the last probe; ``None`` without a tanh pooler): fields of
    :class:`~compressible.experiments.fewshot_glue.diagnosis.DiagnosisRun`."""
    probes = result.get("probes")
    if not probes:
        return None
    start = float(probes[0]["spread"])
    below = [q["step"] for q in probes if is_collapsed(start, q["spread"])]
    return {"start_spread": start, "min_spread": float(min(q["spread"] for q in probes)),
            "final_spread": float(probes[-1]["spread"]), "collapse_step": below[0] if below else None,
            "final_saturated": probes[-1]["saturated"]}


def rank_one_modules(result: dict) -> tuple[int, int] | None:
    """``(rank-one updates, adapted modules)`` of a stored run from its update spectra (``None`` when the
    run stored none): an update is rank one when ``sigma_2 < RANK_ONE_RATIO * sigma_1`` (a zero update is not)."""
    spectra = result.get("spectra")
    if not spectra:
        return None
    count = 0
    for entry in spectra.values():
        s = list(entry["singular_values"]) + [0.0]
        if s[0] > 0 and s[1] < RANK_ONE_RATIO * s[0]:
            count += 1
    return count, len(spectra)


class RunProbe(Frozen):
    """What the head saw at the start and end of one run (:func:`~compressible.finetune.classify.evaluation.head_input_probe`)."""

    seed: int
    trained: bool
    start_spread: float
    final_spread: float
    final_saturated: float | None
    """Share of saturated tanh pooler units at the end (``None``: no tanh pooler)."""

    @property
    def collapsed(self) -> bool:
        """Whether the spread ended below :data:`COLLAPSED` of its start (the head sees one input)."""
        return is_collapsed(self.start_spread, self.final_spread)

    @property
    def saturated(self) -> bool:
        """Whether over :data:`SATURATED_SHARE` of the pooler's tanh units ended saturated."""
        return self.final_saturated is not None and self.final_saturated > SATURATED_SHARE
