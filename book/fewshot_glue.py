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
#     figures: 4
# ---

# %% [markdown]
# # Few-shot GLUE
#
# *Paper: Sec. 4, Table 1 and Figs. 6, 7 and 8.*
#
# Deep LoRA replaces the two-factor LoRA update $\Delta W = BA$ of every adapted weight by a
# three-factor one, compressed to rank $r$ with the construction of Sec. 2.3
# {cite}`yaras2024compressible`. The paper's claim is that, when training data are scarce, the
# deeper, low-rank-biased update generalises better and is less sensitive to the choice of $r$.
# This chapter reruns the four few-shot GLUE experiments behind that claim:
#
# - **Table 1**: eight GLUE tasks, $n = 1024$ training examples, LoRA vs Deep LoRA;
# - **Fig. 6**: STS-B with $n \in \{16, 64, 256\}$ examples;
# - **Fig. 7**: the numerical rank of every learned update $\Delta W$ (STS-B, $n = 256$, seed 0);
# - **Fig. 8**: robustness to the rank $r$ (STS-B, $n = 16$).
#
# **Protocol** (the authors' code and logs; `paper-notes.md` Sec. 4). Sequence classification
# with inputs of at most 128 tokens, batch 16, Adam ($\beta = (0.9, 0.999)$, $\epsilon = 10^{-6}$,
# no weight decay), constant learning rate without warm-up, dropout on while training.
# **Only the adapters train.** The classification head is drawn at random (from the seed) and
# stays frozen at that random initialisation; the pooler is frozen too, as is the rest of the
# encoder (`training.load_backbone` re-draws only what the checkpoint lacks, which for the
# backbones used here is the classification head). For every seed, $n$ training examples are
# drawn **with replacement** from the length-filtered training split; the draw depends only on
# (task, $n$, seed), so **both methods train on the same subset, in the same order, from the same
# head**. Each run is evaluated on the whole validation split (MNLI: `validation_matched`) after
# its last step: Matthews correlation for CoLA, Pearson correlation for STS-B (a regression with
# an MSE loss on one output), accuracy otherwise. Adapted weights: $W_q, W_k, W_v$, the attention
# output, the intermediate and the output dense layer of every block (the paper's 72 for
# bert-base; the authors' scripts also adapted the pooler and the word embeddings).
#
# **The two methods.** *LoRA* is the authors' vanilla LoRA: depth 2, $A \sim \mathcal N(0, 1)$,
# $B = 0$, no $\alpha / r$ scaling, learning rate $10^{-4}$. *Deep LoRA* is the **compressed**
# method as the paper describes it: depth 3, width $r$, outer factors built from the gradient of
# the first training batch, inner factors $\varepsilon I_r$ with $\varepsilon = 10^{-3}$, trained
# with the App. D.2 learning rates (inner factors $10^{-2}$, outer factors $\gamma \cdot 10^{-2}$ with
# $\gamma = 10^{-2}$). **This is not what produced the paper's numbers**: the authors' logged
# Table 1 and Figs. 6–7 runs used full-width, *uncompressed* depth-3 adapters (orthogonal
# $\varepsilon$-init, learning rate $10^{-4}$), and the logged Fig. 8 runs a narrow width-$r$ adapter with
# random orthogonal init. App. D.2 shows the compressed method tracks the full-width one; the
# Deep LoRA subspaces chapter (App. D.2) compares the three variants directly.
#
# The columns labelled "paper (authors' logs)" are recomputed from the authors' committed run logs
# (`compressible.reproduction.reference`); ours are labelled with the scale and the backbone that produced them.
#
# **Smaller scales depart from this protocol**, and the cell below prints how. At `ci` scale the
# two departures that matter are: the **classification head trains** (at the same rate for both
# methods), because the CPU backbone's [CLS] pooler was never trained for a task and a frozen random
# head on top of it learns nothing in a few dozen steps; and compressed Deep LoRA trains its outer
# factors at $\gamma = 0.1$ instead of $0.01$, without which it did not leave chance in 100 steps.
# Both were fixed by calibration runs recorded in `compressible.sweeps.PLANS`, not by the results
# below.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from compressible.finetune import glue
from compressible.hub import load_dataset
from compressible.reproduction.reference import PROVENANCE, paper_value
from compressible.scales import check_scale, scale_label
from compressible.summaries import save_summary
from compressible.sweeps import METHOD_LABELS, PLANS, load_runs, plan, run_chapter

check_scale(scale)
device = "cuda" if torch.cuda.is_available() else "cpu"
p = PLANS[scale]
LORA, DEEP = METHOD_LABELS["lora"], METHOD_LABELS["compressed"]
COLORS = {LORA: "tab:blue", DEEP: "tab:red"}
backbone = p.backbone
ours = f"ours ({scale_label(scale)}, {backbone.split('/')[-1]})"
paper_label = f"{PROVENANCE}, bert-base-cased"

