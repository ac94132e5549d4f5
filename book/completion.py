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
from IPython.display import display

from compressible.experiments import completion as experiment
from compressible.experiments.completion import figures, tables
from compressible.ledger import coverage_table
from compressible.reproduction.pages import glue_number, glue_numbers, glue_words
from compressible.scales import scale_label
from compressible.summaries import save_summary

plan = experiment.plan(scale)
runs = experiment.run(plan)
summary = experiment.summarise(runs)
save_summary(summary)

# %% tags=["remove-cell"]
# The numbers and words the Markdown below shows (MyST-NB glue).
c2, c3 = plan.fig1
race, d1, scaling = plan.race, plan.d1, plan.scaling
f1, f5, s1, sc = summary.fig1, summary.fig5, summary.d1, summary.scaling

glue_words("scale", scale_label(scale))
glue_words("scale_notes", plan.notes)
glue_numbers({
    "fig1_d": c3.d, "fig1_rank": c3.true_rank, "fig1_p": c3.observed_fraction, "fig1_eps": c3.epsilon,
    "fig1_lr2": c2.lr, "fig1_lr3": c3.lr, "fig1_max_steps": c3.max_steps, "fig1_tol": c3.tol, "fig1_trials": c3.trials,
    "race_d": race.d, "race_rank": race.true_rank, "race_p": race.observed_fraction, "race_depth": race.depth,
    "race_eps": race.epsilon, "race_lr": race.lr,
    "scaling_rank": scaling.race.true_rank, "scaling_p": scaling.race.observed_fraction,
    "scaling_depth": scaling.race.depth, "scaling_eps": scaling.race.epsilon, "scaling_lr": scaling.race.lr,
    "scaling_d_ref": scaling.race.d, "scaling_gamma": scaling.race.gamma, "scaling_tol": scaling.race.tol_original,
    "scaling_max_steps": scaling.race.max_steps, "scaling_threads": sc.threads,
    "scaling_slope_original": sc.slope_step_original, "scaling_slope_compressed": sc.slope_step_compressed,
    "flops_min": min(p.flops_fraction for p in sc.points), "flops_max": max(p.flops_fraction for p in sc.points),
    "err_widest_2": f1.error_widest.get(2), "err_widest_3": f1.error_widest.get(3),
    "steps_narrowest": f1.steps_narrowest, "steps_widest": f1.steps_widest,
    "width_narrowest": f1.narrowest_width, "width_widest": f1.widest_width,
    "fig5_d": f5.d, "error_original": f5.error_original,
})
glue_words("fig1_dtype", c3.dtype)
glue_words("race_gammas", " and ".join(f"{g:g}" for g in race.gammas))
glue_words("race_dtype", race.dtype)
glue_words("scaling_sizes", ", ".join(map(str, scaling.sizes)))
glue_words("scaling_dtype", sc.dtype)

# %% [markdown]
# **Scale:** {glue:md}`scale` — {glue:md}`scale_notes`.
#
# ## Depth, width and generalisation (Fig. 1)
#
# Narrow factorisations of width $w$ (an $\varepsilon$-scaled orthogonal slice per factor; width
# $d$ is the full-width model) trained to a train loss below the tolerance, several independent
# problems at once (the trials run as one batched tensor program).
#
# Setting: $d$ = {glue:}`fig1_d`, $r^*$ = {glue:}`fig1_rank`, $p$ = {glue:}`fig1_p`,
# $\varepsilon$ = {glue:text}`fig1_eps:g`, $\eta$ = {glue:text}`fig1_lr2:.3g` ($L = 2$) and
# {glue:text}`fig1_lr3:.3g` ($L = 3$), at most {glue:}`fig1_max_steps` steps, tolerance
# {glue:text}`fig1_tol:g`, {glue:}`fig1_trials` trials, {glue:md}`fig1_dtype`.

# %%
figures.plot_width_sweep(runs)
plt.show()

# %% [markdown]
# ## Original vs compressed, $\gamma = 0$ vs $\gamma > 0$ (Fig. 5)
#
# One problem, one initialisation. The original full-width model trains until its train loss is
# below its tolerance; the compressed models are built from the same initialisation (their time
# includes that construction). Wall time is the time spent stepping, on the CPU that computed the
# run (the table at the end of the chapter names it).
#
# Setting: $d$ = {glue:}`race_d`, $r^* = r$ = {glue:}`race_rank`, $p$ = {glue:}`race_p`,
# $L$ = {glue:}`race_depth`, $\varepsilon$ = {glue:text}`race_eps:g`, $\eta$ = {glue:text}`race_lr:.4g`,
# $\gamma$ = {glue:md}`race_gammas`, {glue:md}`race_dtype`.

