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
#     figures: {smoke: 3, ci: 3, paper: 2}
# ---

# %% [markdown]
# # Few-shot GLUE: fair rates, bf16 and runs that trained
#
# *Paper: Sec. 4 and App. D.2; the checks behind the next chapter's comparisons.*
#
# Before the next chapter compares LoRA with Deep LoRA few-shot, three things have to hold, or its
# verdicts say nothing in either direction:
#
# 1. **Every method runs at a rate that suits it.** The paper fixes LoRA at $10^{-4}$ and gives a
#    rate for compressed Deep LoRA only in App. D.2 (inner factors $10^{-2}$, outer factors
#    $\gamma \cdot 10^{-2}$ with $\gamma = 10^{-2}$), for `bert-base-cased`. Outside the `paper`
#    scale the backbone is another one, so each method gets a grid of the same size (LoRA: its rate;
#    compressed Deep LoRA: inner rate and $\gamma$), and the grid point with the best mean score on
#    **training examples held out of every few-shot sample** is used. The validation split the next
#    chapter reports is never used to choose; its scores are shown here only to make that visible.
#    A chosen point's runs are the next chapter's runs at that $n$ and seed (the same configuration).
# 2. **Every run trains.** A run whose training loss stays near that of a constant predictor (the
#    sample's mean label, for STS-B's MSE) has learned nothing, and comparing it is comparing noise.
#    The check flags every run whose final loss (mean of its last 10 steps) is not below half of it.
# 3. **bf16 does not change the answer.** The ci scale runs the frozen backbone's forward and
#    backward under bf16 autocast (adapters, head, loss and Adam's state stay float32), which halves
#    the cost of a step on a CPU with native bf16. A few runs are repeated in float32 and set beside
#    their bf16 twins, against the spread between seeds.
#
# The protocol is the authors' (`paper-notes.md` Sec. 4): the classification head *and the pooler*
# are drawn at random and stay frozen (their Flax checkpoint had no pooler weights), the adapted
# weights are their "all dense" set (every weight with both dimensions at least the hidden size,
# which includes the pooler), batch 16, Adam ($\epsilon = 10^{-6}$), constant rates. The cell below
# prints how this scale departs from it.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from compressible.ledger import coverage_table
from compressible.experiments import fewshot_glue as fg
from compressible.experiments import fewshot_tuning as ft
from compressible.scales import scale_label

device = "cuda" if torch.cuda.is_available() else "cpu"
p = fg.plan(scale)
display(Markdown(fg.settings_text(p, scale)))

# %% [markdown]
# ## Running the sweep
#
# `fewshot_glue.run` runs the tuning grid first, chooses the rates, then runs every experiment of the
# Few-shot GLUE chapter with them; the result store keeps each finished run, so the next chapter
# (and any rebuild) only loads.

# %%
results = fg.run(scale, device=device)
summary = fg.summarise(results)
display(Markdown(fg.runs_text(results)))

# %% [markdown]
# ## Learning rates, chosen on held-out training examples

# %%
display(Markdown(ft.tuning_text(summary.tuning) if summary.tuning else
                 "No tuning at this scale: the paper's rates are used (LoRA $10^{-4}$; compressed Deep LoRA the App. D.2 rates)."))
display(ft.tuning_table(summary.tuning).style.hide(axis="index").set_caption(
    f"Tuning grid ({scale_label(scale)}): held-out score chooses, validation is only reported") if summary.tuning else "")

# %%
ft.plot_sensitivity(summary.tuning) if summary.tuning else None
plt.show()

# %% [markdown]
# Each point is the mean (error bar: std) over the tuning seeds of the Pearson correlation on the
# held-out training pairs after the last step; grey crosses are the same runs' validation scores,
# which played no part in the choice. The circled point is each method's chosen rate. The grids
# have the same number of points for both methods, so neither gets more chances to be lucky.
#
# ## Did every run train?
#
# Per experiment of both chapters: how many runs ended with a training loss below half the loss of
# predicting the sample's mean label. The curves are the Fig. 6 runs at the largest $n$, where one
# batch of 16 no longer holds the whole sample: a method whose loss stays near its start there is a
# bug or a wrong rate until shown otherwise.