experiments = plan("fewshot_glue", scale)
settings = pd.DataFrame([
    {"part": e.part, "method": e.label, "task": e.config.task, "n": e.config.n_train, "r": e.config.rank,
     "steps": e.config.steps, "lr (inner)": e.config.lr,
     "lr (outer)": e.config.gamma * e.config.lr if e.config.gamma is not None else "-",
     "head": f"trained, lr {e.config.head_lr:g}" if e.config.train_head else "frozen (random)",
     "seeds": len(e.seeds)}
    for e in experiments
])
paper_protocol = {
    "table1": paper_value("table1_glue_1024", "protocol"),
    "fig6": paper_value("figure6_stsb_fewshot", "protocol"),
    "fig8": paper_value("figure8_rank_sweep_stsb16", "protocol"),
}
notes = "; ".join(p.notes) if p.notes else "none: this is the paper's protocol"
display(Markdown(
    f"**Backbone ({scale_label(scale)}):** `{backbone}`. "
    + ("This is **not** `bert-base-cased`: `all-MiniLM-L6-v2` is a 6-layer, hidden-384 BERT distilled and "
       "then trained as a *sentence-embedding* model (sentence-transformers), so its absolute scores are "
       "not those of the paper's 12-layer, hidden-768 `bert-base-cased`. It is also uncased, and it was trained "
       "for mean pooling, while a sequence classifier reads the [CLS] token through the checkpoint's pooler. "
       "Compare the *differences* between the methods, not the levels. " if scale == "ci" else "")
    + ("A tiny **randomly initialised** BERT: this scale only checks that the code runs and measures nothing. "
       if scale == "smoke" else "")
    + f"**How this scale departs from the paper:** {notes}. "
    + f"Paper: Table 1 {paper_protocol['table1']['seeds']} seeds × {paper_protocol['table1']['steps']} steps "
    f"(SST-2 {paper_protocol['table1']['steps_sst2']}); Fig. 6 {paper_protocol['fig6']['seeds']} seeds × "
    f"{paper_protocol['fig6']['steps']} steps; Fig. 8 {paper_protocol['fig8']['seeds']} seeds × "
    f"{paper_protocol['fig8']['steps']} steps. Ours: the table below."
))
settings

# %% [markdown]
# ## Running the sweep
#
# `compressible.sweeps.run_chapter` computes every (configuration, seed) that the result store
# does not hold yet and returns one row per run; a rebuild recomputes nothing. Fig. 7 reuses the
# Fig. 6 runs at $n = 256$, seed 0, when the plan has them.

# %%
runs = run_chapter("fewshot_glue", scale, device=device, progress=True)
runs["score"] = runs["value"]
display(Markdown(
    f"{len(runs)} (experiment, seed) rows from {runs['key'].nunique()} distinct configurations; "
    f"training + evaluation took {runs.drop_duplicates(['key', 'seed'])['wall_time'].sum() / 60:.1f} min "
    f"summed over runs when they were computed. Trainable parameters per run: "
    + ", ".join(f"{m} r = {r}: {int(t):,}" for (m, r), t in
                runs.groupby(["method", "rank"])["trainable_params"].first().items())
    + "."
))


# %% [markdown]
# ## Data
#
# One card per task the chapter uses, from `compressible.finetune.glue.data_card`, with the size of the
# pool few-shot samples are drawn from and of the evaluation split after the 128-token filter (as
# stored with the runs). When the offline mirror is used, its caveats are listed with the card.

# %%
def stored_sizes(task):
    """Sizes recorded by a stored run of ``task`` (the same for every run of that task)."""
    exp = next(e for e in experiments if e.config.task == task)
    return load_runs(dataclasses.replace(exp, seeds=exp.seeds[:1]))[exp.seeds[0]]


used_tasks = list(dict.fromkeys([*p.table1_tasks, "stsb"]))
cards, caveat_lines = [], []
for task in used_tasks:
    card = glue.data_card(task)
    r = stored_sizes(task)
    cards.append({
        "task": task,
        "source": "offline mirror" if card["local_mirror"] else card["hub_id"],
        "train rows (official)": f"{card['splits'].get('train', 0):,} ({card['official_sizes']['train']:,})",
        "train pool ≤ 128 tokens": f"{r['train_pool']:,}",
        "eval split": card["eval_split"],
        "eval rows (official)": f"{card['splits'].get(card['eval_split'], 0):,} "
                                f"({card['official_sizes'][card['eval_split']]:,})",
        "eval rows used": f"{r['n_eval']:,}" + (" (subset)" if p.eval_limit else ""),
        "dropped by filter": r["eval_dropped_by_filter"],
        "labels": "regression" if card["regression"] else card["num_labels"],
        "caveats": len(card["caveats"]),
    })
    caveat_lines += [f"- **{task}** ({card['source']}): {c}" for c in card["caveats"]]
display(pd.DataFrame(cards).style.hide(axis="index").set_caption(f"GLUE data cards ({scale_label(scale)})"))


def chance_level(task):
    """Score of a constant predictor: 0 for Matthews / Pearson, the majority-class share (×100) for accuracy."""
    if paper_value("table1_glue_1024", "metric", task) != "accuracy":
        return 0.0
    labels = np.asarray(load_dataset(glue.HUB_ID, task)[glue.eval_split(task)]["label"])
    return 100 * np.bincount(labels).max() / len(labels)