# %%
figures.plot_race(runs)
plt.show()
display(tables.race_table(summary).style.hide(axis="index").set_caption(
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
figures.plot_random_vs_compressed(summary)
plt.show()
display(tables.d1_table(summary).style.hide(axis="index").set_caption(
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
#
# Setting: $d$ in {glue:md}`scaling_sizes`, $r^* = r$ = {glue:}`scaling_rank`, $p$ = {glue:}`scaling_p`,
# $L$ = {glue:}`scaling_depth`, $\varepsilon$ = {glue:text}`scaling_eps:g`,
# $\eta$ = {glue:text}`scaling_lr:.4g` $\cdot\,(d / d_0)^{4/3}$ with $d_0$ = {glue:}`scaling_d_ref`,
# $\gamma$ = {glue:text}`scaling_gamma:g`, original to train loss < {glue:text}`scaling_tol:g` (at most
# {glue:}`scaling_max_steps` steps), {glue:md}`scaling_dtype`, **{glue:}`scaling_threads` torch thread(s)**.

# %%
figures.plot_scaling(summary)
plt.show()
display(tables.scaling_table(summary).style.hide(axis="index").set_caption(
    "Speed-up against d: wall time to the same recovery error, per-step cost and the original's FLOP/s"))

# %% tags=["remove-cell"]
# The speed-up's slope needs two sizes where the compression reached the same error.
if sc.slope_speedup is not None:
    glue_words("scaling_slope_speedup", f"speed-up **{sc.slope_speedup:.2f}** (expected ≈ 1)")
else:
    glue_words("scaling_slope_speedup", "no speed-up slope: too few sizes reached the same error")

# %% [markdown]
# Fitted log-log slopes against $d$: seconds per step of the original
# **{glue:text}`scaling_slope_original:.2f`** (expected ≈ 3), of the compressed model
# **{glue:text}`scaling_slope_compressed:.2f`** (expected ≈ 2); {glue:md}`scaling_slope_speedup`.
#
# The original's training ran at {glue:text}`flops_min:.0%`–{glue:text}`flops_max:.0%` of the computing
# machine's $d \times d$ matmul rate measured at the same $d$ (bottom-right panel): near 100 % its steps
# cost what their $O(d^3)$ arithmetic costs, and nothing handicapped it; far below, something else slowed
# it (small kernels, a busy machine). At small $d$ a step of the compressed model is mostly fixed
# per-call overhead (Python, kernel launches), so its cost grows more slowly than $d^2$ and the speed-up
# faster than $d$, until the arithmetic takes over; at larger $d$ (the paper scale runs up to
# $d = 2000$) the slopes should approach 3, 2 and 1.

# %% tags=["remove-cell"]
# The cells of the comparison below that depend on what happened (a speed-up reached or not, a
# ratio that is only a lower bound), and the paragraph after it (glued Markdown renders no $math$).
original, compressed = f5.row("original"), f5.compressed
if f5.speedup is not None:
    glue_words("fig5_ours", f"{f5.speedup:.1f}× at d={f5.d}")
    glue_words("fig5_finding",
               f"At d = {f5.d} on the CPU that computed the run, the compressed model with γ = {f5.gamma:g} "
               f"reached the original's final recovery error ({f5.error_original:.2e}) after "
               f"{compressed.step_to_target:.0f} iterations and {compressed.time_to_target:.2f} s, against "
               f"{original.step_to_target:.0f} iterations and {original.time_to_target:.2f} s for the original: "
               f"**{f5.speedup:.1f}×** (paper: ≈5× on a GPU at d = 1000)."
               + (f" With γ = 0 the final recovery error was {f5.error_gamma0:.2e}." if f5.error_gamma0 is not None else ""))
else:
    glue_words("fig5_ours", f"not reached: γ>0 never came within 1 % of the original's error (d={f5.d})")
    glue_words("fig5_finding",
               f"At d = {f5.d} the compressed model with γ > 0 did not come within 1 % of the original's final "
               f"recovery error ({f5.error_original:.2e}) in the step budget.")
glue_words("gamma0_ours", "not run" if f5.error_gamma0 is None else f"{f5.error_gamma0:.2e}")
bound = "≥ " if s1.ratio_is_lower_bound else ""
d1_ours = (f"{bound}{s1.speedup:.1f}× (geometric mean over r̂, d={s1.d}); iterations {bound}{s1.steps_ratio:.1f}×"
           if s1.speedup is not None and s1.steps_ratio is not None else f"not measured (d={s1.d})")
if s1.ratio_is_lower_bound:
    d1_ours += (f"; random converged in {s1.converged_random:.0%} of runs within {s1.max_steps} steps, "
                f"compressed in {s1.converged_compressed:.0%}")
glue_words("d1_ours", d1_ours)
ends = [p for p in sc.points if p.speedup is not None]
glue_words("scaling_ours", f"{ends[0].speedup:.1f}× at d={ends[0].d} to {ends[-1].speedup:.1f}× at d={ends[-1].d}"
           if ends else "no size reached the same error")
glue_number("scaling_slope", sc.slope_speedup)

# %% [markdown]
# **Sec. 3: the paper and this build.**
#
# | claim | paper (authors' logs) | ours ({glue:md}`scale`) |
# |---|---|---|
# | Fig. 1: at the widest width, depth 2 overfits, depth 3 recovers | L=2 error ≫ L=3 error | median recovery error L=2: {glue:text}`err_widest_2:.2e`, L=3: {glue:text}`err_widest_3:.2e` (d={glue:}`fig1_d`) |
# | Fig. 1: wider converges in fewer iterations (L=3) | decreasing in width | {glue:text}`steps_narrowest:.0f` steps at w={glue:}`width_narrowest`, {glue:text}`steps_widest:.0f` at w={glue:}`width_widest` |
# | Fig. 5: compressed γ>0 vs original, wall time to the same recovery error | ≈5× faster (GPU) | {glue:md}`fig5_ours` |
# | Fig. 5: γ=0 drifts from the original | worse recovery | final recovery error {glue:md}`gamma0_ours` vs original {glue:text}`error_original:.2e` |
# | App. D.1: compressed vs random narrow, wall time | ≈3× faster | {glue:md}`d1_ours` |
# | Speed-up against d (not measured in the paper): O(d³) vs O(d² r) per step | ≈5× at d=1000 (GPU) | {glue:md}`scaling_ours`; slopes vs d: speed-up {glue:text}`scaling_slope:.2f`, s/step original {glue:text}`scaling_slope_original:.2f`, compressed {glue:text}`scaling_slope_compressed:.2f` |
#
# {glue:md}`fig5_finding`
#
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
