"""The Few-shot GLUE checks in words, from their summaries: what the diagnosis of stalled compressed runs found
(:func:`diagnosis_words`) and what the head's input says about the Fig. 8 runs (:func:`probe_words`). Every sentence
is chosen from a decision the summaries made (a :class:`~compressible.experiments.fewshot_glue.diagnosis.DiagnosisOutcome`,
a :class:`~compressible.experiments.fewshot_glue.diagnosis.Cause`, a collapse found or not), never from a number
compared here."""

from __future__ import annotations

from ..glue_stats import DEEP, LORA
from .diagnosis import Cause, DiagnosisOutcome, DiagnosisSummary
from .probes import COLLAPSED
from .summary import ProbeFindings

__all__ = ["CAUSE", "diagnosis_words", "probe_words"]

CAUSE = {
    Cause.FIRST_BATCH: "the subspace the first batch gives the outer factors",
    Cause.OUTER_TOO_FAST: "outer factors that move too fast (γ too large)",
    Cause.OUTER_TOO_SLOW: "outer factors that move too slowly to leave their first subspace",
    Cause.INNER_RATE: "an inner rate too large for batches that differ from step to step",
    Cause.PLATEAU: "a plateau that outlasts Fig. 6's steps (a slow run rather than a stuck one)",
}
"""What each :class:`~compressible.experiments.fewshot_glue.diagnosis.Cause` is, in words."""