mirror_used = any(c["source"] == "offline mirror" for c in cards)
display(Markdown(
    ("**Mirror caveats.** " + ("\n" + "\n".join(caveat_lines) if caveat_lines else
                               "none for the tasks used here: their splits are complete, official copies.")
     + "\n\nAcross the whole mirror: QQP's `validation` split holds 1000 pairs held out from the official "
       "*train* split, so **QQP numbers on this mirror are not comparable** to the paper's; QNLI and MNLI "
       "`train` are random subsets of the official splits (which only changes the pool a few-shot sample is "
       "drawn from). " if mirror_used else "GLUE is read from the hub (`nyu-mll/glue`): no mirror caveats.")
    + (f" At this scale the evaluation uses a fixed subset of {p.eval_limit} validation examples per task."
       if p.eval_limit else "")
))

# %% [markdown]
# ## Table 1: GLUE with $n = 1024$ examples
#
# For every task and seed both methods train on the same 1024 examples. The table gives
# mean ± standard deviation over seeds of the final metric (×100, as in the paper), the paired
# per-seed difference Deep LoRA − LoRA (mean ± std) and on how many seeds Deep LoRA is ahead —
# beside the same statistics from the authors' logs. The paper's average is taken over the same
# tasks as ours (its 8-task average is printed below the table).

# %%
def paired(frame, key_cols):
    """Per-seed LoRA and Deep LoRA scores side by side, and their difference (Deep − LoRA)."""
    wide = frame.pivot_table(index=[*key_cols, "seed"], columns="method", values="score").reset_index()
    wide["diff"] = wide[DEEP] - wide[LORA]
    return wide


def pm(values, scale_by=1.0, digits=2):
    v = np.asarray(values, dtype=float) * scale_by
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return "n/a"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def finite(x):
    x = float(x)
    return x if np.isfinite(x) else None


t1 = paired(runs[runs.part == "table1"], ["task"])
tasks = [t for t in p.table1_tasks if t in set(t1.task)]
pv = {m: paper_value("table1_glue_1024", m) for m in ("vanilla", "deep", "delta_std_over_seeds", "seeds_with_deep_better")}
metric_of = paper_value("table1_glue_1024", "metric")
chance = {t: chance_level(t) for t in tasks}
rows = []
for task in tasks:
    g = t1[t1.task == task]
    qqp_note = " †" if task == "qqp" and mirror_used else ""
    rows.append({
        "task": task + qqp_note, "metric": metric_of[task], "chance": f"{chance[task]:.1f}",
        f"LoRA — {PROVENANCE}": f"{pv['vanilla'][task]:.2f}",
        f"Deep LoRA — {PROVENANCE}": f"{pv['deep'][task]:.2f}",
        f"Deep − LoRA — {PROVENANCE}": f"{pv['deep'][task] - pv['vanilla'][task]:+.2f} ± {pv['delta_std_over_seeds'][task]:.2f}",
        f"Deep ahead — {PROVENANCE}": f"{pv['seeds_with_deep_better'][task]}/{paper_protocol['table1']['seeds']}",
        f"LoRA — {ours}": pm(g[LORA], 100),
        f"Deep LoRA — {ours}": pm(g[DEEP], 100),
        f"Deep − LoRA — {ours}": pm(g["diff"], 100),
        f"Deep ahead — {ours}": f"{int((g['diff'] > 0).sum())}/{len(g)}",
    })
complete = t1.dropna(subset=[LORA, DEEP]).groupby("seed")["task"].nunique() == len(tasks)
per_seed_avg = (t1[t1.seed.isin(complete[complete].index)]  # seeds with every task stored for both methods
                .groupby("seed")[[LORA, DEEP, "diff"]].mean())  # average over tasks, per seed
