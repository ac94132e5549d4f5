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
from compressible.experiments.fewshot_glue.diagnosis import Cause, DiagnosisOutcome
from compressible.experiments.fewshot_glue.probes import COLLAPSED
from compressible.experiments.glue_stats import DEEP, LORA
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
    lines = [f"Of the {found.trained} runs that trained, {found.trained_collapsed} ended collapsed."]
    if not found.untrained:
        lines.append("Every run trained, so there is no stall to explain here.")
    else:
        collapsed, saturated = (", ".join(f"{x.method} r = {x.rank} seed {x.seed}" for x in runs) or "none"
                                for runs in (found.collapsed, found.saturated))
        lines.append(f"Of the {len(found.untrained)} runs that did not train, {len(found.collapsed)} ended collapsed "
                     f"({collapsed}); {len(found.saturated)} ended with over half of the pooler's units "
                     f"saturated ({saturated}), where tanh passes under 2 % of its gradient, so little is "
                     "left to undo the collapse.")
    if found.collapse_marks_stall:
        lines.append("So each run that did not train ended mapping every example to nearly one point in front of the "
                     "frozen random pooler and head, with a training loss near that of predicting the label mean, while "
                     "no run that trained did: these runs stalled in training, and their validation Pearson says nothing "
                     "about how the method generalises.")
    display(Markdown(" ".join(lines)))

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
CAUSE = {
    Cause.FIRST_BATCH: "the subspace the first batch gives the outer factors",
    Cause.OUTER_TOO_FAST: "outer factors that move too fast (γ too large)",
    Cause.OUTER_TOO_SLOW: "outer factors that move too slowly to leave their first subspace",
    Cause.INNER_RATE: "an inner rate too large for batches that differ from step to step",
    Cause.PLATEAU: "a plateau that outlasts Fig. 6's steps (a slow run rather than a stuck one)",
}

d = summary.diagnosis
if d is None:
    display(Markdown("No diagnosis runs at this scale."))
else:
    k, stalled, c, one = len(d.seeds), ", ".join(map(str, d.stalled)), d.collapse, d.rank_one
    head = (f"At n = {d.n} (seed{'s' if k > 1 else ''} {', '.join(map(str, d.seeds))}), LoRA trained on "
            f"{d.trained(LORA)} of {k} and compressed Deep LoRA at the chosen rates on {d.trained(DEEP)}; "
            + "; ".join(f"**{label}**: {d.trained(label)} of {k} trained" for label in d.variants) + ". ")
    collapse = "" if c is None else (
        f"{'Every stalled run' if len(c.ratios) > 1 else 'The stalled run'} *collapsed*: by step {c.step} the spread of "
        f"the head's input over the first batch fell below {COLLAPSED:g} of its start, and it ended at "
        f"{' / '.join(f'{v:.3f}' for v in c.ratios)} of it"
        + (f" (LoRA's, same seed{'s' if len(c.lora_ratios) > 1 else ''}: {' / '.join(f'{v:.3f}' for v in c.lora_ratios)})"
           if c.lora_ratios else "")
        + ". Every example then reaches the frozen head as nearly the same input, so the run can only predict one "
          "value, the label mean"
        + (f"; {'none' if c.max_saturated == 0 else f'at most {c.max_saturated:.0%}'} of the pooler's tanh units ended "
           "saturated, so the pooler did not block the gradient" if c.pooler_clear else "") + ".")
    if c is not None and not c.kept:
        collapse += " No change kept these seeds from collapsing."
    elif c is not None:
        cause = ("outer factors that move too fast" if c.causes == [Cause.OUTER_TOO_FAST] and len(c.kept) > 1
                 else " or ".join(CAUSE[x] for x in c.causes))
        collapse += (
            " " + "; ".join(f"*{label}* (head input at the end {' / '.join(f'{v:.3f}' for v in c.kept_ratios[label])} of "
                            "its start; final loss " + " / ".join(f"{v:.2f}" for v in c.kept_losses[label]) + ")"
                            for label in c.kept)
            + f" kept seed{'s' if len(c.ratios) > 1 else ''} {stalled} from collapsing and ended with a lower training "
            f"loss than Fig. 6's run ({' / '.join(f'{v:.2f}' for v in c.baseline_losses)})"
            + (f"; {'each of these changes lowers' if len(c.kept) > 1 else 'it lowers'} the outer factors' Adam rate "
               f"(γ times the inner rate) from {c.outer_rate_from:g} to {c.outer_rate_to:g}" if c.outer_rate_to is not None
               else "")
            + f", though within {c.kept_steps} steps "
            + {1: "it did not pass", 2: "neither passed"}.get(len(c.kept), "none of them passed")
            + f" the training check. So the collapse comes from {cause}, not from a broken method.")
    if one is None:
        rank_one = "These runs stored no update spectra, so what the stalled adapters learned is not shown here."
    elif not one.label_mean:
        rank_one = (f"{one.deep_share:.0%} of the stalled runs' updates are rank one"
                    + ("" if one.lora_share is None else f" (LoRA's: {one.lora_share:.0%})")
                    + ": the spectra do not single out one cause here.")
    else:
        rank_one = (f"What the stalled runs did learn: {one.deep_share:.0%} of their weight updates are rank one (second "
                    "singular value under 1 % of the first)"
                    + ("" if one.lora_share is None else f", against {one.lora_share:.0%} of LoRA's")
                    + f", and their training loss went from {one.first_loss:.2f} over the first 10 steps to "
                    f"{one.last_loss:.2f} over the last 10, against {one.baseline:.2f} for predicting the label mean: in "
                    "their steps they fitted the label mean, one direction per weight, and little else.")
    tail = " ".join(x for x in (collapse, rank_one) if x)
    if d.outcome == DiagnosisOutcome.NO_STALL:
        conclusion = ("The compressed runs trained at these seeds, so this build has no stall to diagnose; the variants "
                      "show only how much the changes matter when training works.")
    elif d.outcome == DiagnosisOutcome.NO_VARIANT:
        conclusion = (f"No change was run at seed(s) {stalled} (the plan's only variant would have repeated the Fig. 6 "
                      f"runs at the chosen rates). {rank_one}")
    elif d.outcome == DiagnosisOutcome.NOT_FIXED:
        conclusion = (f"No change made the stalled seed(s) {stalled} pass the training check within its steps ("
                      + ("the change tests one cause: " if len(d.variants) == 1 else "the changes, each testing one cause: ")
                      + "; ".join(f"*{label}*: {CAUSE[d.causes[label]]}" for label in d.variants) + "). " + tail)
    else:
        ruled_out = [CAUSE[d.causes[label]] for label in d.variants if label not in d.fixes]
        conclusion = (f"Every stalled seed ({stalled}) trained with " + " and with ".join(f"*{f}*" for f in d.fixes)
                      + ": the stall comes from " + " or ".join(CAUSE[d.causes[f]] for f in d.fixes)
                      + ", not from a broken method" + (f"; {' and '.join(ruled_out)} did not make it train" if ruled_out else "")
                      + f" (on {k} seed{'s' if k > 1 else ''}: a diagnosis, not an estimate). " + tail)
    display(Markdown(head + conclusion))
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
