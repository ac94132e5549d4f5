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
# (`EvidenceSummary.across_n`, `comparisons`, `compressed_training`, worded by
# `compressible.experiments.fewshot_evidence.answers.finding_lines`) and says how many seeds it stands on.

# %%
from compressible.experiments.fewshot_evidence.answers import finding_lines
from compressible.experiments.fewshot_evidence.summary import EvidenceSummary
from compressible.summaries import load_summary

evidence = load_summary(EvidenceSummary)
if evidence is None or evidence.scale != scale:
    finding = ["The evidence chapter did not run at this scale in this build, so this page has no tuned finding."]
else:
    finding = finding_lines(evidence)
display(Markdown("\n\n".join(finding)))