paper_avg = {m: float(np.mean([pv[m][t] for t in tasks])) for m in ("vanilla", "deep")}
rows.append({
    "task": f"average ({len(tasks)} tasks)", "metric": "", "chance": f"{np.mean(list(chance.values())):.1f}",
    f"LoRA — {PROVENANCE}": f"{paper_avg['vanilla']:.2f}", f"Deep LoRA — {PROVENANCE}": f"{paper_avg['deep']:.2f}",
    f"Deep − LoRA — {PROVENANCE}": f"{paper_avg['deep'] - paper_avg['vanilla']:+.2f}",
    f"Deep ahead — {PROVENANCE}": "",
    f"LoRA — {ours}": pm(per_seed_avg[LORA], 100), f"Deep LoRA — {ours}": pm(per_seed_avg[DEEP], 100),
    f"Deep − LoRA — {ours}": pm(per_seed_avg["diff"], 100),
    f"Deep ahead — {ours}": f"{int((per_seed_avg['diff'] > 0).sum())}/{len(per_seed_avg)}",
})
table1 = pd.DataFrame(rows)
display(table1.style.hide(axis="index").set_caption(
    f"Table 1, n = {p.table1_n} (paper: n = {paper_protocol['table1']['train_samples']}, bert-base-cased, "
    f"{paper_protocol['table1']['seeds']} seeds; ours: {scale_label(scale)}, {backbone}, {len(per_seed_avg)} seed(s))"
))
t1_gain = {t: float(t1[t1.task == t]["diff"].mean() * 100) for t in tasks}
t1_lora_avg, t1_deep_avg = float(per_seed_avg[LORA].mean() * 100), float(per_seed_avg[DEEP].mean() * 100)
best, worst = max(t1_gain, key=t1_gain.get), min(t1_gain, key=t1_gain.get)
display(Markdown(
    f"Paper, all 8 tasks: LoRA {pv['vanilla']['average']:.2f}, Deep LoRA {pv['deep']['average']:.2f} "
    f"(+{pv['deep']['average'] - pv['vanilla']['average']:.2f}). "
    f"Ours ({scale_label(scale)}, {len(tasks)} tasks, {len(per_seed_avg)} seed(s)): LoRA {t1_lora_avg:.2f}, "
    f"Deep LoRA {t1_deep_avg:.2f}, a gain of {t1_deep_avg - t1_lora_avg:+.2f} points "
    f"(paper on the same tasks: {paper_avg['deep'] - paper_avg['vanilla']:+.2f}). "
    f"Deep LoRA is ahead on average on {sum(v > 0 for v in t1_gain.values())} of {len(tasks)} tasks; the "
    f"largest gain is on {best} ({t1_gain[best]:+.2f}), the smallest on {worst} ({t1_gain[worst]:+.2f}). "
    f"At this scale each run takes {p.table1_steps} steps of batch 16, i.e. "
    f"{p.table1_steps * 16 / p.table1_n:.2f} passes over the n = {p.table1_n} examples "
    f"(paper: {paper_protocol['table1']['steps'] * 16 / paper_protocol['table1']['train_samples']:.1f})."
    + (" † QQP on the mirror is evaluated on held-out *train* pairs: not comparable to the paper." if "qqp" in tasks and mirror_used else "")
))
# How far the better method got from a constant predictor ("chance" column: 0 for Matthews and Pearson,
# the majority-class share of the validation split for accuracy).
CHANCE_MARGIN = 5.0  # points
above_chance = {t: max(t1[t1.task == t][m].mean() * 100 - chance[t] for m in (LORA, DEEP)) for t in tasks}
near = [t for t in tasks if above_chance[t] < CHANCE_MARGIN]
display(Markdown(
    "Distance of the better method from chance (points): "
    + ", ".join(f"{t} {above_chance[t]:+.1f}" for t in tasks) + ". "
    + (f"**On {len(near)} of {len(tasks)} tasks ({', '.join(near)}) neither method is {CHANCE_MARGIN:.0f} points above "
       f"chance**: after {p.table1_steps} steps"
       + (" with a frozen random head" if not p.train_head else "")
       + " the classifiers still predict (almost) a constant, so the differences there are noise, not evidence "
       "for or against Deep LoRA." if near else
       f"Both methods are at least {CHANCE_MARGIN:.0f} points above chance on every task.")
))

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.3, 1]})
x = np.arange(len(tasks))
w = 0.2
for k, (label, paper_key, method) in enumerate([("LoRA", "vanilla", LORA), ("Deep LoRA", "deep", DEEP)]):
    means = [t1[t1.task == t][method].mean() * 100 for t in tasks]
    stds = [t1[t1.task == t][method].std(ddof=1) * 100 if len(t1[t1.task == t]) > 1 else 0 for t in tasks]
    ax1.bar(x + (2 * k - 1.5) * w, [pv[paper_key][t] for t in tasks], w, color=COLORS[method], alpha=0.35,
            hatch="//", label=f"{label} — {paper_label}")
    ax1.bar(x + (2 * k - 0.5) * w, means, w, yerr=stds, color=COLORS[method], label=f"{label} — {ours}")
ax1.set_xticks(x, [t + (" †" if t == "qqp" and mirror_used else "") for t in tasks])
ax1.set_ylabel("final metric × 100")
ax1.set_title(f"Table 1 scores, n = {p.table1_n}")
ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
ax1.axhline(0, color="grey", lw=0.6)
for i, t in enumerate(tasks):
    d = t1[t1.task == t]["diff"].to_numpy() * 100
    ax2.scatter(np.full(len(d), i) + np.linspace(-0.12, 0.12, len(d)), d, color="tab:red", s=18, zorder=3,
                label=f"{ours}: one seed" if i == 0 else None)
    ax2.hlines(np.nanmean(d), i - 0.25, i + 0.25, color="tab:red", lw=2, label=f"{ours}: mean" if i == 0 else None)
    ax2.errorbar(i + 0.32, pv["deep"][t] - pv["vanilla"][t], yerr=pv["delta_std_over_seeds"][t], fmt="s", color="black",
                 ms=5, capsize=3, label=f"{paper_label}: mean ± std" if i == 0 else None)
ax2.axhline(0, color="grey", lw=0.8)
ax2.set_xticks(x, tasks)
ax2.set_ylabel("Deep LoRA − LoRA (points)")
ax2.set_title("paired per-seed differences")
ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
fig.suptitle(f"Table 1 ({scale_label(scale)}, {backbone} vs paper's bert-base-cased)")
fig.tight_layout()
plt.show()

# %% [markdown]
# Left: the mean score of each method (error bars: std over seeds) next to the paper's (hatched).
# Right: every seed's paired difference. A point above zero is a seed on which Deep LoRA beat LoRA
# on the *same* training sample; the black squares are the paper's mean difference ± its std over
# 10 seeds.

# %% [markdown]
# ## Fig. 6: STS-B with 16 to 256 examples
#
# Pearson correlation on the STS-B validation split after training on $n$ examples, every seed
# shown; the dashed lines and band are the paper's mean ± std.

