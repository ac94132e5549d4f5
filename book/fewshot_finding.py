# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   compressible:
#     figures: 0
#     needs: [fewshot_glue, fewshot_evidence]
# ---
# %% [markdown]
# # Few-shot GLUE: what was found
#
# *Paper: Sec. 4, the claims of Table 1 and Figs. 6 and 8.*
#
# The end of the Few-shot GLUE chapter. It reads the same runs as {doc}`fewshot_glue` and
# {doc}`fewshot_glue_tasks` (it computes nothing the result store holds) and the summary of
# {doc}`fewshot_evidence`, and says what they show: first for the runs one build of the book affords, then
# with every method's rates tuned at every $n$, the paper's 500 steps and PEFT's LoRA family beside them.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import torch
from IPython.display import Markdown, display

from compressible.experiments import fewshot_glue as fg
from compressible.ledger import coverage_table
from compressible.reproduction.scorecard import chapter_verdicts
from compressible.scales import scale_label

device = "cuda" if torch.cuda.is_available() else "cpu"
p = fg.plan(scale)
results = fg.run(p, device=device, scale=scale)
summary = fg.summarise(results)
f6, f8 = summary.fig6, summary.fig8

# %% [markdown]
# ## What was found
#
# The scorecard's verdicts (`compressible.reproduction.scorecard.chapter_verdicts`) beside the numbers. Why compressed
# runs stall where they do is diagnosed on {doc}`fewshot_checks`.

# %%
verdicts = chapter_verdicts(summary)

gains = {(full, n): "n/a" if s.gain is None else (
             f"{s.gain:+.3f} ({s.deep_wins}/{s.seeds} seeds ahead"
             + ("" if s.low is None else f", 95 % CI [{s.low:+.3f}, {s.high:+.3f}]")
             + ("" if s.wilcoxon_p is None else f", Wilcoxon p = {s.wilcoxon_p:.2g}") + ")")
         for full, by_n in ((False, f6.by_n), (True, f6.full_by_n)) for n, s in by_n.items()}
not_trained = {n: "; ".join(f"{u.method}: {len(u.seeds)} of {s.seeds} runs did not train"
                            for u in f6.untrained_runs(keys=[n])) for n, s in f6.by_n.items()}
lines = [f"**Finding ({scale_label(scale)}, `{summary.backbone}`, {p.fig6.steps} steps).** Compressed Deep LoRA minus "
         "LoRA on STS-B, in Pearson: "
         + "; ".join(f"n = {n}: {gains[False, n]}" + (f" [{not_trained[n]}]" if not_trained[n] else "") for n in f6.by_n)
         + (f". Fig. 6 verdict: **{verdicts['fig6'][0]}**." if "fig6" in verdicts else ".")]
for n, s in f6.full_by_n.items():
    lines.append(f"The full-width uncompressed depth-3 adapter (what the authors' logged runs used) at n = {n}: Pearson "
                 f"{s.deep:.3f} against LoRA's {s.lora:.3f} on the same seeds, a difference of {gains[True, n]}; the compressed "
                 f"adapter's mean there is {f6.by_n[n].deep:.3f}."
                 + (" **The compressed method generalises worse than the full-width one here**, a result about the method "
                    "as compressed, not about depth." if f6.full_beats_compressed.get(n) else ""))
if "fig6full" in verdicts and f6.full_by_n:
    lines[-1] += f" Verdict on the full-width adapter against LoRA: **{verdicts['fig6full'][0]}**."
if "fig8" in verdicts and f8 is not None:
    lines.append(f"Fig. 8 (r = {', '.join(map(str, f8.ranks))}, {f8.seeds} seed(s)): **{verdicts['fig8'][0]}** "
                 f"({verdicts['fig8'][1]}).")
    if f8.scaled_by_rank:
        if f8.scaled_rescued:
            seeds = sorted({f8.scaled_by_rank[r].seeds for r in f8.scaled_rescued})
            lines.append(f"With its inner rate scaled as {f8.rate_rank}/r, compressed Deep LoRA trained at r = "
                         f"{', '.join(map(str, f8.scaled_rescued))} (every run: {' or '.join(map(str, seeds))} seed(s) per "
                         f"rank), where at one rate it did not: there the rate chosen at r = {f8.rate_rank} was too large "
                         "for the rank" + (" (one seed: a diagnosis, not an estimate)." if seeds == [1] else "."))
        if f8.scaled_untrained:
            lines.append(f"At r = {', '.join(map(str, f8.scaled_untrained))} runs at the scaled rate did not train either ("
                         + "; ".join(f"{u.method} at r = {u.key} ({len(u.seeds)} of {u.of} seeds)"
                                     for u in f8.untrained_runs(methods=[fg.SCALED], scaled=True))
                         + "): the rate does not explain those.")
        if not f8.scaled_rescued and not f8.scaled_untrained:
            lines.append(f"With its inner rate scaled as {f8.rate_rank}/r, compressed Deep LoRA trained wherever it did at "
                         "one rate.")
check = summary.training
if check.untrained:
    lines.append(f"{len(check.untrained)} of {len(check.runs)} runs did not train (the training check of the page before); "
                 "their comparisons carry no evidence.")
