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
#     needs: [fewshot_evidence]
# ---

# %% [markdown]
# # Settling the few-shot claim: the rank and eight tasks
#
# *Paper: Sec. 4, Fig. 8 and Table 1.*
#
# The second page of {doc}`fewshot_evidence`, on its plan, its ledger and the rates it tuned: Fig. 8 asks
# whether LoRA falls behind as its rank grows while Deep LoRA does not, and Table 1 sets the methods against
# each other on the GLUE tasks that leave chance on this backbone. This page computes nothing the ledger
# holds: it loads the runs {doc}`fewshot_evidence` read or made. The runs still missing, and what they cost,
# are listed there.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from compressible.experiments import fewshot_evidence as fe
from compressible.experiments.fewshot_evidence import tables
from compressible.experiments.fewshot_evidence.plan import LABELS
from compressible.experiments.fewshot_evidence.summary import Answer
from compressible.scales import scale_label

device = "cuda" if torch.cuda.is_available() else "cpu"
p = fe.plan(scale)
runs = fe.run(p, device=device, scale=scale)
summary = fe.summarise(runs)

glue("fig8_ranks", Markdown(", ".join(map(str, p.fig8.ranks))), display=False)
glue("fig8_n", p.fig8.n, display=False)
glue("fig8_steps", p.fig8.steps, display=False)
glue("fig8_seeds", len(p.fig8.seeds), display=False)
glue("table1_n", p.table1.n, display=False)
glue("table1_steps", p.table1.steps, display=False)
glue("table1_sst2", p.table1.steps_sst2, display=False)
glue("table1_seeds", len(p.table1.seeds), display=False)
glue("table1_rates_n", p.table1.rates_n, display=False)

# %% [markdown]
# ## Fig. 8: the rank, at the tuned rates
#
# Fig. 8 asks whether LoRA falls behind as its rank grows while Deep LoRA does not: ranks
# {glue:md}`fig8_ranks` at $n = $ {glue:}`fig8_n`, {glue:}`fig8_steps` steps, {glue:}`fig8_seeds` seeds, each
# method at the one rate tuned at that $n$ for every rank, as the paper used one rate. Each cell is the
# mean ± std of the validation Pearson and, in brackets, its seeds; a cell also says when some or all of its
# runs did not train (their training loss stayed near the constant predictor's), and the change with the rank
# below is paired only over the seeds where every run trained. The full-width adapter has no rank (its
# width is the weight's), so it runs once and its cell repeats; the authors' Deep LoRA column is their
# width-$r$ uncompressed adapter.

# %%
display(tables.rank_table(summary).style.hide(axis="index").set_caption(
    f"Fig. 8 at the tuned rates ({scale_label(scale)}, {summary.backbone})"))

# %% [markdown]
# ## Table 1: GLUE at $n = $ {glue:}`table1_n`, at the tuned rates
#
# Every GLUE task at $n = $ {glue:}`table1_n` with the authors' steps ({glue:}`table1_steps`; SST-2
# {glue:}`table1_sst2`), each method at the rates tuned on STS-B at $n = $ {glue:}`table1_rates_n`. The first of
# the {glue:}`table1_seeds` seeds screens: a task where no method's run ends 5 points above its chance level (a
# constant predictor) on this backbone is left out of the average and gets no more seeds, since comparing
# methods that all sit at chance compares noise. Cells: mean in points over the seeds in brackets.

# %%
display(tables.glue_table(summary).style.hide(axis="index").set_caption(
    f"Table 1 at the tuned rates ({scale_label(scale)}, {summary.backbone}); paper: bert-base-cased, 10 seeds"))

# %% [markdown]
# ## The answer
#
# Each line below is chosen from the summary's decisions (`EvidenceSummary.fig8.change[].answer` and
# `table1.average[].answer`), and says how many seeds it stands on.

# %%
CHANGE = {
    Answer.BETTER: "grows with the rank: the 95 % interval of the change lies above 0, so LoRA falls behind as r grows",
    Answer.WORSE: "shrinks as the rank grows: the 95 % interval of the change lies below 0",
    Answer.UNDECIDED: "does not change measurably with the rank: the 95 % interval of the change contains 0",
    Answer.TOO_FEW: "has fewer than two seeds with every run trained, so no interval",
    Answer.UNTRAINED: "cannot be measured: at every seed stored, some run did not train",
    Answer.NOT_RUN: "has no runs yet",
}
AVERAGE = {
    Answer.BETTER: "is ahead on the average: the 95 % interval of its per-seed gain lies above 0",
    Answer.WORSE: "is behind on the average: the 95 % interval of its per-seed gain lies below 0",
    Answer.UNDECIDED: "is not separated from LoRA on the average: the 95 % interval of its per-seed gain contains 0",
    Answer.TOO_FEW: "has fewer than two seeds with every task's runs trained, so no interval",
    Answer.UNTRAINED: "cannot be compared with LoRA: at every seed stored, some run did not train",
    Answer.NOT_RUN: "has no paired runs yet",
}
lines = []
f8 = summary.fig8
for c in f8.change:
    s = c.scores
    numbers = "" if s is None or s.gain is None else (
        f" (change {s.gain:+.3f}" + ("" if s.low is None else f", 95 % interval [{s.low:+.3f}, {s.high:+.3f}]")
        + f", {s.seeds} seed{'s' if s.seeds != 1 else ''}; authors' logs {c.paper_gain:+.3f})")
    lines.append(f"- Fig. 8: {LABELS[c.method]}'s gain over LoRA from r = {min(f8.ranks)} to r = {max(f8.ranks)} "
                 f"{CHANGE[c.answer]}{numbers}.")
t1 = summary.table1
for c in t1.average:
    s = c.scores
    numbers = "" if s is None or s.gain is None else (
        f" (gain {s.gain:+.2f} points" + ("" if s.low is None else f", 95 % interval [{s.low:+.2f}, {s.high:+.2f}]")
        + f", {s.seeds} seed{'s' if s.seeds != 1 else ''}; authors' logs on the same tasks {c.paper_gain:+.2f})")
    where = f"the {len(t1.kept)} tasks that left chance ({', '.join(t1.kept)})" if t1.kept else "no task yet"
    lines.append(f"- Table 1, averaged over {where}: {LABELS[c.method]} {AVERAGE[c.answer]}{numbers}.")
if t1.left_out:
    lines.append(f"- Table 1 leaves out {', '.join(t1.left_out)}: no method's screening run left chance there.")
display(Markdown("\n".join(lines)))