# %%
def near_zero_note(frame, key, margin=CHANCE_MARGIN / 100):
    """A warning when no method's mean Pearson (chance: 0) at any setting ``key`` is more than ``margin`` above zero."""
    best_mean = float(frame.groupby(key)[[LORA, DEEP]].mean().max().max())
    if best_mean > margin:
        return ""
    return (f"**The best mean Pearson here is {best_mean:.3f}, within {margin:.2f} of a constant predictor**: "
            "with these few steps neither method has learned STS-B yet, so the comparison is noise.")


f6 = paired(runs[runs.part == "fig6"], ["n_train"])
f6_n = sorted(f6.n_train.unique())
paper6 = {m: paper_value("figure6_stsb_fewshot", m) for m in ("vanilla", "deep")}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for label, paper_key, method in [("LoRA", "vanilla", LORA), ("Deep LoRA", "deep", DEEP)]:
    c = COLORS[method]
    means = [f6[f6.n_train == n][method].mean() for n in f6_n]
    for n in f6_n:
        v = f6[f6.n_train == n][method]
        ax1.scatter(np.full(len(v), n) * (1.04 if method == DEEP else 0.96), v, color=c, s=12, alpha=0.6)
    ax1.plot(f6_n, means, "o-", color=c, label=f"{label} — {ours}")
    pn = [int(n) for n in paper6[paper_key]]
    pm_ = np.array([paper6[paper_key][str(n)]["mean"] for n in pn])
    ps = np.array([paper6[paper_key][str(n)]["std"] for n in pn])
    ax1.plot(pn, pm_, "--", color=c, label=f"{label} — {paper_label}")
    ax1.fill_between(pn, pm_ - ps, pm_ + ps, color=c, alpha=0.1)
ax1.set_xscale("log", base=2)
ax1.set_xlabel("training examples n")
ax1.set_ylabel("STS-B Pearson")
ax1.set_title("Pearson vs n")
ax1.legend(fontsize=7)
for i, n in enumerate(f6_n):
    d = f6[f6.n_train == n]["diff"].to_numpy()
    ax2.scatter(np.full(len(d), i) + np.linspace(-0.1, 0.1, len(d)), d, color="tab:red", s=18, zorder=3,
                label=f"{ours}: one seed" if i == 0 else None)
    ax2.hlines(np.nanmean(d), i - 0.25, i + 0.25, color="tab:red", lw=2, label=f"{ours}: mean" if i == 0 else None)
    if str(n) in paper6["deep"]:
        ax2.plot(i + 0.32, paper6["deep"][str(n)]["mean"] - paper6["vanilla"][str(n)]["mean"], "s", color="black",
                 label=f"{paper_label}: mean difference" if i == 0 else None)
ax2.axhline(0, color="grey", lw=0.8)
ax2.set_xticks(range(len(f6_n)), [f"n = {n}" for n in f6_n])
ax2.set_ylabel("Deep LoRA − LoRA (Pearson)")
ax2.set_title("paired per-seed differences")
ax2.legend(fontsize=7, loc="best")
fig.suptitle(f"Fig. 6: STS-B few-shot ({scale_label(scale)}, {backbone} vs paper's bert-base-cased)")
fig.tight_layout()
plt.show()

rows6 = []
for n in f6_n:
    g = f6[f6.n_train == n]
    has = str(n) in paper6["deep"]
    rows6.append({
        "n": n,
        f"LoRA — {PROVENANCE}": f"{paper6['vanilla'][str(n)]['mean']:.3f} ± {paper6['vanilla'][str(n)]['std']:.3f}" if has else "—",
        f"Deep LoRA — {PROVENANCE}": f"{paper6['deep'][str(n)]['mean']:.3f} ± {paper6['deep'][str(n)]['std']:.3f}" if has else "—",
        f"Deep − LoRA — {PROVENANCE}": f"{paper6['deep'][str(n)]['mean'] - paper6['vanilla'][str(n)]['mean']:+.3f}" if has else "—",
        f"LoRA — {ours}": pm(g[LORA], digits=3), f"Deep LoRA — {ours}": pm(g[DEEP], digits=3),
        f"Deep − LoRA — {ours}": pm(g["diff"], digits=3),
        f"Deep ahead — {ours}": f"{int((g['diff'] > 0).sum())}/{len(g)}",
    })
display(pd.DataFrame(rows6).style.hide(axis="index").set_caption(
    f"Fig. 6, STS-B Pearson (paper: {paper_protocol['fig6']['seeds']} seeds, {paper_protocol['fig6']['steps']} steps; "
    f"ours: {len(p.fig6_seeds)} seed(s), {p.fig6_steps} steps, {scale_label(scale)})"
))
f6_gain = {n: float(f6[f6.n_train == n]["diff"].mean()) for n in f6_n}
f6_wins = {n: int((f6[f6.n_train == n]["diff"] > 0).sum()) for n in f6_n}
display(Markdown(
    "Mean paired gain of Deep LoRA in Pearson: "
    + ", ".join(f"n = {n}: {f6_gain[n]:+.3f} (ahead on {f6_wins[n]} of {int((f6.n_train == n).sum())} seeds"
                + (f"; paper {paper6['deep'][str(n)]['mean'] - paper6['vanilla'][str(n)]['mean']:+.3f}" if str(n) in paper6['deep'] else "")
                + ")" for n in f6_n)
    + f". The paper's claim: \"{paper_value('figure6_stsb_fewshot', 'paper_claim')}\". "
    + (f"Ours is largest at n = {max(f6_gain, key=f6_gain.get)}. " if len(f6_n) > 1 else "")
    + near_zero_note(f6, "n_train")
))

