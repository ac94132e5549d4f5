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
# ---

# %% [markdown]
# # Deep matrix completion
#
# *Paper: Sec. 3, Fig. 1, Fig. 5 and App. D.1.*
#
# In matrix completion only a fraction $p$ of the entries of a rank-$r^*$ target $\Phi$ is seen:
# with a mask $\Omega$ the model is trained on $\tfrac12\lVert\Omega \odot (f(\Theta) - \Phi)\rVert_F^2$
# (divided by all $d^2$ entries, as in the authors' code) and judged by the same quantity on the
# unseen entries $1 - \Omega$, the *recovery error*. Targets are $d \times d$ standard Gaussian
# matrices truncated to their top $r^*$ singular terms; masks observe exactly $\lfloor p d^2 \rfloor$
# entries drawn without replacement. Three findings of the paper {cite}`yaras2024compressible`
# are rerun here:
#
# 1. **Depth and width (Fig. 1).** With a width (rank estimate) above $r^*$ a depth-2 factorisation
#    overfits, a depth-3 one does not; wider models need fewer iterations.
# 2. **Compression with a discrepant step (Fig. 5).** With a mask, the compressed model of the
#    previous chapter with frozen outer factors ($\gamma = 0$) drifts away from the original. Training
#    $U_{L,1}, V_{1,1}$ as well, with the small step $\gamma\eta$, restores it, at a cost per
#    iteration of $O((L + d) r^2)$ plus the masked residual instead of $O(L d^3)$.
# 3. **Not just any narrow model (App. D.1).** The compressed model is faster than a narrow
#    factorisation of the same width $2\hat r$ with a random orthogonal initialisation.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from compressible.experiments import completion as experiment
from compressible.scales import scale_label
from compressible.summaries import save_summary

plan = experiment.plan(scale)
runs = experiment.run(scale)
summary = experiment.summarise(runs, plan, scale)
save_summary(summary)
c2, c3 = plan.fig1
race, d1 = plan.race, plan.d1
display(Markdown(f"**Scale:** {scale_label(scale)} — {plan.notes}."))

# %% [markdown]
# ## Depth, width and generalisation (Fig. 1)
#
# Narrow factorisations of width $w$ (an $\varepsilon$-scaled orthogonal slice per factor; width
# $d$ is the full-width model) trained to a train loss below the tolerance, several independent
# problems at once (the trials run as one batched tensor program).

# %%
display(Markdown(
    f"Setting: $d = {c3.d}$, $r^* = {c3.true_rank}$, $p = {c3.observed_fraction}$, $\\varepsilon = {c3.epsilon:g}$, "
    f"$\\eta = {c2.lr:.3g}$ ($L = 2$) and ${c3.lr:.3g}$ ($L = 3$), at most {c3.max_steps} steps, "
    f"tolerance {c3.tol:g}, {c3.trials} trials, {c3.dtype}."
))
experiment.plot_width_sweep(runs.sweep, plan, scale)
plt.show()

# %% [markdown]
# ## Original vs compressed, $\gamma = 0$ vs $\gamma > 0$ (Fig. 5)
#
# One problem, one initialisation. The original full-width model trains until its train loss is
# below its tolerance; the compressed models are built from the same initialisation (their time
# includes that construction). Wall time is the time spent stepping, on this CPU.

# %%
display(Markdown(
    f"Setting: $d = {race.d}$, $r^* = r = {race.true_rank}$, $p = {race.observed_fraction}$, $L = {race.depth}$, "
    f"$\\varepsilon = {race.epsilon:g}$, $\\eta = {race.lr:.4g}$, $\\gamma \\in \\{{{', '.join(f'{g:g}' for g in race.gammas)}\\}}$, "
    f"{race.dtype}."
))
experiment.plot_race(runs.race, scale)
plt.show()
display(experiment.race_table(summary).style.hide(axis="index").set_caption(
    "Fig. 5 runs: time/step to come within 1 % of the original's final recovery error"))

# %% [markdown]
# ## Compressed vs randomly initialised narrow factorisation (App. D.1)
#
# For each rank estimate $\hat r$: the compressed model (width $2\hat r$, outer factors at
# $\gamma\eta$) and a narrow factorisation of width $2\hat r$ with random $\varepsilon$-orthogonal
# factors (all at $\eta$), on the same problems, each until the train loss is below the tolerance
# or the step budget runs out. A run that hits the budget did not converge: its iterations and
# time are then lower bounds, and so is the ratio in the summary table.

# %%
experiment.plot_random_vs_compressed(summary, d1)
plt.show()
display(experiment.d1_table(summary).style.hide(axis="index").set_caption(
    "App. D.1 per rank estimate (means over trials)"))

# %%
display(experiment.comparison_table(summary).style.hide(axis="index").set_caption(
    f"Sec. 3: paper vs this build ({scale_label(scale)})"))
fig5 = summary.fig5
original, compressed = fig5.row("original"), fig5.compressed
display(Markdown(
    f"At $d = {fig5.d}$ on this CPU the compressed model with $\\gamma = {fig5.gamma:g}$ reached the "
    f"original's final recovery error ({fig5.error_original:.2e}) after {compressed.step_to_target:.0f} iterations "
    f"and {compressed.time_to_target:.2f} s, against {original.step_to_target:.0f} iterations and "
    f"{original.time_to_target:.2f} s for the original: **{fig5.speedup:.1f}×** (paper: ≈5× on a GPU at $d = 1000$). "
    f"With $\\gamma = 0$ the final recovery error was {fig5.error_gamma0:.2e}."
    if fig5.speedup is not None else
    f"At $d = {fig5.d}$ the compressed model with $\\gamma > 0$ did not come within 1 % of the original's final "
    f"recovery error ({fig5.error_original:.2e}) in the step budget."
))

# %% [markdown]
# **Reading the numbers.** The speed-up of the compressed model grows with $d$: the original costs
# $O(L d^3)$ per iteration, the compressed one $O(d^2 r)$ for the dense masked residual (or
# $O(|\Omega| r)$ at observed entries only) plus $O(L r^3)$. The benchmark
# `benchmarks/matrix_completion.py` measures it at the paper's $d = 1000$ in one process.
