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
# adapters train**: the classification head is drawn at random (per seed) and stays frozen, and so
# does the rest of the backbone, pooler included (the pooler comes from the checkpoint, which
# provides it for both backbones below; it is not re-drawn). At `ci` scale the head trains too, for
# every variant alike, and compressed Deep LoRA uses $\gamma = 0.1$: the cell below prints these
# departures and the Few-shot GLUE chapter explains them. STS-B is a regression: one output and an MSE loss; the
# metric is the Pearson correlation on the validation split.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from compressible.finetune.glue import data_card
from compressible.reproduction.reference import PROVENANCE, paper_value
from compressible.scales import check_scale, scale_label
from compressible.summaries import save_summary
from compressible.sweeps import ATTENTION_TARGETS, PLANS, load_runs, plan, run_chapter
from compressible.finetune.classify import TINY_BERT

check_scale(scale)
device = "cuda" if torch.cuda.is_available() else "cpu"
if scale == "smoke":
    torch.set_num_threads(1)  # the smoke model's matrices are tiny: threads cost more than they save

p = PLANS[scale]
experiments = plan("deep_lora_subspaces", scale)
fig2_exp = next(e for e in experiments if e.part == "fig2")
d2_exps = {e.label: e for e in experiments if e.part == "d2"}
D2_METHODS = ("original", "compressed", "random")
BACKBONE_NAMES = {
    "google-bert/bert-base-cased": "bert-base-cased (the paper's backbone)",
    "sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2, a 6-layer sentence-embedding BERT (hidden 384), not bert-base-cased",
    TINY_BERT: "a tiny random BERT (2 layers, hidden 32) that measures nothing",
}
backbone_short = {
    "google-bert/bert-base-cased": "bert-base-cased",
    "sentence-transformers/all-MiniLM-L6-v2": "all-MiniLM-L6-v2",
    TINY_BERT: "tiny random BERT",
}.get(p.backbone, p.backbone)
label = f"{scale_label(scale)}, {backbone_short}"  # on every figure and table
TARGET_NAMES = {
    "attention-mlp": "q, k, v, attention output, intermediate and output of every block (the paper's 72 matrices "
                     "for bert-base-cased)",
    ATTENTION_TARGETS: "q, k, v and attention output of every block only -- **not** the paper's intermediate and "
                       "output (MLP) weights",
}
paper_label = f"{PROVENANCE}, bert-base-cased"

settings = pd.DataFrame({
    f"{e.part}: {e.label}": {
        "adapter": e.config.adapter,
        "width": "max(m, n)" if e.config.adapter == "full" else e.config.rank,
        "depth": e.config.depth,
        "lr (inner)": e.config.lr,
        "lr (outer)": e.config.gamma * e.config.lr if e.config.gamma is not None else "= inner",
        "lr at the end": e.config.lr_end if e.config.lr_end is not None else "constant",
        "training examples": "all (filtered) train" if e.config.n_train is None else e.config.n_train,
        "steps × batch": f"{e.config.steps} × {e.config.batch_size}",
        "evaluated every": e.config.eval_every or "last step only",
        "validation examples": "all" if e.config.eval_limit is None else e.config.eval_limit,
        "seeds": ", ".join(map(str, e.seeds)),
    }
    for e in experiments
})
display(Markdown(
    f"**Settings ({scale_label(scale)}).** Backbone `{p.backbone}`: {BACKBONE_NAMES.get(p.backbone, p.backbone)}. "
    f"Device: `{device}`. Adapted modules: "
    + "; ".join(
        f"{part} `{t}`: {TARGET_NAMES.get(t, 'see the pattern')}" for part, t in
        ([("Fig. 2 and App. D.2", fig2_exp.config.targets)] if fig2_exp.config.targets == d2_exps["original"].config.targets
         else [("Fig. 2", fig2_exp.config.targets), ("App. D.2", d2_exps["original"].config.targets)]))
    + ". "
    + ("How this scale departs from the paper: " + "; ".join(p.notes) + "." if p.notes else
       "This is the paper's protocol.")
))
settings

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
split_rows = pd.DataFrame({
    "rows in this copy": card["splits"],
    "official rows": card["official_sizes"],
})
display(Markdown(
    f"**Data card.** `{card['hub_id']}`, config `{card['task']}`, read from "
    f"{'a local mirror at `' + card['source'] + '`' if card['local_mirror'] else 'the hub (`' + card['source'] + '`)'}. "
    f"Inputs: {' + '.join(card['text_fields'])} (a sentence pair); {card['num_labels']} output, "
    f"{'regression (MSE loss)' if card['regression'] else 'classification'}; training split `{card['train_split']}`, "
    f"evaluation split `{card['eval_split']}`. "
    + ("Mirror caveats: " + " ".join(card["caveats"]) if card["caveats"] else
       "Mirror caveats: none -- every split has the official number of rows.")
))
split_rows

