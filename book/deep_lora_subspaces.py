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
# # Deep LoRA and its invariant subspaces
#
# *Paper: Sec. 4, Fig. 2 and App. D.2.*
#
# Deep LoRA replaces the update $\Delta W = BA$ of LoRA by a depth-3 factorisation
# $\Delta W = W^{(3)} W^{(2)} W^{(1)}$ of every adapted weight, started from a small orthogonal
# initialisation ($\varepsilon = 10^{-3}$). Theorem 2.1 (previous part of the book) says that for a
# deep *matrix* factorisation trained by gradient descent from such an initialisation, every factor
# changes only inside a fixed $2r$-dimensional subspace; the remaining singular values all follow
# one scalar recursion and their singular subspaces never move. Fine-tuning a transformer is not a
# matrix factorisation problem -- the loss is non-linear in $\Delta W$ and the "target" is not of a
# known rank -- so the theorem does not apply as stated. **Fig. 2** of the paper checks its two
# consequences empirically on STS-B:
#
# 1. *low rank*: the final $\Delta W$ of every adapted matrix has only a few significant singular
#    values (left panel: the top 10 singular values of each final $\Delta W$);
# 2. *early, invariant subspaces*: the top-8 left singular subspace of $\Delta W(t)$ is close to the
#    final one long before training ends. The paper measures this by the largest singular value of
#    $U_t^\top U_{\text{final}}$ ($U$: the top-8 left singular vectors; 1 = the subspaces share a
#    direction, 0 = they are orthogonal), middle panel, next to the training loss (right panel).
#
# If the useful subspace is fixed from the start, it can be read off the first gradient. That is the
# **compression** of Sec. 2.3 / Sec. 4: from $\partial \mathcal L / \partial \Delta W$ on the first
# batch, build orthonormal `left` $\in \mathbb R^{m \times r}$ and `right` $\in \mathbb R^{n \times r}$
# and train only $\Delta W = \texttt{left}\,\widetilde W_3 \widetilde W_2 \widetilde W_1\,\texttt{right}^\top$
# with $r \times r$ inner factors started at $\varepsilon I_r$ (inner learning rate $10^{-2}$, outer
# factors at $\gamma \cdot 10^{-2}$, $\gamma = 10^{-2}$). **App. D.2** tests it on STS-B with 16
# training examples (one full batch, 200 steps): the *original* full-width factorisation, the
# *compressed* width-8 one, and a *random* width-8 one (random orthogonal `left`, `right`: same
# number of parameters, no gradient information). The paper's claim: compressed converges like the
# original; random narrow takes much longer.
#
# **Which adapters run where.** The logged runs behind the paper's Table 1 and Fig. 2 used the
# *full-width, uncompressed* depth-3 factorisation (width $\max(m, n)$, orthogonal $\varepsilon$-init,
# lr $10^{-4}$), and so does Fig. 2 here (lr decaying linearly from $10^{-4}$ to $10^{-5}$, as in the
# paper). Only App. D.2 compares the three variants above. In the paper's protocol **only the
# adapters train**: the classification head and the pooler are drawn at random (per seed; the
# authors' Flax checkpoint had no pooler weights) and stay frozen, and so does the rest of the
# backbone. At `ci` scale this chapter keeps the checkpoint's pooler, trains the head for every
# variant alike, and compressed Deep LoRA uses $\gamma = 0.1$: the cell below prints these departures
# (their calibration runs are recorded in `compressible.experiments.glue_runs.GLUE_METHODS`; the
# Few-shot GLUE chapters run the authors' protocol instead). STS-B is a regression: one output and an MSE loss; the
# metric is the Pearson correlation on the validation split.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

from compressible.ledger import coverage_table
from compressible.experiments import deep_lora_subspaces as dls
from compressible.finetune.glue import data_card
from compressible.summaries import save_summary

device = "cuda" if torch.cuda.is_available() else "cpu"
p = dls.plan(scale)
label = dls.build_label(scale)  # on every figure and table
display(Markdown(dls.settings_text(p, scale, device)))
dls.settings_table(p).style.hide(axis="index")

# %% [markdown]
# ## Data: STS-B
#
# The Semantic Textual Similarity Benchmark: sentence pairs scored by humans from 0 (unrelated) to
# 5 (equivalent). The paper evaluates on the whole validation split (the GLUE test labels are not
# public). As in the authors' code, pairs longer than 128 tokens are dropped from both splits before
# anything else; Fig. 2 trains on the whole remaining training split, App. D.2 on 16 examples drawn
# with replacement at seed 0 (the same 16 for the three variants).

# %%
card = data_card("stsb")
display(Markdown(dls.data_card_text(card)))
pd.DataFrame({"split": list(card["splits"]), "rows in this copy": list(card["splits"].values()),
              "official rows": [card["official_sizes"].get(s) for s in card["splits"]]}).style.hide(axis="index")

# %% [markdown]
# ## Running the experiments
#
# `deep_lora_subspaces.run` computes whatever runs of this chapter are missing from the result
# store (each run is stored atomically, so a rebuild recomputes nothing that finished) and loads
# them; `deep_lora_subspaces.summarise` computes every statistic below.