# %% [markdown]
# ## Fig. 7: numerical rank of every update
#
# For the STS-B runs with $n = 256$, seed 0, the rank of each adapted $\Delta W$ after training,
# with the paper's rules: for Deep LoRA, 0 if $\lVert \Delta W \rVert_2 \le 10^{-3}$, else
# $\min(\operatorname{rank}(\Delta W), r)$; for LoRA, `matrix_rank` with numpy's default tolerance
# ($\sigma_{\max} \cdot \max(m, n) \cdot \epsilon_{\text{float32}}$). The ranks and the top singular values
# are computed by `training.Runner` at the end of each run and stored with it. The paper gives
# this figure as a histogram only (no table), so its claim is quoted beside ours.

# %%
f7 = {e.label: load_runs(e)[0] for e in experiments if e.part == "fig7"}
r7 = next(e.config.rank for e in experiments if e.part == "fig7")
ranks7 = {m: np.array([v["rank"] for v in f7[m]["spectra"].values()]) for m in (LORA, DEEP)}
norms7 = {m: np.array([v["singular_values"][0] for v in f7[m]["spectra"].values()]) for m in (LORA, DEEP)}
n_mod = len(ranks7[DEEP])
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
for k, m in enumerate((LORA, DEEP)):
    counts = np.bincount(ranks7[m], minlength=r7 + 1)[: r7 + 1]
    ax1.bar(np.arange(r7 + 1) + (k - 0.5) * 0.4, counts, 0.4, color=COLORS[m], label=f"{m} ({n_mod} updates)")
ax1.set_xticks(np.arange(r7 + 1))
ax1.set_xlabel(f"numerical rank of ΔW (r = {r7})")
ax1.set_ylabel("number of adapted weights")
ax1.set_title(f"{ours}")
ax1.legend(fontsize=8)
for k, m in enumerate((LORA, DEEP)):
    ax2.scatter(np.arange(n_mod) + 0.15 * k, norms7[m], color=COLORS[m], s=14, label=m)
ax2.axhline(1e-3, color="black", ls=":", lw=1, label="1e-3 (Deep LoRA rank-0 threshold)")
ax2.set_yscale("log")
ax2.set_xlabel("adapted weight (block order)")
ax2.set_ylabel(r"$\|\Delta W\|_2$")
ax2.set_title("spectral norm of every update")
ax2.legend(fontsize=8)
fig.suptitle(f"Fig. 7: STS-B, n = {p.fig7_n}, seed 0, {p.fig7_steps} steps ({scale_label(scale)}, {backbone}); "
             f"paper: {paper_protocol['fig6']['steps']} steps, bert-base-cased", fontsize=10)
fig.tight_layout()
plt.show()

f7_deep_rank0 = float(np.mean(ranks7[DEEP] == 0))
f7_deep_median = float(np.median(ranks7[DEEP]))
f7_lora_full = float(np.mean(ranks7[LORA] == r7))
display(pd.DataFrame([
    {"": PROVENANCE + ", bert-base-cased", "claim": paper_value("figure7_numerical_rank", "paper_claim")},
    {"": ours, "claim": (
        f"{100 * f7_lora_full:.0f}% of LoRA updates have rank {r7} (median {np.median(ranks7[LORA]):.0f}); "
        f"Deep LoRA: {100 * f7_deep_rank0:.0f}% rank 0, {100 * np.mean(ranks7[DEEP] <= 4):.0f}% rank ≤ 4, "
        f"median {f7_deep_median:.0f}")},
]).style.hide(axis="index").set_caption(f"Fig. 7 ({n_mod} adapted weights per method)"))
display(Markdown(
    f"Of the {n_mod} updates, LoRA's have median rank {np.median(ranks7[LORA]):.0f} and "
    f"{100 * f7_lora_full:.0f}% reach the full width r = {r7}; Deep LoRA's have median rank {f7_deep_median:.0f}, and "
    f"{100 * f7_deep_rank0:.0f}% stay below the 1e-3 threshold (rank 0). The largest Deep LoRA update has "
    f"$\\|\\Delta W\\|_2$ = {norms7[DEEP].max():.2e}, the largest LoRA one {norms7[LORA].max():.2e}. "
    "LoRA's rank is full by construction as soon as $B \\ne 0$ ($A$ is a dense Gaussian), whatever the task needs; "
    "Deep LoRA's depth-3 product starts at about $\\varepsilon^3 = 10^{-9}$ and grows only in the directions the "
    "loss keeps pushing, "
    + ("so here, as in the paper, most adapted weights are left numerically untouched (rank 0)."
       if f7_deep_rank0 > 0.5 else
       f"but here only {100 * f7_deep_rank0:.0f}% of the updates stay at rank 0, not the majority the paper reports.")
))

# %% [markdown]
# ## Fig. 8: robustness to the rank $r$
#
# STS-B with $n = 16$ examples, one full batch per step, for several adapter widths $r$. The paper
# finds vanilla LoRA degrades as $r$ grows (it over-fits the 16 examples with more directions),
# while Deep LoRA's low-rank bias makes $r$ an upper bound that does not need tuning.

