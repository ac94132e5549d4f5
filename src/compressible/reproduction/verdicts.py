"""Verdicts: the one rule that turns a claim's evidence into a verdict and says why.

The scorecard (:mod:`compressible.reproduction.scorecard`) reduces what a chapter measured for a
claim to one *evidence record* and asks :func:`verdict` for the judgement. The records:

- :class:`Exact`: a mathematical statement checked to numerical precision (holds at any scale);
- :class:`Criteria`: a claim checked against thresholds -- as stated, or only in its direction;
- :class:`Ratio`: a factor the paper claims (a speed-up ``> 1`` means faster), possibly only a
  lower or upper bound of the true ratio (a run that hit its iteration cap);
- :class:`Difference`: a mean paired difference over seeds with its 95 % confidence interval, in
  the paper's direction, and whether both methods sit at chance;
- :class:`Untrained`: runs that the comparison needs did not train;
- :class:`Missing`: runs that a part of the claim needs are not computed yet (inconclusive).

Verdicts (:data:`VERDICTS`, strongest first):

- ``reproduced``: the claim holds as stated, at the paper's scale (a mathematical statement: at
  any scale);
- ``trend reproduced``: the direction holds, at a reduced scale or by a smaller margin;
- ``inconclusive``: the evidence cannot decide (a bound on the wrong side of 1, an interval that
  spans 0, a single seed);
- ``at chance``: both methods stayed at chance, so their difference says nothing about the claim;
- ``did not train``: runs the comparison needs never left the constant predictor's training loss,
  so there is nothing to compare;
- ``not reproduced``: measured without sampling uncertainty (a deterministic check), and the claim
  does not hold;
- ``contradicted``: the 95 % interval of the paired difference lies on the other side of 0;
- ``not run at this scale``: nothing was measured at the scorecard's scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Literal, NamedTuple, Union

from ..finetune.metrics import t_interval, wilcoxon_pvalue


__all__ = [
    "Verdict",
    "VERDICTS",
    "Judgement",
    "Exact",
    "Criteria",
    "Ratio",
    "Difference",
    "Untrained",
    "Missing",
    "Evidence",
    "untrained_runs",
    "verdict",
    "weakest",
]

class Verdict(StrEnum):
    """Every verdict, strongest first (the module docstring defines each); a member equals its words."""

    REPRODUCED = "reproduced"
    TREND = "trend reproduced"
    INCONCLUSIVE = "inconclusive"
    AT_CHANCE = "at chance"
    UNTRAINED = "did not train"
    NOT_REPRODUCED = "not reproduced"
    CONTRADICTED = "contradicted"
    NOT_RUN = "not run at this scale"


VERDICTS = tuple(Verdict)
"""Every verdict, strongest first."""


def untrained_runs(untrained: Mapping[str, Mapping[int, Sequence[int]]], seeds: Mapping[int, int], name: str,
                   keys: Sequence[int] | None = None, methods: Sequence[str] | None = None) -> str:
    """What an :class:`Untrained` record names: ``"<method> at <name> = <key> (k of <seeds> seeds); ..."`` for
    the runs of ``untrained`` (method -> setting -> seeds that did not train) out of ``seeds[key]`` seeds; only
    ``keys`` and ``methods`` when given (default: all, methods sorted). Empty when every run trained."""
    methods = sorted(untrained) if methods is None else methods
    return "; ".join(f"{m} at {name} = {k} ({len(untrained[m][k])} of {seeds[k]} seeds)" for m in methods
                     for k in sorted(untrained.get(m, {})) if keys is None or k in keys)


class Judgement(NamedTuple):
    """A verdict (one of :data:`VERDICTS`) and the reason, in words a reader can check."""

    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class Exact:
    """A mathematical statement checked to numerical precision; ``what`` names the check."""

    holds: bool
    what: str


@dataclass(frozen=True)
class Criteria:
    """A claim checked against thresholds.

    ``holds``: the claim holds as stated (its margin included); ``direction``: at least its
    direction holds; ``full_scale``: measured at the paper's scale, so ``holds`` can reproduce it.
    """

    holds: bool
    direction: bool
    full_scale: bool
    what: str


@dataclass(frozen=True)
class Ratio:
    """A ratio that the paper claims is at least ``claimed`` (``value > 1`` means "faster").

    ``bound``: ``"exact"`` when ``value`` is the measured ratio, ``"lower"`` when the true ratio
    is at least ``value`` (the slower run hit its iteration cap before the target), ``"upper"``
    when it is at most ``value``. ``full_scale``: measured at the paper's scale.
    """

    value: float
    claimed: float
    bound: Literal["exact", "lower", "upper"] = "exact"
    full_scale: bool = False

    def __post_init__(self):
        if self.bound not in ("exact", "lower", "upper"):
            raise ValueError(f"Ratio.bound must be one of 'exact', 'lower', 'upper', got {self.bound!r}")
        for name in ("value", "claimed"):
            x = getattr(self, name)
            if not (isinstance(x, (int, float)) and math.isfinite(x) and x > 0):
                raise ValueError(f"Ratio.{name} must be a finite positive number, got {x!r}")


@dataclass(frozen=True)
class Difference:
    """Mean paired difference (method the paper favours minus the other) over ``seeds`` seeds.

    ``low``/``high``: its 95 % confidence interval (``None`` when it cannot be computed, e.g. one
    seed). ``direction``: ``+1`` when the paper claims the difference is positive, ``-1`` when
    negative. ``at_chance``: both methods stayed within the chance band. ``full_scale``: measured
    at the paper's scale.
    """

    mean: float
    low: float | None
    high: float | None
    seeds: int
    direction: Literal[1, -1] = 1
    at_chance: bool = False
    full_scale: bool = False
    p_value: float | None = None
    """Two-sided Wilcoxon signed-rank p-value of the differences (reported beside the interval; the
    verdict is the interval's)."""

    def __post_init__(self):
        if self.direction not in (1, -1):
            raise ValueError(f"Difference.direction must be 1 or -1, got {self.direction!r}")
        if (self.low is None) != (self.high is None):
            raise ValueError(f"Difference needs both ends of the interval or neither, got [{self.low}, {self.high}]")
        values = [self.mean] + ([self.low, self.high] if self.low is not None else [])
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in values):
            raise ValueError(f"Difference needs finite numbers, got mean {self.mean}, interval [{self.low}, {self.high}]")
        if self.low is not None and not self.low <= self.mean <= self.high:
            raise ValueError(f"Difference interval [{self.low}, {self.high}] does not contain its mean {self.mean}")
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"Difference.seeds must be a whole number >= 1, got {self.seeds!r}")

    @classmethod
    def from_differences(cls, differences: Sequence[float], **kwargs) -> "Difference":
        """The record of per-seed paired ``differences`` (their mean and :func:`~compressible.finetune.metrics.t_interval`);
        ``kwargs`` are ``direction``, ``at_chance`` and ``full_scale``."""
        mean, low, high = t_interval(differences)
        p = wilcoxon_pvalue(differences)
        return cls(mean, low, high, len(differences), p_value=None if math.isnan(p) else p, **kwargs)