def diagnosis_words(d: DiagnosisSummary) -> str:
    """The diagnosis as one Markdown paragraph: how many seeds each run trained on, then, by its outcome, the change
    that made the stalled seeds train, or that none did (with the collapse of the head's input and the rank-one
    updates, where the runs stored them), or that nothing stalled."""
    k, stalled, c, one = len(d.seeds), ", ".join(map(str, d.stalled)), d.collapse, d.rank_one
    head = (f"At n = {d.n} (seed{'s' if k > 1 else ''} {', '.join(map(str, d.seeds))}), LoRA trained on "
            f"{d.trained(LORA)} of {k} and compressed Deep LoRA at the chosen rates on {d.trained(DEEP)}; "
            + "; ".join(f"**{label}**: {d.trained(label)} of {k} trained" for label in d.variants) + ". ")
    collapse = "" if c is None else (
        f"{'Every stalled run' if len(c.ratios) > 1 else 'The stalled run'} *collapsed*: by step {c.step} the spread of "
        f"the head's input over the first batch fell below {COLLAPSED:g} of its start, and it ended at "
        f"{' / '.join(f'{v:.3f}' for v in c.ratios)} of it"
        + (f" (LoRA's, same seed{'s' if len(c.lora_ratios) > 1 else ''}: {' / '.join(f'{v:.3f}' for v in c.lora_ratios)})"
           if c.lora_ratios else "")
        + ". Every example then reaches the frozen head as nearly the same input, so the run can only predict one "
          "value, the label mean"
        + (f"; {'none' if c.max_saturated == 0 else f'at most {c.max_saturated:.0%}'} of the pooler's tanh units ended "
           "saturated, so the pooler did not block the gradient" if c.pooler_clear else "") + ".")
    if c is not None and not c.kept:
        collapse += " No change kept these seeds from collapsing."
    elif c is not None:
        cause = ("outer factors that move too fast" if c.causes == [Cause.OUTER_TOO_FAST] and len(c.kept) > 1
                 else " or ".join(CAUSE[x] for x in c.causes))
        collapse += (
            " " + "; ".join(f"*{label}* (head input at the end {' / '.join(f'{v:.3f}' for v in c.kept_ratios[label])} of "
                            "its start; final loss " + " / ".join(f"{v:.2f}" for v in c.kept_losses[label]) + ")"
                            for label in c.kept)
            + f" kept seed{'s' if len(c.ratios) > 1 else ''} {stalled} from collapsing and ended with a lower training "
            f"loss than Fig. 6's run ({' / '.join(f'{v:.2f}' for v in c.baseline_losses)})"
            + (f"; {'each of these changes lowers' if len(c.kept) > 1 else 'it lowers'} the outer factors' Adam rate "
               f"(γ times the inner rate) from {c.outer_rate_from:g} to {c.outer_rate_to:g}" if c.outer_rate_to is not None
               else "")
            + f", though within {c.kept_steps} steps "
            + {1: "it did not pass", 2: "neither passed"}.get(len(c.kept), "none of them passed")
            + f" the training check. So the collapse comes from {cause}, not from a broken method.")
    if one is None:
        rank_one = "These runs stored no update spectra, so what the stalled adapters learned is not shown here."
    elif not one.label_mean:
        rank_one = (f"{one.deep_share:.0%} of the stalled runs' updates are rank one"
                    + ("" if one.lora_share is None else f" (LoRA's: {one.lora_share:.0%})")
                    + ": the spectra do not single out one cause here.")
    else:
        rank_one = (f"What the stalled runs did learn: {one.deep_share:.0%} of their weight updates are rank one (second "
                    "singular value under 1 % of the first)"
                    + ("" if one.lora_share is None else f", against {one.lora_share:.0%} of LoRA's")
                    + f", and their training loss went from {one.first_loss:.2f} over the first 10 steps to "
                    f"{one.last_loss:.2f} over the last 10, against {one.baseline:.2f} for predicting the label mean: in "
                    "their steps they fitted the label mean, one direction per weight, and little else.")
    tail = " ".join(x for x in (collapse, rank_one) if x)
    if d.outcome == DiagnosisOutcome.NO_STALL:
        conclusion = ("The compressed runs trained at these seeds, so this build has no stall to diagnose; the variants "
                      "show only how much the changes matter when training works.")
    elif d.outcome == DiagnosisOutcome.NO_VARIANT:
        conclusion = (f"No change was run at seed(s) {stalled} (the plan's only variant would have repeated the Fig. 6 "
                      f"runs at the chosen rates). {rank_one}")
    elif d.outcome == DiagnosisOutcome.NOT_FIXED:
        conclusion = (f"No change made the stalled seed(s) {stalled} pass the training check within its steps ("
                      + ("the change tests one cause: " if len(d.variants) == 1 else "the changes, each testing one cause: ")
                      + "; ".join(f"*{label}*: {CAUSE[d.causes[label]]}" for label in d.variants) + "). " + tail)
    else:
        ruled_out = [CAUSE[d.causes[label]] for label in d.variants if label not in d.fixes]
        conclusion = (f"Every stalled seed ({stalled}) trained with " + " and with ".join(f"*{f}*" for f in d.fixes)
                      + ": the stall comes from " + " or ".join(CAUSE[d.causes[f]] for f in d.fixes)
                      + ", not from a broken method" + (f"; {' and '.join(ruled_out)} did not make it train" if ruled_out else "")
                      + f" (on {k} seed{'s' if k > 1 else ''}: a diagnosis, not an estimate). " + tail)
    return head + conclusion


def probe_words(found: ProbeFindings) -> str:
    """What the probes of the head's input say about the Fig. 8 runs, in one paragraph: how many runs that trained
    ended collapsed, which runs that did not train ended collapsed or with the pooler saturated, and whether the
    collapse marks the stall (a decision of the summary)."""
    lines = [f"Of the {found.trained} runs that trained, {found.trained_collapsed} ended collapsed."]
    if not found.untrained:
        lines.append("Every run trained, so there is no stall to explain here.")
    else:
        collapsed, saturated = (", ".join(f"{x.method} r = {x.rank} seed {x.seed}" for x in runs) or "none"
                                for runs in (found.collapsed, found.saturated))
        lines.append(f"Of the {len(found.untrained)} runs that did not train, {len(found.collapsed)} ended collapsed "
                     f"({collapsed}); {len(found.saturated)} ended with over half of the pooler's units "
                     f"saturated ({saturated}), where tanh passes under 2 % of its gradient, so little is "
                     "left to undo the collapse.")
    if found.collapse_marks_stall:
        lines.append("So each run that did not train ended mapping every example to nearly one point in front of the "
                     "frozen random pooler and head, with a training loss near that of predicting the label mean, while "
                     "no run that trained did: these runs stalled in training, and their validation Pearson says nothing "
                     "about how the method generalises.")
    return " ".join(lines)