# %%
f8 = paired(runs[runs.part == "fig8"], ["rank"])
f8_r = sorted(int(r) for r in f8["rank"].unique())
paper8 = {m: paper_value("figure8_rank_sweep_stsb16", m) for m in ("vanilla", "deep")}
fig, ax = plt.subplots(figsize=(7, 4))
for label, paper_key, method in [("LoRA", "vanilla", LORA), ("Deep LoRA", "deep", DEEP)]:
    c = COLORS[method]
    for r in f8_r:
        v = f8[f8["rank"] == r][method]
        ax.scatter(np.full(len(v), r) * (1.04 if method == DEEP else 0.96), v, color=c, s=12, alpha=0.6)
    means = [f8[f8["rank"] == r][method].mean() for r in f8_r]
    ax.plot(f8_r, means, "o-", color=c, label=f"{label} — {ours}")
    pr = sorted(int(r) for r in paper8[paper_key])
    ax.plot(pr, [paper8[paper_key][str(r)] for r in pr], "--", marker="s", ms=4, color=c, alpha=0.7,
            label=f"{label} — {paper_label}")
ax.set_xscale("log", base=2)
ax.set_xlabel("adapter rank r")
ax.set_ylabel("STS-B Pearson")
ax.legend(fontsize=7)
ax.set_title(f"Fig. 8: STS-B, n = {p.fig8_n}, {p.fig8_steps} steps, {len(p.fig8_seeds)} seed(s) "
             f"({scale_label(scale)}, {backbone})\npaper: {paper_protocol['fig8']['steps']} steps, "
             f"{paper_protocol['fig8']['seeds']} seeds, bert-base-cased", fontsize=9)
fig.tight_layout()
plt.show()

rows8 = []
for r in f8_r:
    g = f8[f8["rank"] == r]
    has = str(r) in paper8["deep"]
    rows8.append({
        "r": r,
        f"LoRA — {PROVENANCE}": f"{paper8['vanilla'][str(r)]:.3f}" if has else "—",
        f"Deep LoRA — {PROVENANCE}": f"{paper8['deep'][str(r)]:.3f}" if has else "—",
        f"LoRA — {ours}": pm(g[LORA], digits=3), f"Deep LoRA — {ours}": pm(g[DEEP], digits=3),
        f"Deep − LoRA — {ours}": pm(g["diff"], digits=3),
        f"Deep ahead — {ours}": f"{int((g['diff'] > 0).sum())}/{len(g)}",
    })
display(pd.DataFrame(rows8).style.hide(axis="index").set_caption(
    f"Fig. 8, STS-B Pearson at n = {p.fig8_n} (paper: means over {paper_protocol['fig8']['seeds']} seeds)"
))
f8_mean = {m: {r: float(f8[f8["rank"] == r][m].mean()) for r in f8_r} for m in (LORA, DEEP)}
lo, hi = f8_r[0], f8_r[-1]
drop = {m: f8_mean[m][lo] - f8_mean[m][hi] for m in (LORA, DEEP)}
paper_drop = {k: paper8[k][str(lo)] - paper8[k][str(hi)] for k in ("vanilla", "deep")} \
    if str(lo) in paper8["deep"] and str(hi) in paper8["deep"] else None
display(Markdown(
    f"From r = {lo} to r = {hi}, LoRA's mean Pearson changes by {-drop[LORA]:+.3f} and Deep LoRA's by "
    f"{-drop[DEEP]:+.3f}"
    + (f" (paper: LoRA {-paper_drop['vanilla']:+.3f}, Deep LoRA {-paper_drop['deep']:+.3f})" if paper_drop else "")
    + f". The paper's claim: \"{paper_value('figure8_rank_sweep_stsb16', 'paper_claim')}\". "
    f"Note the paper's Fig. 8 Deep LoRA is the narrow *uncompressed* width-r adapter at lr 1e-4 "
    f"(\"{paper_value('figure8_rank_sweep_stsb16', 'protocol', 'deep_variant')}\"); ours is the compressed one. "
    + near_zero_note(f8, "rank")
))

# %% [markdown]
# ## Every paired difference
#
# Deep LoRA − LoRA for every seed of every experiment above (Table 1 in points ×100, Figs. 6 and 8
# in Pearson). Within a row both methods saw the same training examples in the same order and
# started from the same random head, so each entry is a like-for-like comparison.

# %%
per_seed = pd.concat([
    t1.assign(experiment=[f"Table 1, {t}" for t in t1.task], diff=t1["diff"] * 100),
    f6.assign(experiment=[f"Fig. 6, n = {n}" for n in f6.n_train]),
    f8.assign(experiment=[f"Fig. 8, r = {r}" for r in f8["rank"]]),
]).pivot_table(index="experiment", columns="seed", values="diff")
per_seed = per_seed.reindex([f"Table 1, {t}" for t in tasks] + [f"Fig. 6, n = {n}" for n in f6_n]
                            + [f"Fig. 8, r = {r}" for r in f8_r])
per_seed.columns = [f"seed {s}" for s in per_seed.columns]
per_seed["Deep ahead"] = [f"{int((row.dropna() > 0).sum())}/{int(row.notna().sum())}" for _, row in per_seed.iterrows()]
per_seed.style.format(precision=3, na_rep="—").set_caption(
    f"Deep LoRA − LoRA per seed ({scale_label(scale)}, {backbone})")