# %% [markdown]
# ## Running the experiments
#
# `compressible.sweeps.run_chapter` computes whatever runs of this chapter are missing from the
# result store (each run is stored atomically, so a rebuild recomputes nothing that finished) and
# returns one row per run. The chapter only reads the stored results below.

# %%
start = time.perf_counter()
frame = run_chapter("deep_lora_subspaces", scale, device=device)
elapsed = time.perf_counter() - start
fig2_run = load_runs(fig2_exp)[fig2_exp.seeds[0]]
d2_runs = {m: load_runs(d2_exps[m])[d2_exps[m].seeds[0]] for m in D2_METHODS}
computed = frame["wall_time"].sum()
display(Markdown(
    f"This cell took {elapsed:.0f} s; the {len(frame)} runs took {computed:.0f} s in total when they were computed "
    f"(Fig. 2: {fig2_run['wall_time']:.0f} s; App. D.2: "
    + ", ".join(f"{m} {d2_runs[m]['wall_time']:.0f} s" for m in D2_METHODS) + "). "
    f"Length filter (128 tokens): {fig2_run['train_pool']:,} of {card['splits']['train']:,} training pairs kept, "
    f"{fig2_run['eval_dropped_by_filter']} of {card['splits'][card['eval_split']]:,} validation pairs dropped. "
    f"Evaluation on {fig2_run['n_eval']:,} validation pairs (Fig. 2) and {d2_runs['original']['n_eval']:,} (App. D.2)"
    + (" -- a fixed subset, the same for every run, not the whole split" if fig2_exp.config.eval_limit or d2_exps["original"].config.eval_limit else "")
    + ". "
    f"{fig2_run['adapted_modules']} adapted weight matrices; trainable parameters: "
    f"{fig2_run['trainable_params']:,} (full width), "
    + ", ".join(f"{d2_runs[m]['trainable_params']:,} ({m})" for m in D2_METHODS) + "."
))
frame[["part", "method", "adapter", "n_train", "steps", "seed", "metric", "value", "trainable_params", "wall_time"]]

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
KINDS = {
    "attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
    "attention.output.dense": "attn out", "intermediate.dense": "intermediate", "output.dense": "output",
}


def kind_of(module: str) -> str:
    return next(short for suffix, short in KINDS.items() if module.endswith(suffix))


