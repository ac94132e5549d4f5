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
#     figures: {smoke: 1, ci: 1, paper: 0}
# ---

# %% [markdown]
# # Few-shot GLUE: fair learning rates
#
# *Paper: Sec. 4 and App. D.2; the rates behind the next chapter's comparisons.*
#
# Before the next chapter compares LoRA with Deep LoRA few-shot, every method has to run at a rate
# that suits it, or its verdicts say nothing in either direction. The paper fixes LoRA at $10^{-4}$
# and gives a rate for compressed Deep LoRA only in App. D.2 (inner factors $10^{-2}$, outer factors
# $\gamma \cdot 10^{-2}$ with $\gamma = 10^{-2}$), for `bert-base-cased`. Outside the `paper` scale the
# backbone is another one, so each method gets a grid of the same size (LoRA: its rate; compressed
# Deep LoRA: inner rate and $\gamma$), and the grid point with the best mean score on **training
# examples held out of every few-shot sample** is used. The validation split the next chapter reports
# is never used to choose; its scores are shown here only to make that visible. A chosen point's runs
# are the next chapter's runs at that $n$ and seed (the same configuration), and the next chapter runs
# everything else at the chosen rates; it also checks that every run trained, that bf16 does not
# change the answer, and why compressed runs stall where they do.
#
# The protocol is the authors' (`paper-notes.md` Sec. 4): the classification head *and the pooler*
# are drawn at random and stay frozen (their Flax checkpoint had no pooler weights), the adapted
# weights are their "all dense" set (every weight with both dimensions at least the hidden size,
# which includes the pooler), batch 16, Adam ($\epsilon = 10^{-6}$), constant rates.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from compressible.experiments import fewshot_tuning as ft
from compressible.ledger import coverage_table
from compressible.scales import scale_label
from compressible.summaries import save_summary

device = "cuda" if torch.cuda.is_available() else "cpu"
p = ft.plan(scale)
results = ft.run(p, device=device)
summary = ft.summarise(results)
save_summary(summary)
glue("tuning_backbone", Markdown(f"`{summary.backbone}`"), display=False)
display(Markdown(f"**Backbone ({scale_label(scale)}):** `{p.backbone}`. {p.methods.backbone_note} "
                 f"**How this scale departs from the paper:** {'; '.join(p.notes) or 'none: this is the paper protocol'}."))

# %% [markdown]
# ## Learning rates, chosen on held-out training examples
#
# `fewshot_tuning.run` runs the grid points the result store does not hold yet (the runs of every
# grid point at the tuning $n$ and seeds, on {glue:md}`tuning_backbone`) and loads the rest;
# `fewshot_tuning.summarise` scores every point and chooses.

# %%
t = summary.tuning
if t is None:
    display(Markdown("No tuning at this scale: the paper's rates are used (LoRA $10^{-4}$; compressed Deep LoRA the "
                     "App. D.2 rates)."))
else:
    spread = " ".join(
        f"{method}'s held-out Pearson ranges from {r.low:.3f} to {r.high:.3f} over its {r.points} grid points"
        + ("." if r.chosen is None else f" (chosen: {r.chosen:.3f}).") for method, r in t.ranges.items())
    display(Markdown(
        f"Chosen on {t.holdout} held-out STS-B training pairs (n = {', '.join(map(str, t.n))}, {t.seeds} seeds, "
        f"{t.steps} steps): **LoRA lr {t.lora_lr:g}**, **compressed Deep LoRA inner lr {t.deep_lr:g}, "
        f"γ = {t.deep_gamma:g}**. {spread}"))
    display(ft.tuning_table(t).style.hide(axis="index").set_caption(
        f"Tuning grid ({scale_label(scale)}): held-out score chooses, validation is only reported"))

# %%
if summary.tuning is not None:
    ft.plot_sensitivity(summary.tuning)
    plt.show()

# %% [markdown]
# Each point is the mean (error bar: std) over the tuning seeds of the Pearson correlation on the
# held-out training pairs after the last step; grey crosses are the same runs' validation scores,
# which played no part in the choice. The circled point is each method's chosen rate. The grids
# have the same number of points for both methods, so neither gets more chances to be lucky.

# %% [markdown]
# ## Where these runs come from
#
# Every run this chapter shows, per figure and method: how many its plan has at this scale, how many
# are stored (read from the repository's committed ledger, or computed by this build), which are
# missing, and where and when they were computed. The ledger's records are re-executed in part by
# every build of the book (see the README).

# %%
display(coverage_table("fewshot_tuning", scale))
