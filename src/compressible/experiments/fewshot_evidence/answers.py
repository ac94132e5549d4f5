"""The chapter's answer in words, from its summary: one line per decision, each with the seeds it stands on.

:func:`answer_lines` is the evidence chapter's list (training of compressed Deep LoRA at each ``n``, every
comparison, Fig. 8's change with the rank, Table 1's average); :func:`finding_lines` is the short finding that
ends the Few-shot GLUE chapter. Every sentence is chosen from a decision of
:class:`~compressible.experiments.fewshot_evidence.summary.EvidenceSummary` (an ``Answer`` or a ``Training``),
never from a number compared here.
"""

from __future__ import annotations

from ..paired import PairedScores
from .plan import LABELS
from .summary import Answer, Comparison, EvidenceSummary, Training

__all__ = ["answer_lines", "finding_lines", "interval"]

TRAINING = {
    Training.TRAINED: "trains at every seed",
    Training.PARTLY: "trains at some seeds and not at others",
    Training.UNTRAINED: "does not train at any seed",
    Training.NOT_RUN: "has no Fig. 6 runs in the ledger yet",
}
ANSWER = {
    Answer.BETTER: "is ahead: the 95 % interval of the paired gain lies above 0",
    Answer.WORSE: "is behind: the 95 % interval of the paired gain lies below 0",
    Answer.UNDECIDED: "is not separated from it: the 95 % interval of the paired gain contains 0",
    Answer.TOO_FEW: "has fewer than two seeds where both trained, so no interval",
    Answer.UNTRAINED: "cannot be compared with it: at every seed stored, one of the two did not train",
    Answer.NOT_RUN: "has no paired runs yet",
}
CHANGE = {
    Answer.BETTER: "grows with the rank: the 95 % interval of the change lies above 0, so LoRA falls behind as r grows",
    Answer.WORSE: "shrinks as the rank grows: the 95 % interval of the change lies below 0",
    Answer.UNDECIDED: "does not change measurably with the rank: the 95 % interval of the change contains 0",
    Answer.TOO_FEW: "has fewer than two seeds with every run trained, so no interval",
    Answer.UNTRAINED: "cannot be measured: at every seed stored, some run did not train",
    Answer.NOT_RUN: "has no runs yet",
}
ACROSS = {
    Answer.BETTER: "beats the authors' LoRA at every $n$: at each, the 95 % interval of the paired gain lies above 0",
    Answer.WORSE: "is behind the authors' LoRA at every $n$: at each, the 95 % interval lies below 0",
    Answer.UNDECIDED: "does not beat the authors' LoRA at every $n$: at some $n$ the 95 % interval contains 0 or lies below it",
    Answer.TOO_FEW: "cannot be judged yet: at some $n$ fewer than two seeds have both methods trained",
    Answer.UNTRAINED: "cannot be compared at some $n$: at every seed stored there, one of the two did not train",
    Answer.NOT_RUN: "cannot be judged yet: not every $n$ has paired runs in the ledger",
}
AT = {Answer.WORSE: "behind LoRA (interval below 0)", Answer.BETTER: "ahead of LoRA (interval above 0)",
      Answer.UNDECIDED: "undecided (interval contains 0)"}
TRAINS = {Training.TRAINED: "trains at every seed", Training.PARTLY: "trains at some seeds only",
          Training.UNTRAINED: "does not train", Training.NOT_RUN: "has no runs yet"}


def _seeds(k: int) -> str:
    return f"{k} seed{'s' if k != 1 else ''}"


def _numbers(s: PairedScores | None, what: str, digits: int, paper: str | None) -> str:
    """`` (gain +0.012, 95 % interval [-0.010, +0.034], 5 seeds; authors' logs +0.016)``, or ``""`` without a gain."""
    if s is None or s.gain is None:
        return ""
    unit = " points" if digits == 2 else ""
    return (f" ({what} {s.gain:+.{digits}f}{unit}"
            + ("" if s.low is None else f", 95 % interval [{s.low:+.{digits}f}, {s.high:+.{digits}f}]")
            + f", {_seeds(s.seeds)}" + ("" if paper is None else f"; {paper}") + ")")


def interval(c: Comparison) -> str:
    """``+0.012 [-0.010, +0.034], 5 seeds`` (``no paired runs`` without a gain)."""
    s = c.scores
    if s is None or s.gain is None:
        return "no paired runs"
    return f"{s.gain:+.3f}" + ("" if s.low is None else f" [{s.low:+.3f}, {s.high:+.3f}]") + f", {_seeds(s.seeds)}"


