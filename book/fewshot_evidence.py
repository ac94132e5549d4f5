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
#     figures: 2
# ---

# %% [markdown]
# # Settling the few-shot claim
#
# *Paper: Sec. 4, Fig. 6 (Fig. 8 and Table 1: {doc}`fewshot_evidence_tasks`); the evidence behind the scorecard's
# few-shot rows, grown in the ledger.*
#
# The paper's central few-shot claim is that Deep LoRA beats LoRA on STS-B with $n = 16$, 64 and 256
# training examples, most at $n = 16$. The previous chapters run that comparison at what one build of
# the book can afford, and their verdicts say so: rates tuned at $n = 16$ only, then used at every $n$;
# 200 steps instead of 500; 5 seeds. This chapter runs the comparison so that a verdict can stand on it,
# and keeps every run in the repository's ledger, where every build of the book re-executes a sample of
# them:
#
# - **Three methods**: the authors' LoRA; *compressed* Deep LoRA, the method as the paper describes
#   it (width $r$, inner rate and $\gamma$ for the outer factors); and *full-width* Deep LoRA, the
#   uncompressed adapter the authors' logged runs used.
# - **Rates tuned at every $n$, for every method**, on STS-B training pairs held out of every
#   few-shot sample, with grids of the same size that span at least a decade in every rate.
# - **Fig. 6 at the paper's 500 steps, on seeds that chose nothing**: the seeds that scored the grid
#   are not among the seeds that compare the methods, so no score both picks a rate and judges it.
# - **PEFT's LoRA family beside them** (default LoRA, rsLoRA, DoRA, PiSSA, LoRA-GA), built with PEFT
#   itself and tuned the same way, at the $n$ the plan gives it.
# - **Fig. 8 and Table 1 at the tuned rates** ({doc}`fewshot_evidence_tasks`, the second page): ranks 8 to 64
#   at the $n$ of Fig. 8, one rate per method as in the paper; the GLUE tasks at $n = 1024$, where a first
#   seed screens out the tasks that every method leaves at chance on this backbone.
#
# Everything else is the Few-shot GLUE protocol (the authors' code and logs): the classification
# head and the pooler drawn at random and frozen, the authors' "all dense" targets, batch 16, Adam,
# constant rates, $n$ examples drawn with replacement, the same sample, order and head for every
# method at a seed.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from compressible.experiments import fewshot_evidence as fe
from compressible.experiments.fewshot_evidence import figures, tables
from compressible.experiments.fewshot_evidence.plan import LABELS
from compressible.experiments.fewshot_evidence.summary import Answer, Training
from compressible.scales import scale_label
from compressible.summaries import save_summary

device = "cuda" if torch.cuda.is_available() else "cpu"
p = fe.plan(scale)
runs = fe.run(p, device=device, scale=scale)
summary = fe.summarise(runs)
save_summary(summary)

glue("backbone", Markdown(f"`{summary.backbone}`"), display=False)
glue("steps", summary.steps, display=False)
glue("holdout", summary.holdout, display=False)
glue("tuning_seeds", summary.tuning_seeds, display=False)
glue("seeds", summary.seeds_planned, display=False)
glue("grid_points", len(p.lora), display=False)
glue("runs_planned", summary.runs_planned, display=False)
glue("runs_held", summary.runs_held, display=False)
glue("full_targets", Markdown(
    "The full-width adapter adapts the same weights as the others." if p.full_targets is None else
    f"At this scale the full-width adapter adapts only the weights `{p.full_targets}` matches (the attention weights "
    "and the pooler), for cost: on a 1536 × 384 MLP weight of MiniLM a full-width depth-3 adapter holds three "
    "1536 × 1536 factors (7.1 million parameters). Its comparison with LoRA is therefore on fewer adapted weights "
    "than LoRA's."), display=False)

# %% [markdown]
# ## The plan
#
# At this scale ({glue:md}`backbone`, {glue:}`steps` steps) every method has {glue:}`grid_points`
# grid points at every $n$, each run at {glue:}`tuning_seeds` tuning seeds and scored on
# {glue:}`holdout` held-out training pairs; Fig. 6 then runs each method at its chosen rate on
# {glue:}`seeds` other seeds. Of the plan's {glue:}`runs_planned` runs, the ledger holds
# {glue:}`runs_held`; the rest are listed at the end of the page, never dropped silently.
# {glue:md}`full_targets`

# %% [markdown]
# ## Rates, tuned at every $n$
#
# The held-out Pearson of every grid point (mean ± std over the tuning seeds); a ring marks the point
# each method uses at that $n$. A method whose grid at some $n$ is not complete yet has no chosen rate
# there, and its Fig. 6 runs at that $n$ wait for it.

# %%
figures.plot_sensitivity(summary)
plt.show()
display(tables.rates_table(summary).style.hide(axis="index").set_caption(
    f"The chosen rates ({scale_label(scale)}, {summary.backbone}, {summary.steps} steps)"))
