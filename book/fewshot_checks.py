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
#     figures: 3
#     needs: [fewshot_glue]
# ---

# %% [markdown]
# # Few-shot GLUE: did the runs train?
#
# *Paper: Sec. 4; the checks behind Table 1 and Figs. 6 and 8 ({doc}`fewshot_glue`, {doc}`fewshot_glue_tasks`).*
#
# A paired difference between two methods is evidence only if both runs trained. This page reads the
# same runs as {doc}`fewshot_glue` (from the result store and the ledger; it computes nothing the
# store holds) and asks of them what the comparisons take for granted:
#
# - **What a run that did not train looks like**: what the frozen random head sees, along the run;
# - **did every run train?**: each run's final training loss against that of a constant predictor;
# - **why compressed Deep LoRA stalls** where it does: one change at a time, on the stalled seeds;
# - **what bf16 autocast changes**: a few runs repeated in float32.
#
# The scorecard compares only the seeds where both methods trained.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from compressible.experiments import fewshot_glue as fg
from compressible.experiments.fewshot_glue import figures, tables
from compressible.experiments.fewshot_glue.words import diagnosis_words, probe_words
from compressible.scales import scale_label

device = "cuda" if torch.cuda.is_available() else "cpu"
p = fg.plan(scale)
results = fg.run(p, device=device, scale=scale)
summary = fg.summarise(results)
f8 = summary.fig8

# %% [markdown]
# ## What a run that did not train looks like
#
# The head and the pooler are frozen at random (the authors' protocol), so the adapters can lower the
# loss only by changing what reaches them. Every run records, at step 0, every tenth of its steps and at the end, what the
# head sees on the run's first batch of 16 examples: the *spread* of its input over the examples
# (mean over features of their standard deviation) and the share of the pooler's tanh units beyond
# $\pm 0.99$, where tanh passes under 2 % of its gradient. These probes run with dropout off and draw
# no random numbers, so they change nothing in the runs. A run is *collapsed* when the spread ends below
# a tenth of its start: every example then looks alike to the frozen head, which can only predict one value.
#
# The figure and the table show the Fig. 8 runs ($n = 16$, every rank $r$), where the seeds that did not
# train and those that did share one sample and one head.

# %%
figures.plot_fig8_probes(results, summary)
plt.show()
display(tables.fig8_probe_table(summary).style.hide(axis="index").set_caption(
    f"Fig. 8 runs: the head's input at the end against its start, per seed ({scale_label(scale)})"))
found = None if f8 is None else f8.probe_findings
if f8 is not None and found is None:
    display(Markdown("These runs were stored without probes of the head's input, so what stopped a run is not shown here."))
elif found is not None:
    display(Markdown(probe_words(found)))

# %% [markdown]
# ## Did every run train?
#
# Before any comparison counts, every run has to have trained: a run whose training loss stays near that
# of a constant predictor (the sample's mean label, for STS-B's MSE) has learned nothing, and comparing
# it is comparing noise. The check flags every run whose final loss (mean of its last 10 steps) is not
# below half of it; per experiment, how many runs passed. The curves are the Fig. 6 runs at the
# largest $n$, where one batch of 16 no longer holds the whole sample: a method whose loss stays near
# its start there is a bug or a wrong rate until shown otherwise.

# %%
check = summary.training
if not check.untrained:
    display(Markdown(f"All {len(check.runs)} runs trained: each one's final training loss (mean of its last 10 steps) "
                     f"is below {check.fraction:g}× the loss of predicting its sample's mean label."))
else:
    shown = ", ".join(check.untrained[:12]) + (" ..." if len(check.untrained) > 12 else "")
    display(Markdown(f"**{len(check.untrained)} of {len(check.runs)} runs did not train** (final loss not below "
                     f"{check.fraction:g}× the constant predictor's): {shown}. Their scores are reported but say "
                     "nothing about the method."))
display(tables.training_table(check).style.hide(axis="index").set_caption(
    f"Training check ({scale_label(scale)}): final loss against the constant predictor's"))

# %%
figures.plot_training_curves(results.curves, f"Training loss, STS-B, n = {max(p.fig6.n)} ({scale_label(scale)}, {p.backbone})")
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
# Every run also probes what the frozen head sees (as in the Fig. 8 runs above): the spread of its input over
# the run's first batch, at step 0 and every tenth of the run; below a tenth of its start the run has
# **collapsed**. The column "rank-one updates" counts the adapted weights whose update has a second
# singular value under 1 % of its first: what a run learned, not only how far its loss fell.

# %%
d = summary.diagnosis
if d is None:
    display(Markdown("No diagnosis runs at this scale."))
else:
    display(Markdown(diagnosis_words(d)))
    display(tables.diagnosis_table(d).style.hide(axis="index").set_caption(
        f"Diagnosis at n = {d.n} ({scale_label(scale)}): final training loss (last 10 steps) / constant predictor's"))

# %% [markdown]
# A validation Pearson of "n/a" means the run's predictions on the validation pairs were all the
# same: a constant predictor has no correlation, which is what a loss sitting on the dotted line
# below means. Right: the spread of the head's input along the same runs; below the dotted line a run
# has collapsed.

# %%
if d is not None:
    figures.plot_training_curves(results.diagnosis, f"Training loss, STS-B, n = {d.n}: Fig. 6 runs and one change each "
                                 f"({scale_label(scale)})")
    plt.show()

# %% [markdown]
# ## bf16 autocast against float32
#
# The ci scale runs the frozen backbone's forward and backward under bf16 autocast (adapters, head,
# loss and Adam's state stay float32), which halves the cost of a step on a CPU with native bf16. A
# few runs are repeated in float32: the same runs (same sample, batch order, random head and pooler,
# adapters) beside their bf16 twins. A difference smaller than the seed-to-seed spread cannot move a
# verdict that rests on paired differences over seeds.

# %%
pr = summary.precision
if pr is None:
    display(Markdown("At this scale every run computes in float32: there is nothing to compare."))
elif pr.autocast == "off":
    display(Markdown("bf16 autocast was not available on this machine: both columns ran in float32."))
else:
    verdict = ("within the seed-to-seed noise" if pr.within_noise else
               "**by more than the seed-to-seed noise**: treat bf16 numbers with care")
    ratio = "" if pr.step_ratio is None else f" Training seconds per step, float32 / bf16, in these runs: {pr.step_ratio:.2f}×."
    display(Markdown(f"{pr.method} at n = {pr.n}, seeds {', '.join(map(str, pr.seeds))}: bf16 autocast changed the final "
                     f"Pearson by at most {pr.max_abs_difference:.3f} (mean {pr.mean_difference:+.3f}), against a "
                     f"seed-to-seed std of {pr.seed_std:.3f}: {verdict}.{ratio}"))
if pr is not None:
    display(tables.precision_table(pr).style.hide(axis="index").set_caption(
        f"Final validation Pearson, float32 vs bf16 autocast ({scale_label(scale)})"))

# %% [markdown]
# The step-time ratio above comes from these runs' own timings; `benchmarks/autocast.py` measures it
# on a fixed batch with interleaved repetitions.