# %% [markdown]
# ## Summary for the scorecard
#
# Keys written to `summaries/fewshot_glue.json` (Table 1 values are points ×100, as in the paper;
# Fig. 6 and Fig. 8 values are Pearson correlations in $[-1, 1]$; every gain is the mean over seeds of
# the paired difference Deep LoRA − LoRA; a value is `null` when the metric was undefined):
#
# - `backbone`, `table1_n`, `table1_tasks` (list), `table1_seeds` (count), `table1_lora_<task>`,
#   `table1_deep_<task>`, `table1_gain_<task>`, `table1_deep_wins_<task>` (seeds with Deep ahead),
#   `table1_lora_average`, `table1_deep_average`, `table1_average_gain` (over our tasks),
#   `table1_paper_average_gain_same_tasks` (the paper's gain over the same tasks),
#   `table1_tasks_above_chance` (tasks on which the better method is at least 5 points above chance);
# - `fig6_n` (list), `fig6_seeds` (count), `fig6_lora_n<n>`, `fig6_deep_n<n>`, `fig6_gain_n<n>`,
#   `fig6_deep_wins_n<n>`;
# - `fig7_n_updates`, `fig7_rank_cap`, `fig7_deep_fraction_rank0`, `fig7_deep_median_rank`,
#   `fig7_lora_fraction_full_rank`, `fig7_lora_median_rank`;
# - `fig8_ranks` (list), `fig8_seeds` (count), `fig8_lora_<r>`, `fig8_deep_<r>`,
#   `fig8_lora_drop_smallest_to_largest_r`, `fig8_deep_drop_smallest_to_largest_r`
#   (mean at the smallest r minus mean at the largest; positive = worse at large r).

# %%
summary = {
    "backbone": backbone,
    "table1_n": int(p.table1_n),
    "table1_tasks": list(tasks),
    "table1_seeds": int(len(per_seed_avg)),
    "table1_lora_average": finite(t1_lora_avg),
    "table1_deep_average": finite(t1_deep_avg),
    "table1_average_gain": finite(t1_deep_avg - t1_lora_avg),
    "table1_paper_average_gain_same_tasks": paper_avg["deep"] - paper_avg["vanilla"],
    "table1_tasks_above_chance": [t for t in tasks if above_chance[t] >= CHANCE_MARGIN],
}
for task in tasks:
    g = t1[t1.task == task]
    summary[f"table1_lora_{task}"] = finite(g[LORA].mean() * 100)
    summary[f"table1_deep_{task}"] = finite(g[DEEP].mean() * 100)
    summary[f"table1_gain_{task}"] = finite(t1_gain[task])
    summary[f"table1_deep_wins_{task}"] = int((g["diff"] > 0).sum())
summary["fig6_n"] = [int(n) for n in f6_n]
summary["fig6_seeds"] = int(len(p.fig6_seeds))
for n in f6_n:
    g = f6[f6.n_train == n]
    summary[f"fig6_lora_n{n}"] = finite(g[LORA].mean())
    summary[f"fig6_deep_n{n}"] = finite(g[DEEP].mean())
    summary[f"fig6_gain_n{n}"] = finite(f6_gain[n])
    summary[f"fig6_deep_wins_n{n}"] = f6_wins[n]
summary.update({
    "fig7_n_updates": int(n_mod), "fig7_rank_cap": int(r7),
    "fig7_deep_fraction_rank0": f7_deep_rank0, "fig7_deep_median_rank": f7_deep_median,
    "fig7_lora_fraction_full_rank": f7_lora_full, "fig7_lora_median_rank": float(np.median(ranks7[LORA])),
    "fig8_ranks": f8_r, "fig8_seeds": int(len(p.fig8_seeds)),
})
for r in f8_r:
    summary[f"fig8_lora_{r}"] = finite(f8_mean[LORA][r])
    summary[f"fig8_deep_{r}"] = finite(f8_mean[DEEP][r])
summary["fig8_lora_drop_smallest_to_largest_r"] = finite(drop[LORA])
summary["fig8_deep_drop_smallest_to_largest_r"] = finite(drop[DEEP])
path = save_summary("fewshot_glue", scale, summary)
display(Markdown(f"Wrote {len(summary)} keys to `{path.name}`."))

# %% [markdown]
# **Reading these results.** The paper's numbers come from `bert-base-cased` with full-width
# uncompressed Deep LoRA adapters, 10–20 seeds and hundreds of steps. Outside the `paper` scale,
# ours come from a smaller backbone, the compressed method, a few seeds and far fewer steps (and, at
# `ci` scale, a trained head and $\gamma = 0.1$), so only the direction of the paired differences and
# the rank statistics of Fig. 7 are meant to be compared. Few steps favour the method that moves
# first: LoRA's update is linear in $B$ from step 1, while Deep LoRA's depth-3 product starts at
# $\varepsilon^3 = 10^{-9}$ and needs some steps to leave the origin. The paper's $n = 1024$ runs take 1000
# steps (about 16 passes over the data) and its STS-B runs 200–500; the `paper` scale (`python -m compressible.sweeps run fewshot_glue --scale paper
# --device cuda`) runs the full protocol.
