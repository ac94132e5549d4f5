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
# # Deep matrix completion
#
# *Paper: Sec. 3, Fig. 1, Fig. 5 and App. D.1; the speed-up against $d$ is ours.*
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
#
# A fourth section, not in the paper, measures how the speed-up grows with $d$.

# %% tags=["parameters", "remove-cell"]
scale = "ci"

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from compressible.ledger import coverage_table
from compressible.experiments import completion as experiment
from compressible.scales import scale_label
from compressible.summaries import save_summary

plan = experiment.plan(scale)
runs = experiment.run(scale)
summary = experiment.summarise(runs, plan, scale)
save_summary(summary)
c2, c3 = plan.fig1
race, d1, scaling = plan.race, plan.d1, plan.scaling
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
# includes that construction). Wall time is the time spent stepping, on the CPU that computed the
# run (the table at the end of the chapter names it).

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

# %% [markdown]
# ## How the speed-up grows with $d$
#
# A step of the original multiplies $d \times d$ factors, $O(d^3)$; a step of the compressed model
# costs $O(d^2 r)$ with the dense masked residual. So the per-step costs should grow like $d^3$ and
# $d^2$, and the speed-up like $d$, as long as both models need similar numbers of steps. For each
# size the rule of `benchmarks/matrix_completion.py` applies: the original trains to its tolerance
# and $e^*$ is its final recovery error; the compressed model ($\gamma > 0$) trains until its
# recovery error is within 1 % of $e^*$, its time including building the compression (had the
# original never left its initial plateau, equal step counts would be compared, and the table says
# so). Setting as in Fig. 5 with $\eta$ rescaled with $d$ like above; one problem and one
# initialisation per size. Wall times depend on the machine and its load; the ratios are measured
# within one run, the original and its compression one after the other in the same process, and
# the matmul rate is measured before and after the original's training. When the plan computes the
# chapter's parts in two processes (ci scale), another part runs beside this one on the other core
# for part of the time, so both sides of a ratio may share the machine with it.

# %%
sc = summary.scaling
sr = scaling.race
display(Markdown(
    f"Setting: $d \\in \\{{{', '.join(map(str, scaling.sizes))}\\}}$, $r^* = r = {sr.true_rank}$, "
    f"$p = {sr.observed_fraction}$, $L = {sr.depth}$, $\\varepsilon = {sr.epsilon:g}$, "
    f"$\\eta = {sr.lr:.4g}\\,(d / {sr.d})^{{4/3}}$, $\\gamma = {sr.gamma:g}$, original to train loss "
    f"< {sr.tol_original:g} (at most {sr.max_steps} steps), {sc.dtype}, **{sc.threads} torch thread(s)**."
))
experiment.plot_scaling(summary)
plt.show()
display(experiment.scaling_table(summary).style.hide(axis="index").set_caption(
    "Speed-up against d: wall time to the same recovery error, per-step cost and the original's FLOP/s"))
display(Markdown(
    f"Fitted log-log slopes against $d$: seconds per step of the original **{sc.slope_step_original:.2f}** "
    f"(expected ≈ 3), of the compressed model **{sc.slope_step_compressed:.2f}** (expected ≈ 2), speed-up "
    f"**{sc.slope_speedup:.2f}** (expected ≈ 1)" if sc.slope_speedup is not None else
    f"Fitted log-log slopes against $d$: seconds per step of the original **{sc.slope_step_original:.2f}**, "
    f"of the compressed model **{sc.slope_step_compressed:.2f}**; too few sizes reached the same error for a "
    f"speed-up slope"
))
fractions = [p.flops_fraction for p in sc.points]
display(Markdown(
    f"The original's training ran at {min(fractions):.0%}–{max(fractions):.0%} of the computing machine's $d \\times d$ "
    f"matmul rate measured at the same $d$ (bottom-right panel): near 100 % its steps cost what their $O(d^3)$ "
    f"arithmetic costs, and nothing handicapped it; far below, something else slowed it (small kernels, a busy "
    f"machine). At small $d$ a step of the compressed model is mostly fixed per-call overhead (Python, kernel "
    f"launches), so its cost grows more slowly than $d^2$ and the speed-up faster than $d$, until the arithmetic "
    f"takes over; at larger $d$ (the paper scale runs up to $d = 2000$) the slopes should approach 3, 2 and 1."
))

# %%
display(experiment.comparison_table(summary).style.hide(axis="index").set_caption(
    f"Sec. 3: paper vs this build ({scale_label(scale)})"))
fig5 = summary.fig5
original, compressed = fig5.row("original"), fig5.compressed
display(Markdown(
    f"At $d = {fig5.d}$ on the CPU that computed the run, the compressed model with $\\gamma = {fig5.gamma:g}$ reached the "
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
# $O(|\Omega| r)$ at observed entries only) plus $O(L r^3)$; the section above measures the growth.
# The benchmark `benchmarks/matrix_completion.py` runs the same race at one size (the paper's
# $d = 1000$ by default) and also times the compressed step for each residual mode.

# %% [markdown]
# ## Where these runs come from
#
# Every run this chapter shows, per figure and method: how many its plan has at this scale, how many
# are stored (read from the repository's committed ledger, or computed by this build), which are
# missing, and where and when they were computed. The ledger's records are re-executed in part by
# every build of the book (see the README).

# %%
display(coverage_table("completion", scale))