# %%
results = dls.run(scale, device=device)
summary = dls.summarise(results)
display(Markdown(dls.runs_text(results, card)))
results.runs[["part", "method", "adapter", "n_train", "steps", "seed", "metric", "value", "trainable_params",
              "wall_time"]].round(4).style.hide(axis="index")

# %% [markdown]
# ## Fig. 2: low-rank updates whose subspaces settle early
#
# Left: the top 10 singular values of the final $\Delta W$ of every adapted matrix (one line per
# matrix, coloured by its kind). Middle: for every matrix, the alignment of the top-8 left singular
# subspace at each checkpoint with the final one (thin lines) and its median over matrices (thick).
# At step 0 every singular value of $\Delta W(0) = \varepsilon^3 Q$ ($Q$ orthogonal) is the same, so
# its "top-8 subspace" is an arbitrary choice and the step-0 point only shows the chance level.
# Right: the training loss of every step's batch (dropout on), and its running mean.

# %%
dls.plot_fig2(results, summary)
plt.show()

# %%
display(Markdown(dls.fig2_text(summary)))
display(dls.fig2_table(summary).style.hide(axis="index").set_caption(f"Fig. 2: paper vs this build ({label})"))
display(Markdown(dls.fig2_caveat(summary, results.epsilon)))

# %% [markdown]
# The paper's 0.8875 comes from 2000 steps on the whole training set with bert-base-cased; a
# shorter run on another backbone is not expected to reach it, and the comparison is only meaningful
# at `paper` scale. The qualitative claims -- few significant singular values and subspaces that
# settle early -- are what this figure tests at every scale.

# %% [markdown]
# ## App. D.2: compressed vs original vs random narrow
#
# All three variants see the same 16 training pairs (one full batch, every step) and start from the
# same random head. Left: the training loss of every step. Right: validation Pearson at every
# evaluation (solid, ours) and the paper's values from the authors' logs (dashed, bert-base-cased,
# 200 steps). "Within 0.05 of original" below means: the first evaluated step at which a variant's
# Pearson is at least the original's Pearson at that same step minus 0.05.

# %%
dls.plot_d2(results, summary)
plt.show()

# %%
display(dls.d2_table(results).style.hide(axis="index").set_caption(
    f"App. D.2: validation Pearson by step -- paper vs this build ({label})"))
display(dls.d2_within_table(summary).style.hide(axis="index").set_caption(
    "How fast the narrow variants catch up with the original"))
display(Markdown(dls.d2_text(summary, p)))
display(Markdown(dls.d2_caveat(summary)))

# %% [markdown]
# **Why the compressed adapter can keep up.** The compressed `left` and `right` span the directions
# of the first gradient (plus their image under the orthogonal initialisation), which is where the
# full-width factorisation puts its update if its subspaces settle early, as the Fig. 2 panels test.
# The random narrow adapter has the same number of parameters but starts from directions unrelated
# to the task: its update of order $\varepsilon^3$ must first rotate towards useful directions at
# the small learning rate $10^{-4}$ before the loss can move.
#
# **Where the construction can fail.** Here the first batch is the whole sample, so the first
# gradient sees every example. With more examples than one batch holds, the outer factors come from
# one batch of 16 and then move at $\gamma$ times the inner rate, on batches that differ from step to
# step. The chapter {doc}`Few-shot GLUE: fair rates, bf16 and runs that trained <fewshot_tuning>` runs
# the Fig. 6 compressed runs at $n = 256$ again, each time changing one thing (where the outer factors
# come from, $\gamma$, the inner rate, the number of steps), follows what the frozen head sees along
# every run, and says which change makes a stalled run train or keeps it from collapsing.
#
# ## Summary for the scorecard
#
# `deep_lora_subspaces.summarise` returns a typed `DeepLoraSubspacesSummary` (every field is
# documented in `compressible.experiments.deep_lora_subspaces`), written to
# `summaries/deep_lora_subspaces.json`: `fig2` holds the Fig. 2 run's alignment (median per
# checkpoint, and at the first checkpoint at or after 10% of training), its spectra statistics
# (how many of the top singular values grew, $\sigma_1 / \varepsilon^3$ overall and by kind) and its
# losses; `d2` holds App. D.2 at seed 0 per variant (Pearson at the paper's evaluation steps, final
# losses, the first step within 0.05 of the original -- meaningful only when
# `comparison_informative`, i.e. the original's best Pearson reached 0.3 -- and the first step whose
# training loss is below 90% of step 1's).

# %%
path = save_summary(summary)
display(Markdown(f"Wrote `{path.name}`."))

# %% [markdown]
# ## Where these runs come from
#
# Every run this chapter shows, per figure and method: how many its plan has at this scale, how many
# are stored (read from the repository's committed ledger, or computed by this build), which are
# missing, and where and when they were computed. The ledger's records are re-executed in part by
# every build of the book (see the README).

# %%
display(coverage_table("deep_lora_subspaces", scale))