@dataclass(frozen=True)
class Untrained:
    """Runs a comparison needs did not train; ``what`` names them (e.g. "Deep LoRA at r = 64, 2 of 2 seeds")."""

    what: str

    def __post_init__(self):
        if not self.what:
            raise ValueError("Untrained needs the runs that did not train in what")


@dataclass(frozen=True)
class Missing:
    """Runs a part of a claim needs are not computed yet; ``what`` names them (e.g. "n = 256"). A claim that must
    hold for every part cannot be decided while a part is missing."""

    what: str

    def __post_init__(self):
        if not self.what:
            raise ValueError("Missing needs the runs that are missing in what")


Evidence = Union[Exact, Criteria, Ratio, Difference, Untrained, Missing]


def _scaled(full_scale: bool, what: str) -> Judgement:
    if full_scale:
        return Judgement(Verdict.REPRODUCED, what)
    return Judgement(Verdict.TREND, f"{what}, at a reduced scale")


def _ratio(e: Ratio) -> Judgement:
    shown = {"exact": f"{e.value:.2g}×", "lower": f"≥ {e.value:.2g}×", "upper": f"≤ {e.value:.2g}×"}[e.bound]
    claimed = "the paper's 'faster'" if e.claimed == 1 else f"the paper's {e.claimed:.2g}×"
    true_can_exceed = e.bound in ("exact", "lower")  # the value is a valid lower end of the true ratio
    if true_can_exceed and e.value > 1:
        if e.value >= e.claimed:
            return _scaled(e.full_scale, f"{shown} reaches {claimed}")
        return Judgement(Verdict.TREND, f"{shown}: faster, by less than {claimed}")
    if e.bound == "lower":
        return Judgement(Verdict.INCONCLUSIVE, f"{shown} is only a lower bound, and one ≤ 1 cannot show 'faster'")
    if e.bound == "upper" and e.value > 1:
        return Judgement(Verdict.INCONCLUSIVE, f"{shown} is only an upper bound: the true ratio may be ≤ 1")
    return Judgement(Verdict.NOT_REPRODUCED, f"{shown}: not faster")