tuned = summary.tuning
lines.append("What would change the answer: the paper's backbone, steps and seeds (`paper` scale, on a GPU), "
             + (f"and rates tuned at other n (ours were chosen at n = {', '.join(map(str, tuned.n))} only, on "
                f"{tuned.seeds} seeds); " if tuned is not None else "")
             + "an interval that spans 0 says the difference is smaller than these seeds can resolve, not that it is 0.")
display(Markdown("\n\n".join(lines)))

# %% [markdown]
# ## Where these runs come from
#
# Every run this chapter shows, per figure and method: how many its plan has at this scale, how many
# are stored (read from the repository's committed ledger, or computed by this build), which are
# missing, and where and when they were computed. The ledger's records are re-executed in part by
# every build of the book (see the README).

# %%
display(coverage_table("fewshot_glue", scale))

# %% [markdown]
# ## The finding, with every method tuned
#
# The runs above are what one build of the book affords. The next chapter, {doc}`fewshot_evidence`, asks the
# same question with what a build cannot afford, kept in the ledger: every method's rates tuned on held-out
# examples at every $n$, the paper's 500 steps, seeds that chose nothing, and PEFT's LoRA family beside them.
# Its answer is this chapter's finding; each line is chosen from its summary's decisions
# (`EvidenceSummary.across_n`, `comparisons`, `compressed_training`) and says how many seeds it stands on.

# %%
from compressible.experiments.fewshot_evidence.plan import LABELS
from compressible.experiments.fewshot_evidence.summary import Answer, EvidenceSummary, Training
from compressible.summaries import load_summary

evidence = load_summary(EvidenceSummary)
ACROSS = {
    Answer.BETTER: "beats the authors' LoRA at every $n$: at each, the 95 % interval of the paired gain lies above 0",
    Answer.WORSE: "is behind the authors' LoRA at every $n$: at each, the 95 % interval lies below 0",
    Answer.UNDECIDED: "does not beat the authors' LoRA at every $n$: at some $n$ the 95 % interval contains 0 or lies below it",
    Answer.TOO_FEW: "cannot be judged yet: at some $n$ fewer than two seeds have both methods trained",
    Answer.UNTRAINED: "cannot be compared at some $n$: at every seed stored there, one of the two did not train",
    Answer.NOT_RUN: "cannot be judged yet: not every $n$ has paired runs in the ledger",
}
TRAINS = {Training.TRAINED: "trains at every seed", Training.PARTLY: "trains at some seeds only",
          Training.UNTRAINED: "does not train", Training.NOT_RUN: "has no runs yet"}
if evidence is None or evidence.scale != scale:
    finding = ["The evidence chapter did not run at this scale in this build, so this page has no tuned finding."]
else:
    paired = {(c.method, c.baseline, c.n): c for c in evidence.comparisons}
    interval = {key: "no paired runs" if c.scores is None or c.scores.gain is None else (
        f"{c.scores.gain:+.3f}" + ("" if c.scores.low is None else f" [{c.scores.low:+.3f}, {c.scores.high:+.3f}]")
        + f", {c.scores.seeds} seed{'s' if c.scores.seeds != 1 else ''}") for key, c in paired.items()}
    finding = [f"**Finding (`{evidence.backbone}`, {evidence.steps} steps, every method tuned on {evidence.holdout} "
               f"held-out pairs at every $n$; Pearson, paired gain with its 95 % interval).**"]
    AT = {Answer.WORSE: "behind LoRA (interval below 0)", Answer.BETTER: "ahead of LoRA (interval above 0)",
          Answer.UNDECIDED: "undecided (interval contains 0)"}
    for method in ("compressed", "full"):
        per_n = {answer: [n for n in evidence.n if paired[method, "lora", n].answer == answer] for answer in AT}
        finding.append(f"{LABELS[method]} {ACROSS[evidence.across_n[method]]} ("
                       + "; ".join(f"$n = {n}$: {interval[method, 'lora', n]}" for n in evidence.n) + ")."
                       + ("" if not any(per_n.values()) else " Per $n$: " + "; ".join(
                           f"{AT[answer]} at $n$ = {', '.join(map(str, ns))}" for answer, ns in per_n.items() if ns) + "."))
    for n in sorted({c.n for c in evidence.comparisons if c.baseline != "lora"}):
        variants = list(dict.fromkeys(c.baseline for c in evidence.comparisons if c.baseline != "lora" and c.n == n))
        finding.append(f"Against PEFT's LoRA family at $n = {n}$ (Deep LoRA − variant): " + "; ".join(
            f"{LABELS[v]}: compressed {interval['compressed', v, n]} ({paired['compressed', v, n].answer}), full width "
            f"{interval['full', v, n]} ({paired['full', v, n].answer})" for v in variants) + ".")
    finding.append("Compressed Deep LoRA at the rates tuned at each $n$: " + "; ".join(
        f"$n = {n}$: {TRAINS[t]}" for n, t in evidence.compressed_training.items()) + ".")
    edge = {m: ns for m, ns in evidence.at_edge.items() if ns}
    if edge:
        finding.append("Chosen on its grid's edge, so a better rate may lie outside the grid: " + "; ".join(
            f"{LABELS[m]} at $n$ = {', '.join(map(str, ns))}" for m, ns in edge.items())
            + ". A comparison at such an $n$ is against that method as tuned on its grid.")
    finding.append(f"The ledger holds {evidence.runs_held} of the {evidence.runs_planned} runs this stands on; "
                   "the evidence chapter lists the others and what they cost.")
display(Markdown("\n\n".join(finding)))