def answer_lines(summary: EvidenceSummary) -> list[str]:
    """The evidence chapter's answer, a Markdown bullet per decision: compressed Deep LoRA's training at each
    ``n``; one line for all comparisons without paired runs; every other comparison (with the authors' logged
    gain where it has one); Fig. 8's change of each Deep LoRA variant's gain with the rank; Table 1's average
    over the tasks its screen kept, and the tasks it left out."""
    lines = [f"- At $n = {n}$, compressed Deep LoRA at its tuned rates {TRAINING[t]}."
             for n, t in summary.compressed_training.items()]
    waiting = [c for c in summary.comparisons if c.answer == Answer.NOT_RUN]
    if waiting:  # one line for every comparison without paired runs, instead of one each
        lines.append(f"- {len(waiting)} of the {len(summary.comparisons)} comparisons have no paired runs in the ledger "
                     "yet: " + "; ".join(f"{LABELS[c.method]} − {LABELS[c.baseline]} at $n = {c.n}$" for c in waiting) + ".")
    for c in summary.comparisons:
        if c.answer == Answer.NOT_RUN:
            continue
        paper = None if c.paper_gain is None else f"authors' logs {c.paper_gain:+.3f}"
        against = "the authors' LoRA" if c.baseline == "lora" else LABELS[c.baseline]
        lines.append(f"- At $n = {c.n}$, against {against}, {LABELS[c.method]} {ANSWER[c.answer]}"
                     f"{_numbers(c.scores, 'gain', 3, paper)}.")
    f8 = summary.fig8
    for c in (f8.change if f8 is not None else []):
        paper = None if c.paper_gain is None else f"authors' logs {c.paper_gain:+.3f}"
        lines.append(f"- Fig. 8: {LABELS[c.method]}'s gain over LoRA from r = {min(f8.ranks)} to r = {max(f8.ranks)} "
                     f"{CHANGE[c.answer]}{_numbers(c.scores, 'change', 3, paper)}.")
    t1 = summary.table1
    if t1 is not None:
        where = f"the {len(t1.kept)} tasks that left chance ({', '.join(t1.kept)})" if t1.kept else "no task yet"
        for c in t1.average:
            paper = None if c.paper_gain is None else f"authors' logs on the same tasks {c.paper_gain:+.2f}"
            lines.append(f"- Table 1, averaged over {where}: {LABELS[c.method]} {ANSWER[c.answer]}"
                         f"{_numbers(c.scores, 'gain', 2, paper)}.")
        if t1.left_out:
            lines.append(f"- Table 1 leaves out {', '.join(t1.left_out)}: no method's screening run left chance there.")
    return lines


def finding_lines(summary: EvidenceSummary) -> list[str]:
    """The finding that ends the Few-shot GLUE chapter, a Markdown paragraph each: the protocol; each Deep LoRA
    variant against the authors' LoRA across ``n`` and per ``n``; both against PEFT's family where it ran; whether
    compressed Deep LoRA trains at each ``n``; the rates chosen on their grid's edge; how much of the plan the
    ledger holds."""
    paired = {(c.method, c.baseline, c.n): c for c in summary.comparisons}
    out = [f"**Finding (`{summary.backbone}`, {summary.steps} steps, every method tuned on {summary.holdout} "
           f"held-out pairs at every $n$; Pearson, paired gain with its 95 % interval).**"]
    for method in ("compressed", "full"):
        per_n = {answer: [n for n in summary.n if paired[method, "lora", n].answer == answer] for answer in AT}
        out.append(f"{LABELS[method]} {ACROSS[summary.across_n[method]]} ("
                   + "; ".join(f"$n = {n}$: {interval(paired[method, 'lora', n])}" for n in summary.n) + ")."
                   + ("" if not any(per_n.values()) else " Per $n$: " + "; ".join(
                       f"{AT[answer]} at $n$ = {', '.join(map(str, ns))}" for answer, ns in per_n.items() if ns) + "."))
    for n in sorted({c.n for c in summary.comparisons if c.baseline != "lora"}):
        variants = list(dict.fromkeys(c.baseline for c in summary.comparisons if c.baseline != "lora" and c.n == n))
        out.append(f"Against PEFT's LoRA family at $n = {n}$ (Deep LoRA − variant): " + "; ".join(
            f"{LABELS[v]}: compressed {interval(paired['compressed', v, n])} ({paired['compressed', v, n].answer}), "
            f"full width {interval(paired['full', v, n])} ({paired['full', v, n].answer})" for v in variants) + ".")
    out.append("Compressed Deep LoRA at the rates tuned at each $n$: " + "; ".join(
        f"$n = {n}$: {TRAINS[t]}" for n, t in summary.compressed_training.items()) + ".")
    edge = {m: ns for m, ns in summary.at_edge.items() if ns}
    if edge:
        out.append("Chosen on its grid's edge, so a better rate may lie outside the grid: " + "; ".join(
            f"{LABELS[m]} at $n$ = {', '.join(map(str, ns))}" for m, ns in edge.items())
            + ". A comparison at such an $n$ is against that method as tuned on its grid.")
    out.append(f"The ledger holds {summary.runs_held} of the {summary.runs_planned} runs this stands on; "
               "the evidence chapter lists the others and what they cost.")
    return out