ckpt = fig2_run["checkpoints"]
ckpt_steps = np.array(ckpt["steps"])
modules = sorted(ckpt["alignment"])
alignment = np.array([ckpt["alignment"][m] for m in modules])  # (modules, checkpoints)
spectra = np.array([fig2_run["spectra"][m]["singular_values"] for m in modules])  # (modules, 10)
median_alignment = np.median(alignment, axis=0)
losses = np.array(fig2_run["train_loss"])
window = max(1, len(losses) // 10)
running = pd.Series(losses).rolling(window, min_periods=1).mean()

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
kind_colours = {k: f"C{i}" for i, k in enumerate(dict.fromkeys(KINDS.values()))}
seen = set()
for m, s in zip(modules, spectra):
    k = kind_of(m)
    axes[0].semilogy(np.arange(1, len(s) + 1), s, color=kind_colours[k], alpha=0.6, lw=1,
                     label=None if k in seen else k)
    seen.add(k)
axes[0].axhline(fig2_exp.config.epsilon ** 3, color="gray", ls=":", lw=1, label=r"$\varepsilon^3$ (all of them at step 0)")
axes[0].set_xlabel("index i")
axes[0].set_ylabel(r"$\sigma_i(\Delta W_{\mathrm{final}})$")
axes[0].set_title("top singular values of every final ΔW")
axes[0].legend(fontsize=8, ncol=2)
for row in alignment:
    axes[1].plot(ckpt_steps, row, color="tab:gray", alpha=0.35, lw=0.8)
axes[1].plot(ckpt_steps, median_alignment, "o-", color="tab:red", lw=2, label="median over matrices")
axes[1].set_xscale("symlog", linthresh=1)
axes[1].set_ylim(0, 1.05)
axes[1].set_xlabel("step t (symlog)")
axes[1].set_ylabel(r"$\|U_t^\top U_{\mathrm{final}}\|_2$ (top-%d)" % ckpt["k"])
axes[1].set_title("alignment with the final subspace")
axes[1].legend(loc="lower right")
axes[2].plot(np.arange(1, len(losses) + 1), losses, color="tab:blue", alpha=0.35, lw=0.8, label="per batch")
axes[2].plot(np.arange(1, len(losses) + 1), running, color="tab:blue", lw=2, label=f"running mean ({window} steps)")
axes[2].set_xlabel("step")
axes[2].set_ylabel("training loss (MSE)")
axes[2].set_title("training loss")
axes[2].legend()
fig.suptitle(f"Fig. 2: full-width Deep LoRA on STS-B, {fig2_exp.config.steps} steps ({label})")
fig.tight_layout()
plt.show()

# %%
steps_total = fig2_exp.config.steps
# the first checkpoint after step 0 at or beyond 10% of training: "early" in the paper's sense
early_step = int(next(t for t in ckpt_steps if t >= max(1, 0.1 * steps_total)))
early = alignment[:, list(ckpt_steps).index(early_step)]
step1 = alignment[:, list(ckpt_steps).index(1)] if 1 in ckpt_steps else None
chance = alignment[:, list(ckpt_steps).index(0)] if 0 in ckpt_steps else None
ratio_9_1 = spectra[:, 8] / spectra[:, 0] if spectra.shape[1] > 8 else spectra[:, -1] / spectra[:, 0]
# Every singular value of Delta W(0) is eps^3: count those that grew by at least 10% of what the largest grew
# (for updates far above eps^3 this is "at least 10% of sigma_1").
init_level = fig2_exp.config.epsilon ** 3
growth = spectra - init_level
significant = (growth >= 0.1 * growth[:, :1]).sum(axis=1)
top_over_init = spectra[:, 0] / init_level
early_phase = np.median(top_over_init) < 10  # the updates have not left the initial scale yet
loss_first, loss_last = losses[:window].mean(), losses[-window:].mean()
fig2_pearson = float(fig2_run["final"]["pearson"])
paper_fig2_pearson = paper_value("figure2_invariant_subspaces", "final_eval_pearson")
display(Markdown(
    f"**What our run shows ({label}).** After {early_step} of {steps_total} steps the median alignment over the "
    f"{len(modules)} matrices is {np.median(early):.3f} (smallest {early.min():.3f}; "
    f"{(early > 0.9).mean():.0%} of the matrices above 0.9)"
    + (f"; after a single step it is already {np.median(step1):.3f}" if step1 is not None else "")
    + (f", against {np.median(chance):.3f} for the arbitrary step-0 basis" if chance is not None else "")
    + f". The largest singular value of the final updates is a median {np.median(top_over_init):.3g} times the initial "
    f"level $\\varepsilon^3$; a median of {np.median(significant):.0f} of the top {spectra.shape[1]} singular values grew "
    f"by at least 10% of what the largest one grew, and the median ratio $\\sigma_{{9}} / \\sigma_1$ is "
    f"{np.median(ratio_9_1):.3g}. By kind, the median $\\sigma_1 / \\varepsilon^3$ is "
    + ", ".join(f"{k} {np.median(top_over_init[[kind_of(m) == k for m in modules]]):.3g}"
                for k in sorted(set(map(kind_of, modules)), key=list(KINDS.values()).index))
    + ". "
    f"The training loss goes from {loss_first:.2f} (mean of the first {window} steps) to "
    f"{loss_last:.2f} (last {window} steps); the final validation Pearson is {fig2_pearson:.4f} "
    f"on {fig2_run['n_eval']:,} validation pairs. Adapted matrices: {len(modules)} "
    f"({', '.join(sorted(set(map(kind_of, modules)), key=list(KINDS.values()).index))})."
))

fig2_table = pd.DataFrame([
    {"quantity": "final validation Pearson",
     paper_label: f"{paper_fig2_pearson:.4f}",
     f"ours ({label})": f"{fig2_pearson:.4f}"},
    {"quantity": "steps (lr 1e-4 → 1e-5, linear)",
     paper_label: str(paper_value("figure2_invariant_subspaces", "protocol", "steps")),
     f"ours ({label})": str(steps_total)},
    {"quantity": "adapted matrices",
     paper_label: "72",
     f"ours ({label})": str(fig2_run["adapted_modules"])},
    {"quantity": "spectra of ΔW",
     paper_label: "few significant singular values per matrix (qualitative)",
     f"ours ({label})": f"median {np.median(significant):.0f} of top {spectra.shape[1]} grew ≥ 10% of σ₁'s growth; "
                        f"σ₁ = {np.median(top_over_init):.3g} × ε³ (median)"},
    {"quantity": f"top-{ckpt['k']} subspace alignment with the final one",
     paper_label: "close to 1 early in training (qualitative)",
     f"ours ({label})": f"median {np.median(early):.3f} at step {early_step} of {steps_total}"},
])
display(fig2_table.style.hide(axis="index").set_caption(f"Fig. 2: paper vs this build ({label})"))
if early_phase:
    display(Markdown(
        f"**Caveat: at {label} the updates have barely left their initialisation.** After {steps_total} steps the "
        f"largest singular value of $\\Delta W$ is only {np.median(top_over_init):.3g} × $\\varepsilon^3$ "
        f"(median over matrices); the training loss averaged {loss_first:.2f} over the first {window} steps and "
        f"{loss_last:.2f} over the last {window}, and the validation Pearson is {fig2_pearson:.3f}: the model does not "
        f"rank STS-B pairs yet. Starting from "
        f"$\\varepsilon = {fig2_exp.config.epsilon:g}$, a depth-3 factorisation first spends many steps growing out of "
        f"the small initialisation (its gradients carry a factor $\\varepsilon^2$), and the paper's run is "
        f"{paper_value('figure2_invariant_subspaces', 'protocol', 'steps')} steps long. What this run does show is the "
        f"start of Theorem 2.1's picture: the growth goes into a few directions, the rest of the spectrum stays "
        f"near $\\varepsilon^3$, and those few directions are fixed within the first steps. Whether they stay fixed "
        f"while the model actually learns is only tested at `paper` scale."
    ))

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
d2_cfg = d2_exps["original"].config
colours = {"original": "tab:blue", "compressed": "tab:green", "random": "tab:orange"}
paper_d2 = {m: {int(s): v for s, v in paper_value("appendix_d2_compression_ablation", "pearson_at_step", m).items()}
            for m in D2_METHODS}
ours_d2 = {m: {int(e["step"]): float(e["pearson"]) for e in d2_runs[m]["evals"]} for m in D2_METHODS}

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for m in D2_METHODS:
    loss = d2_runs[m]["train_loss"]
    ax1.plot(np.arange(1, len(loss) + 1), loss, color=colours[m], label=m)
    steps, values = zip(*sorted(ours_d2[m].items()))
    ax2.plot(steps, values, "o-", color=colours[m], label=f"{m} (ours)")
    psteps, pvalues = zip(*sorted(paper_d2[m].items()))
    ax2.plot(psteps, pvalues, "s--", color=colours[m], alpha=0.5, label=f"{m} (paper)")
ax1.set_yscale("log")
ax1.set_xlabel("step")
ax1.set_ylabel("training loss (MSE, 16 examples)")
ax1.set_title("training loss")
ax1.legend()
ax2.set_xlabel("step")
ax2.set_ylabel("validation Pearson")
ax2.set_title(f"validation Pearson (ours: {d2_runs['original']['n_eval']:,} pairs)")
ax2.legend(fontsize=8, ncol=2)
fig.suptitle(f"App. D.2: STS-B, 16 examples, {d2_cfg.steps} steps ({label}; dashed: {paper_label}, 200 steps)")
fig.tight_layout()
plt.show()


# %%
def first_step_within(curves: dict[str, dict[int, float]], method: str, tol: float = 0.05) -> int | None:
    """First step evaluated for both at which ``method`` >= original - tol (None if never)."""
    common = sorted(set(curves[method]) & set(curves["original"]))
    return next((s for s in common if curves[method][s] >= curves["original"][s] - tol), None)


table_steps = sorted(set().union(*[paper_d2[m] for m in D2_METHODS], *[ours_d2[m] for m in D2_METHODS]))
d2_table = pd.DataFrame(
    {(m, who): [f"{curves[m][s]:.3f}" if s in curves[m] else "—" for s in table_steps]
     for m in D2_METHODS for who, curves in ((paper_label, paper_d2), (f"ours ({label})", ours_d2))},
    index=pd.Index(table_steps, name="step"),
)
display(d2_table.style.set_caption(f"App. D.2: validation Pearson by step -- paper vs this build ({label})"))

within = pd.DataFrame({
    who: {f"{m}: first step within 0.05 of original": str(first_step_within(curves, m) or "never")
          for m in ("compressed", "random")}
    for who, curves in ((paper_label, paper_d2), (f"ours ({label})", ours_d2))
})
display(within.style.set_caption("How fast the narrow variants catch up with the original"))

# %%
final = {m: float(d2_runs[m]["final"]["pearson"]) for m in D2_METHODS}
first_within = {m: first_step_within(ours_d2, m) for m in ("compressed", "random")}
# "Catching up with the original" only means something once the original has learned: we require its best
# evaluated Pearson to reach LEARNED (the paper's original is at 0.649 after 20 steps).
LEARNED = 0.3
original_best = max(ours_d2["original"].values())
informative = original_best >= LEARNED
d2_window = max(1, d2_cfg.steps // 10)
d2_loss_end = {m: float(np.mean(d2_runs[m]["train_loss"][-d2_window:])) for m in D2_METHODS}
# how fast each variant starts to fit its 16 examples: first step whose loss is below 90% of step 1's
loss_drop = {m: next((i + 1 for i, v in enumerate(d2_runs[m]["train_loss"]) if v < 0.9 * d2_runs[m]["train_loss"][0]), None)
             for m in D2_METHODS}
display(Markdown(
    f"**What our run shows ({label}).** After {d2_cfg.steps} steps the validation Pearson is "
    + ", ".join(f"{final[m]:.3f} ({m})" for m in D2_METHODS)
    + f", on {d2_runs['original']['n_eval']:,} validation pairs"
    + (" (a fixed subset: App. D.2 evaluates every few steps)" if d2_cfg.eval_limit is not None else "")
    + ". Mean training loss over the last "
    f"{d2_window} steps: " + ", ".join(f"{d2_loss_end[m]:.3g} ({m})" for m in D2_METHODS) + ". "
    + "".join(
        f"The {m} variant is first within 0.05 of the original at step {first_within[m]}. " if first_within[m] is not None
        else f"The {m} variant is never within 0.05 of the original in our {d2_cfg.steps} steps. "
        for m in ("compressed", "random")
    )
    + f"In the authors' logs (bert-base-cased, 200 steps) the compressed variant is within 0.05 from step "
    f"{first_step_within(paper_d2, 'compressed')} and the random one only from step {first_step_within(paper_d2, 'random')}."
    + (" Our run stops at step " + str(d2_cfg.steps) + ", so the paper's steps "
       + ", ".join(str(s) for s in sorted(paper_d2['original']) if s > d2_cfg.steps) + " have no counterpart here."
       if d2_cfg.steps < max(paper_d2["original"]) else "")
))
if not informative:
    display(Markdown(
        f"**Caveat: at {label} this comparison is not informative.** The original full-width adapter's best "
        f"validation Pearson in our run is {original_best:.3f} (below {LEARNED}): within {d2_cfg.steps} steps it "
        f"does not rank validation pairs yet (its training loss went from {d2_runs['original']['train_loss'][0]:.2f} "
        f"to {d2_loss_end['original']:.2f}), so any variant is trivially \"within 0.05 of the original\". "
        f"The training-loss panel is the informative one here: mean loss over the last {d2_window} steps "
        + ", ".join(f"{d2_loss_end[m]:.3g} ({m})" for m in D2_METHODS)
        + f", from a common start of {d2_runs['compressed']['train_loss'][0]:.2f}; the first step with a loss below "
        f"90% of the first step's: "
        + ", ".join(f"{loss_drop[m] if loss_drop[m] is not None else 'never'} ({m})" for m in D2_METHODS) + "."
    ))

# %% [markdown]
# **Why the compressed adapter can keep up.** The compressed `left` and `right` span the directions
# of the first gradient (plus their image under the orthogonal initialisation), which is where the
# full-width factorisation puts its update if its subspaces settle early, as the Fig. 2 panels test.
# The random narrow adapter has the same number of parameters but starts from directions unrelated
# to the task: its update of order $\varepsilon^3$ must first rotate towards useful directions at
# the small learning rate $10^{-4}$ before the loss can move.

# %%
summary = {
    "backbone": p.backbone,
    "adapted_modules": int(fig2_run["adapted_modules"]),
    # Fig. 2 (full-width Deep LoRA, whole filtered STS-B train set)
    "fig2_steps": int(steps_total),
    "fig2_eval_examples": int(fig2_run["n_eval"]),
    "fig2_final_pearson": fig2_pearson,
    "fig2_final_train_loss": float(losses[-window:].mean()),
    "fig2_alignment_early_step": early_step,
    "fig2_median_alignment_at_10pct_steps": float(np.median(early)),
    "fig2_min_alignment_at_10pct_steps": float(early.min()),
    "fig2_frac_alignment_above_0.9_at_10pct_steps": float((early > 0.9).mean()),
    "fig2_median_alignment_step1": float(np.median(step1)) if step1 is not None else None,
    "fig2_median_alignment_step0": float(np.median(chance)) if chance is not None else None,
    "fig2_median_significant_singular_values": float(np.median(significant)),
    "fig2_median_sv_ratio_9_to_1": float(np.median(ratio_9_1)),
    "fig2_median_top_sv_over_eps3": float(np.median(top_over_init)),
    "fig2_initial_train_loss": float(loss_first),
    "fig2_updates_still_at_init_scale": bool(early_phase),
    # App. D.2 (n = 16, seed 0)
    "d2_steps": int(d2_cfg.steps),
    "d2_eval_examples": int(d2_runs["original"]["n_eval"]),
    **{f"d2_pearson_{m}_final": final[m] for m in D2_METHODS},
    **{f"d2_pearson_{m}_step{s}": v for m in D2_METHODS for s, v in ours_d2[m].items() if s in paper_d2[m]},
    **{f"d2_final_train_loss_{m}": d2_loss_end[m] for m in D2_METHODS},
    **{f"d2_trainable_params_{m}": int(d2_runs[m]["trainable_params"]) for m in D2_METHODS},
    "d2_first_step_compressed_within_0.05_of_original": first_within["compressed"],
    "d2_first_step_random_within_0.05_of_original": first_within["random"],
    "d2_original_best_pearson": float(original_best),
    **{f"d2_first_step_loss_below_90pct_{m}": loss_drop[m] for m in D2_METHODS},
    "d2_comparison_informative": bool(informative),
}
path = save_summary("deep_lora_subspaces", scale, summary)
display(Markdown(
    "**Summary for the scorecard** (`" + path.name + "`). `fig2_*`: the full-width run of Fig. 2; "
    "`*_at_10pct_steps`: at the first checkpoint at or after 10% of training (`fig2_alignment_early_step`); "
    "`fig2_median_significant_singular_values`: median over matrices of how many of the top 10 singular values "
    "of the final ΔW grew above ε³ by at least 10% of what σ₁ grew; `fig2_median_top_sv_over_eps3`: median σ₁/ε³; "
    "`d2_first_step_loss_below_90pct_<method>`: first step whose training loss is below 90% of step 1's; `d2_*`: App. D.2 at seed 0; `d2_pearson_<method>_step<s>`: at the "
    "paper's evaluation steps we ran; `d2_first_step_<method>_within_0.05_of_original`: first evaluated step "
    "with Pearson ≥ original's − 0.05 (null: never); meaningful only when `d2_comparison_informative` "
    f"(the original's best Pearson ≥ {LEARNED})."
))
pd.Series(summary, name=label).to_frame()