# %%
display(Markdown(ft.training_text(summary.training)))
ft.training_table(summary.training).style.hide(axis="index").set_caption(
    f"Training check ({scale_label(scale)}): final loss against the constant predictor's")

# %%
ft.plot_training_curves(results.curves, f"Training loss, STS-B, n = {max(p.fig6.n)} ({scale_label(scale)}, {p.backbone})")
plt.show()

# %% [markdown]
# ## When compressed Deep LoRA does not train: a diagnosis
#
# At $n = 16$ the first batch *is* the whole sample, so the gradient the compressed initialisation
# builds its outer factors from sees every example, and a grid run at $n = 16$ cannot see a rate
# that fails only when batches differ. At larger $n$ the outer factors come from one batch of 16
# and then move at $\gamma$ times the inner rate. A compressed run whose loss stalls there while
# LoRA's falls has one of a few causes: outer factors built from **one batch's subspace**, outer
# factors that move **too slowly** to leave it or **too fast** for batches that differ from step to step
# (a $\gamma$ too small or too large), an inner rate that makes the depth-3 product overshoot, or a run
# that is slow rather than stuck: a product that starts at $\varepsilon^3$ can sit on a plateau for a
# while before it leaves. The runs below take Fig. 6's compressed runs at the larger $n$ and change one
# thing each, at the same seeds, sample, batch order and rates: the outer factors built from the
# gradient of the **whole sample** (one batch of all $n$ examples, instead of the first 16), the outer
# factors at **another $\gamma$**, a **10× smaller inner rate** and the same run trained **longer**, where
# the plan has them. The `paper` plan has all four ($\gamma = 1$, 1500 steps); the `ci` plan has the
# one that changes the outer factors' rate alone: App. D.2's $\gamma = 10^{-2}$ (when the tuning chose
# another $\gamma$). A change that makes the stalled seeds train names the cause; one that does not
# rules it out as the whole cause.
#
# Every run also probes what the frozen head sees (as in the Few-shot GLUE chapter's Fig. 8 section):
# the *spread* of its input over the run's first batch, at step 0 and every tenth of the run. A run has
# **collapsed** when that spread ends below a tenth of its start: every example then reaches the head
# as nearly one point, and the best it can do is predict the label mean. The column "rank-one updates"
# counts the adapted weights whose update has a second singular value under 1 % of its first: what a
# run learned, not only how far its loss fell.

# %%
d = summary.diagnosis
display(Markdown(ft.diagnosis_text(d) if d else "No diagnosis runs at this scale."))
ft.diagnosis_table(d).style.hide(axis="index").set_caption(
    f"Diagnosis at n = {d.n} ({scale_label(scale)}): final training loss (last 10 steps) / constant predictor's") if d else ""

# %% [markdown]
# A validation Pearson of "n/a" means the run's predictions on the validation pairs were all the
# same: a constant predictor has no correlation, which is what a loss sitting on the dotted line
# below means. Right: the spread of the head's input along the same runs; below the dotted line a run
# has collapsed.

# %%
if d:
    ft.plot_training_curves(results.diagnosis, f"Training loss, STS-B, n = {d.n}: Fig. 6 runs and one change each "
                            f"({scale_label(scale)})")
    plt.show()

# %% [markdown]
# ## bf16 autocast against float32
#
# The same runs (same sample, batch order, random head and pooler, adapters) in float32 and under
# bf16 autocast. A difference smaller than the seed-to-seed spread cannot move a verdict that rests on
# paired differences over seeds.

# %%
display(Markdown(ft.precision_text(summary.precision) if summary.precision else
                 "At this scale every run computes in float32: there is nothing to compare."))
ft.precision_table(summary.precision).style.hide(axis="index").set_caption(
    f"Final validation Pearson, float32 vs bf16 autocast ({scale_label(scale)})") if summary.precision else ""

# %% [markdown]
# The step-time ratio above comes from these runs' own timings; `benchmarks/autocast.py` measures it
# on a fixed batch with interleaved repetitions.

# %% [markdown]
# ## Where these runs come from
#
# Every run this chapter shows, per figure and method: how many its plan has at this scale, how many
# are stored (read from the repository's committed ledger, or computed by this build), which are
# missing, and where and when they were computed. The ledger's records are re-executed in part by
# every build of the book (see the README).

# %%
display(coverage_table("fewshot_tuning", scale))