def _difference(e: Difference) -> Judgement:
    if e.at_chance:
        return Judgement(Verdict.AT_CHANCE, "both methods stayed at chance: their difference is noise")
    if e.low is None:
        return Judgement(Verdict.INCONCLUSIVE, f"mean difference {e.mean:+.3g} from {e.seeds} seed(s), no interval")
    lo, hi = sorted((e.direction * e.low, e.direction * e.high))
    interval = f"95 % interval [{e.low:+.3g}, {e.high:+.3g}] over {e.seeds} seeds" + (
        f" (Wilcoxon p = {e.p_value:.2g})" if e.p_value is not None else "")
    if lo > 0:
        return _scaled(e.full_scale, f"{interval} on the paper's side of 0")
    if hi < 0:
        return Judgement(Verdict.CONTRADICTED, f"{interval} on the other side of 0")
    return Judgement(Verdict.INCONCLUSIVE, f"{interval} spans 0")


def verdict(evidence: Evidence) -> Judgement:
    """The verdict that ``evidence`` supports, with its reason.

    Raises:
        TypeError: for anything that is not one of the evidence records.
    """
    if isinstance(evidence, Exact):
        if evidence.holds:
            return Judgement(Verdict.REPRODUCED, f"{evidence.what}: holds (a mathematical statement, any scale)")
        return Judgement(Verdict.NOT_REPRODUCED, f"{evidence.what}: fails")
    if isinstance(evidence, Criteria):
        if evidence.holds:
            return _scaled(evidence.full_scale, f"{evidence.what}: holds")
        if evidence.direction:
            return Judgement(Verdict.TREND, f"{evidence.what}: only the direction holds")
        return Judgement(Verdict.NOT_REPRODUCED, f"{evidence.what}: fails")
    if isinstance(evidence, Ratio):
        return _ratio(evidence)
    if isinstance(evidence, Difference):
        return _difference(evidence)
    if isinstance(evidence, Untrained):
        return Judgement(Verdict.UNTRAINED, f"{evidence.what}: training loss stayed near the constant predictor's, so there "
                                    "is nothing to compare")
    if isinstance(evidence, Missing):
        return Judgement(Verdict.INCONCLUSIVE, f"{evidence.what}: not computed yet")
    raise TypeError(
        f"verdict() needs an Exact, Criteria, Ratio, Difference, Untrained or Missing record, got {type(evidence).__name__}"
    )


_STRENGTH = (Verdict.REPRODUCED, Verdict.TREND, Verdict.INCONCLUSIVE, Verdict.AT_CHANCE, Verdict.UNTRAINED, Verdict.NOT_REPRODUCED, Verdict.CONTRADICTED)


def weakest(judgements: dict[str, Judgement]) -> Judgement:
    """The judgement of a claim that must hold for every part (e.g. "at every n"): its weakest part.

    ``judgements`` maps each part's label (``"n = 16"``) to its judgement; the reason lists every
    part's. Order, strongest first: reproduced, trend reproduced, inconclusive, at
    chance, did not train, not reproduced, contradicted.

    Raises:
        ValueError: for no parts, or a part whose verdict is not judged evidence.
    """
    if not judgements:
        raise ValueError("weakest() of no judgements")
    for label, judgement in judgements.items():
        if judgement.verdict not in _STRENGTH:
            raise ValueError(f"part {label!r} has verdict {str(judgement.verdict)!r}; valid: {[str(v) for v in _STRENGTH]}")
    worst = max((j.verdict for j in judgements.values()), key=_STRENGTH.index)
    return Judgement(worst, "; ".join(f"{label}: {j.reason}" for label, j in judgements.items()))
