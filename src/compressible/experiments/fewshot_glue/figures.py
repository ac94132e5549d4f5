"""The chapter's figures, from its summary and (where a figure shows every run) its results."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...finetune.classify import SATURATED
from ...finetune.metrics import TRAINED_FRACTION
from ...reference import paper_value
from ..glue_runs import METHOD_LABELS
from ..glue_stats import DEEP, LORA, paired_frame
from ..style import COLORS, PAPER_LABEL, color
from .plan import SCALED
from .probes import COLLAPSED
from .run import FewshotGlueResults
from .summary import FewshotGlueSummary
from .tables import ours_label, paper_protocol

__all__ = ["plot_table1", "plot_fig6", "plot_fig7", "plot_fig8", "plot_fig8_probes", "plot_training_curves"]


def _paired(results: FewshotGlueResults, part: str, key: str) -> pd.DataFrame:
    return paired_frame(results.runs[results.runs.part == part], [key])


def plot_table1(results: FewshotGlueResults, summary: FewshotGlueSummary):
    """Table 1 as bars (ours beside the paper's, hatched) and every seed's paired difference."""
    import matplotlib.pyplot as plt

    ours, t, p = ours_label(summary.scale), summary.table1, results.plan
    if t is None:
        return None
    pv = {m: paper_value("table1_glue_1024", m) for m in ("vanilla", "deep", "delta_std_over_seeds")}
    dagger = summary.mirror
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.3, 1]})
    x = np.arange(len(t.tasks))
    w = 0.2
    for k, (label, paper_key, method) in enumerate([("LoRA", "vanilla", LORA), ("Deep LoRA", "deep", DEEP)]):
        means = [getattr(t.by_task[task], "lora" if method == LORA else "deep") for task in t.tasks]
        means = [np.nan if v is None else v for v in means]
        stds = [getattr(t.by_task[task], "lora_std" if method == LORA else "deep_std") or 0 for task in t.tasks]
        ax1.bar(x + (2 * k - 1.5) * w, [pv[paper_key][task] for task in t.tasks], w, color=COLORS[method], alpha=0.35,
                hatch="//", label=f"{label} — {PAPER_LABEL}")
        ax1.bar(x + (2 * k - 0.5) * w, means, w, yerr=stds, color=COLORS[method], label=f"{label} — {ours}")
    ax1.set_xticks(x, [task + (" †" if task == "qqp" and dagger else "") for task in t.tasks])
    ax1.set_ylabel("final metric × 100")
    ax1.set_title(f"Table 1 scores, n = {p.table1.n}")
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax1.axhline(0, color="grey", lw=0.6)
    for i, task in enumerate(t.tasks):
        d = np.array([np.nan if v is None else v for v in t.by_task[task].differences.values()])
        ax2.scatter(np.full(len(d), i) + np.linspace(-0.12, 0.12, len(d)), d, color="tab:red", s=18, zorder=3,
                    label=f"{ours}: one seed" if i == 0 else None)
        if np.isfinite(d).any():  # every seed NaN (constant predictions): no mean to draw
            ax2.hlines(np.nanmean(d), i - 0.25, i + 0.25, color="tab:red", lw=2, label=f"{ours}: mean" if i == 0 else None)
        ax2.errorbar(i + 0.32, pv["deep"][task] - pv["vanilla"][task], yerr=pv["delta_std_over_seeds"][task], fmt="s",
                     color="black", ms=5, capsize=3, label=f"{PAPER_LABEL}: mean ± std" if i == 0 else None)
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xticks(x, t.tasks)
    ax2.set_ylabel("Deep LoRA − LoRA (points)")
    ax2.set_title("paired per-seed differences")
    ax2.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.suptitle(f"Table 1 ({ours.removeprefix('ours (').removesuffix(')')} vs paper's bert-base-cased)")
    fig.tight_layout()
    return fig


def _scatter_methods(ax, frame: pd.DataFrame, key: str, values: list[int], ours: str) -> None:
    for method in (LORA, DEEP):
        c = COLORS[method]
        for v in values:
            s = frame[frame[key] == v][method]
            ax.scatter(np.full(len(s), v) * (1.04 if method == DEEP else 0.96), s, color=c, s=12, alpha=0.6)
        ax.plot(values, [frame[frame[key] == v][method].mean() for v in values], "o-", color=c, label=f"{method} — {ours}")


def plot_fig6(results: FewshotGlueResults, summary: FewshotGlueSummary):
    """Fig. 6: Pearson vs ``n`` (every seed, ours and the paper's mean ± std) and the paired differences."""
    import matplotlib.pyplot as plt

    ours = ours_label(summary.scale)
    f6, f6_n = _paired(results, "fig6", "n_train"), summary.fig6.n
    paper6 = {m: paper_value("figure6_stsb_fewshot", m) for m in ("vanilla", "deep")}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    _scatter_methods(ax1, f6, "n_train", f6_n, ours)
    full = summary.fig6.full_by_n
    if full:
        runs = results.runs[(results.runs.part == "fig6") & (results.runs.method == METHOD_LABELS["full"])]
        ax1.scatter(runs.n_train * 1.08, runs["value"], color=COLORS[METHOD_LABELS["full"]], s=12, alpha=0.6)
        ax1.plot([n * 1.08 for n in full], [full[n].deep for n in full], "D", color=COLORS[METHOD_LABELS["full"]],
                 label=f"{METHOD_LABELS['full']} — {ours}")
    for label, paper_key, method in [("LoRA", "vanilla", LORA), ("Deep LoRA", "deep", DEEP)]:
        pn = [int(n) for n in paper6[paper_key]]
        pm_ = np.array([paper6[paper_key][str(n)]["mean"] for n in pn])
        ps = np.array([paper6[paper_key][str(n)]["std"] for n in pn])
        ax1.plot(pn, pm_, "--", color=COLORS[method], label=f"{label} — {PAPER_LABEL}")
        ax1.fill_between(pn, pm_ - ps, pm_ + ps, color=COLORS[method], alpha=0.1)
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("training examples n")
    ax1.set_ylabel("STS-B Pearson")
    ax1.set_title("Pearson vs n")
    ax1.legend(fontsize=7)
    for i, n in enumerate(f6_n):
        d = f6[f6.n_train == n]["diff"].to_numpy()
        ax2.scatter(np.full(len(d), i) + np.linspace(-0.1, 0.1, len(d)), d, color="tab:red", s=18, zorder=3,
                    label=f"{ours}: one seed" if i == 0 else None)
        if np.isfinite(d).any():  # every seed NaN (constant predictions): no mean to draw
            ax2.hlines(np.nanmean(d), i - 0.25, i + 0.25, color="tab:red", lw=2, label=f"{ours}: mean" if i == 0 else None)
        if str(n) in paper6["deep"]:
            ax2.plot(i + 0.32, paper6["deep"][str(n)]["mean"] - paper6["vanilla"][str(n)]["mean"], "s", color="black",
                     label=f"{PAPER_LABEL}: mean difference" if i == 0 else None)
        if n in full:
            d_full = np.array([np.nan if v is None else v for v in full[n].differences.values()])
            ax2.scatter(np.full(len(d_full), i - 0.32), d_full, color=COLORS[METHOD_LABELS["full"]], marker="D", s=16,
                        label=f"full width − LoRA ({ours})" if n == min(full) else None)
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xticks(range(len(f6_n)), [f"n = {n}" for n in f6_n])
    ax2.set_ylabel("Deep LoRA − LoRA (Pearson)")
    ax2.set_title("paired per-seed differences")
    ax2.legend(fontsize=7, loc="best")
    fig.suptitle(f"Fig. 6: STS-B few-shot ({ours.removeprefix('ours (').removesuffix(')')} vs paper's bert-base-cased)")
    fig.tight_layout()
    return fig


def plot_fig7(results: FewshotGlueResults, summary: FewshotGlueSummary):
    """Fig. 7: histogram of the numerical ranks and the spectral norm of every update, both methods."""
    import matplotlib.pyplot as plt

    ours, f, p = ours_label(summary.scale), summary.fig7, results.plan
    r7, n_mod = f.rank_cap, f.n_updates
    norms = {m: np.array([v["singular_values"][0] for v in results.fig7[m]["spectra"].values()]) for m in (LORA, DEEP)}
    counts = {LORA: f.lora_rank_counts, DEEP: f.deep_rank_counts}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for k, m in enumerate((LORA, DEEP)):
        ax1.bar(np.arange(r7 + 1) + (k - 0.5) * 0.4, counts[m], 0.4, color=COLORS[m], label=f"{m} ({n_mod} updates)")
        ax2.scatter(np.arange(n_mod) + 0.15 * k, norms[m], color=COLORS[m], s=14, label=m)
    ax1.set_xticks(np.arange(r7 + 1))
    ax1.set_xlabel(f"numerical rank of ΔW (r = {r7})")
    ax1.set_ylabel("number of adapted weights")
    ax1.set_title(ours)
    ax1.legend(fontsize=8)
    ax2.axhline(1e-3, color="black", ls=":", lw=1, label="1e-3 (Deep LoRA rank-0 threshold)")
    ax2.set_yscale("log")
    ax2.set_xlabel("adapted weight (block order)")
    ax2.set_ylabel(r"$\|\Delta W\|_2$")
    ax2.set_title("spectral norm of every update")
    ax2.legend(fontsize=8)
    fig.suptitle(f"Fig. 7: STS-B, n = {p.fig7.n}, seed 0, {p.fig7.steps} steps ({ours.removeprefix('ours (').removesuffix(')')}); "
                 f"paper: {paper_protocol()['fig6']['steps']} steps, bert-base-cased", fontsize=10)
    fig.tight_layout()
    return fig


def plot_fig8(results: FewshotGlueResults, summary: FewshotGlueSummary):
    """Fig. 8: Pearson vs adapter rank ``r`` (every seed and the means), ours beside the paper's means."""
    import matplotlib.pyplot as plt

    ours, p = ours_label(summary.scale), results.plan
    if summary.fig8 is None:
        return None
    f8, f8_r = _paired(results, "fig8", "rank"), summary.fig8.ranks
    paper8 = {m: paper_value("figure8_rank_sweep_stsb16", m) for m in ("vanilla", "deep")}
    fig, ax = plt.subplots(figsize=(7, 4))
    _scatter_methods(ax, f8, "rank", f8_r, ours)
    scaled = summary.fig8.scaled_by_rank
    if scaled:
        runs = results.runs[(results.runs.part == "fig8") & (results.runs.method == SCALED)]
        ax.scatter(runs["rank"] * 1.08, runs["value"], color=color(SCALED), s=12, alpha=0.6)
        ax.plot([r * 1.08 for r in scaled], [scaled[r].deep for r in scaled], "D-", color=color(SCALED),
                label=f"{SCALED} — {ours}")
    for label, paper_key, method in [("LoRA", "vanilla", LORA), ("Deep LoRA", "deep", DEEP)]:
        pr = sorted(int(r) for r in paper8[paper_key])
        ax.plot(pr, [paper8[paper_key][str(r)] for r in pr], "--", marker="s", ms=4, color=COLORS[method], alpha=0.7,
                label=f"{label} — {PAPER_LABEL}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("adapter rank r")
    ax.set_ylabel("STS-B Pearson")
    ax.legend(fontsize=7)
    ax.set_title(f"Fig. 8: STS-B, n = {p.fig8.n}, {p.fig8.steps} steps, {len(p.fig8.seeds)} seed(s) "
                 f"({ours.removeprefix('ours (').removesuffix(')')})\npaper: {paper_protocol()['fig8']['steps']} steps, "
                 f"{paper_protocol()['fig8']['seeds']} seeds, bert-base-cased", fontsize=9)
    fig.tight_layout()
    return fig


def plot_fig8_probes(results: FewshotGlueResults, summary: FewshotGlueSummary):
    """Along every Fig. 8 run: the spread over examples of what the head sees (top) and the share of
    saturated tanh pooler units (bottom), a column per method (LoRA first); dashed: runs that did not train."""
    import matplotlib.pyplot as plt

    if summary.fig8 is None or not results.probes:
        return None
    ranks = summary.fig8.ranks
    colors = dict(zip(ranks, plt.cm.viridis(np.linspace(0, 0.85, len(ranks)))))
    trained = {(m, r, x.seed): x.trained for m, by_rank in summary.fig8.probes.items() for r, xs in by_rank.items() for x in xs}
    methods = [m for m in (LORA, DEEP, SCALED) if m in results.probes]
    fig, axes = plt.subplots(2, len(methods), figsize=(4.6 * len(methods), 5.6), sharex=True, sharey="row", squeeze=False)
    for k, m in enumerate(methods):
        for rank, by_seed in sorted(results.probes[m].items()):
            for seed, probes in sorted(by_seed.items()):
                steps = [q["step"] for q in probes]
                style = "-" if trained.get((m, rank, seed), True) else "--"
                label = f"r = {rank}" if seed == min(by_seed) else None
                axes[0, k].plot(steps, [q["spread"] for q in probes], style, color=colors[rank], lw=1.2, label=label)
                if probes[0]["saturated"] is not None:
                    axes[1, k].plot(steps, [q["saturated"] for q in probes], style, color=colors[rank], lw=1.2)
        axes[0, k].set_yscale("log")
        axes[0, k].set_title(f"{m} (dashed: did not train)", fontsize=9)
        axes[1, k].set_xlabel("step")
    axes[0, 0].set_ylabel("spread of the head's input\nover the first batch")
    axes[1, 0].set_ylabel(f"pooler units with |tanh| > {SATURATED:g}")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(f"Fig. 8 runs (n = {results.plan.fig8.n}): what the frozen head sees, {ours_label(summary.scale)}", fontsize=9)
    fig.tight_layout()
    return fig


_STYLES = ("-", "--", "-.", (0, (1, 1)), (0, (5, 1, 1, 1, 1, 1)))
"""Line style of a method's first, second, ... seed in :func:`plot_training_curves`."""


def plot_training_curves(curves: dict[str, dict[int, dict]], title: str):
    """Training loss per step of several methods (``{label: {seed: stored run}}``), with each run's
    constant-predictor loss (dotted) and half of it (the training check's line); beside it, when the runs
    stored probes, the spread over the first batch of the head's input along each run, with
    :data:`COLLAPSED` of its start (dotted)."""
    import matplotlib.pyplot as plt

    probed = any(r.get("probes") for runs in curves.values() for r in runs.values())
    fig, axes = plt.subplots(1, 2 if probed else 1, figsize=(12 if probed else 8, 3.9), squeeze=False)
    ax = axes[0, 0]
    for label, runs in curves.items():
        colour = color(label, list(curves))
        for k, (seed, r) in enumerate(sorted(runs.items())):
            loss = np.asarray(r["train_loss"], dtype=float)
            window = min(10, len(loss))
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            style = {"color": colour, "alpha": 0.8, "lw": 1.2, "ls": _STYLES[k % len(_STYLES)]}
            ax.plot(np.arange(window, len(loss) + 1), smooth, label=label if k == 0 else None, **style)
            if probed and r.get("probes"):
                axes[0, 1].plot([q["step"] for q in r["probes"]], [q["spread"] for q in r["probes"]], marker=".", ms=3, **style)
    baseline = float(np.mean([r["loss_baseline"] for runs in curves.values() for r in runs.values()]))
    ax.axhline(baseline, color="black", ls=":", lw=1, label=f"predict the mean label ({baseline:.2f})")
    ax.axhline(TRAINED_FRACTION * baseline, color="black", ls="--", lw=0.8, label=f"{TRAINED_FRACTION:g}× that (trained)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (MSE, 10-step mean)")
    ax.legend(fontsize=7)
    if probed:
        starts = [r["probes"][0]["spread"] for runs in curves.values() for r in runs.values() if r.get("probes")]
        axes[0, 1].axhline(COLLAPSED * float(np.mean(starts)), color="black", ls=":", lw=1,
                           label=f"{COLLAPSED:g}× the start (collapsed below)")
        axes[0, 1].set_yscale("log")
        axes[0, 1].set_xlabel("step")
        axes[0, 1].set_ylabel("spread of the head's input\nover the first batch")
        axes[0, 1].legend(fontsize=7)
    seeds = max(len(runs) for runs in curves.values())
    fig.suptitle(title + ("" if seeds < 2 else "\none line per seed (solid, dashed, dash-dot, ... in seed order)"),
                 fontsize=10)
    fig.tight_layout()
    return fig