edge = {m: ns for m, ns in summary.at_edge.items() if ns}
if summary.rates:
    display(Markdown("Every chosen rate lies inside its grid." if not edge else
                     "On its grid's edge, where a better rate may lie outside the grid: " + "; ".join(
                         f"{LABELS[m]} at $n$ = {', '.join(map(str, ns))}" for m, ns in edge.items()) + "."))

# %% [markdown]
# ## Fig. 6 at the chosen rates
#
# Left, each method's validation Pearson; right, each Deep LoRA variant's paired gain over LoRA,
# seed by seed, with the mean and its 95 % Student-t interval over the seeds where both methods
# trained, beside the gain in the authors' logs (full-width Deep LoRA on `bert-base-cased`, 20
# seeds). The table adds the power those seeds had to detect the authors' gain, given the paired
# spread measured here (`compressible.experiments.glue_stats.paired_power`), and how many seeds
# would give 80 % (`paired_seeds`): with a spread larger than the authors', the same gain needs
# more seeds to be seen.

# %%
figures.plot_fig6(summary)
plt.show()
display(tables.comparison_table(summary).style.hide(axis="index").set_caption(
    f"Deep LoRA − LoRA, paired over seeds ({scale_label(scale)}, {summary.backbone})"))

# %% [markdown]
# ## Against PEFT's LoRA family
#
# The LoRA a reader would use is PEFT's, not the authors' unscaled one: PEFT's default LoRA (Kaiming
# initialisation of $A$, $B = 0$, the update scaled by $\alpha / r$), rank-stabilised LoRA ($\alpha / \sqrt r$),
# DoRA (a trained magnitude per output row), PiSSA (the adapter starts at the weight's top singular
# triplets) and LoRA-GA (it starts from the SVD of the first batch's gradient, the same data compressed
# Deep LoRA starts from). Each is built by PEFT itself (`compressible.finetune.peft_family`), on the same
# weights, at rank 8, and tuned on its own grid of the same size at the same held-out examples. The
# previous table already sets each of them against the authors' LoRA; this one sets both Deep LoRA
# variants against each of them, paired over the same seeds.

# %%
family = tables.family_table(summary)
display(family.style.hide(axis="index").set_caption(f"Deep LoRA − PEFT's variants, paired over seeds ({scale_label(scale)})")
        if len(family) else Markdown("This plan runs no PEFT variant."))

# %% [markdown]
# ## The answer
#
# Each line below is chosen from the summary's decisions (`EvidenceSummary.comparisons[].answer` and
# `compressed_training`), and says how many seeds it stands on. Fig. 8's and Table 1's answers are on
# {doc}`fewshot_evidence_tasks`.

# %%
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
lines = []
for n, training in summary.compressed_training.items():
    lines.append(f"- At $n = {n}$, compressed Deep LoRA at its tuned rates {TRAINING[training]}.")
waiting = [c for c in summary.comparisons if c.answer == Answer.NOT_RUN]
if waiting:  # one line for every comparison without paired runs, instead of one each
    lines.append(f"- {len(waiting)} of the {len(summary.comparisons)} comparisons have no paired runs in the ledger yet: "
                 + "; ".join(f"{LABELS[c.method]} − {LABELS[c.baseline]} at $n = {c.n}$" for c in waiting) + ".")
for c in summary.comparisons:
    if c.answer == Answer.NOT_RUN:
        continue
    s = c.scores
    numbers = "" if s is None or s.gain is None else (
        f" (gain {s.gain:+.3f}" + ("" if s.low is None else f", 95 % interval [{s.low:+.3f}, {s.high:+.3f}]")
        + f", {s.seeds} seed{'s' if s.seeds != 1 else ''}"
        + ("" if c.paper_gain is None else f"; authors' logs {c.paper_gain:+.3f}") + ")")
    against = "the authors' LoRA" if c.baseline == "lora" else LABELS[c.baseline]
    lines.append(f"- At $n = {c.n}$, against {against}, {LABELS[c.method]} {ANSWER[c.answer]}{numbers}.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## What is missing, and what it costs
#
# The runs of the plan that the ledger does not hold yet, by part, method and $n$. They are computed
# by `python -m compressible.sweeps run fewshot_evidence --scale ci --into ledger` (resumable, at low
# priority; see the ledger's README), and then verified by every build like the others.

# %%
display(tables.missing_table(summary).style.hide(axis="index").set_caption("Planned runs not in the ledger yet"))
display(tables.cost_table(summary).style.hide(axis="index").set_caption(
    "What the plan costs: runs per core-hour measured on the held runs (processor time, one torch thread each), "
    f"computed on {', '.join(summary.platforms) or 'no platform yet'}"))

# %% [markdown]
# ## Where these runs come from
#
# Every run of the plan, per part and method: how many the plan has, how many are stored (read from
# the repository's committed ledger, or computed by this build), which are missing, and where and when
# they were computed.

# %%
from compressible.ledger import coverage_table

display(coverage_table("fewshot_evidence", scale))
