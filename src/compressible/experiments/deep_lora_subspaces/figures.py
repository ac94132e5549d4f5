"""The figures of the Deep LoRA subspaces chapter: Fig. 2 (every adapted matrix) and App. D.2."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..style import PAPER_LABEL
from .plan import D2_METHODS
from .run import DeepLoraSubspacesResults
from .summary import KINDS, DeepLoraSubspacesSummary, _alignment, kind_of, paper_d2_curves
from .tables import build_label

__all__ = ["plot_fig2", "plot_d2"]


def plot_fig2(results: DeepLoraSubspacesResults, summary: DeepLoraSubspacesSummary):
    """Fig. 2: top singular values of every final update, alignment with the final subspace, training loss."""
    import matplotlib.pyplot as plt

    run_ = results.fig2
    ckpt_steps, modules, alignment = _alignment(run_)
    spectra = np.array([run_["spectra"][m]["singular_values"] for m in modules])
    losses = np.array(run_["train_loss"])
    window = summary.fig2.loss_window
    running = pd.Series(losses).rolling(window, min_periods=1).mean()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    kind_colours = {k: f"C{i}" for i, k in enumerate(dict.fromkeys(KINDS.values()))}
    seen = set()
    for m, s in zip(modules, spectra):
        k = kind_of(m)
        axes[0].semilogy(np.arange(1, len(s) + 1), s, color=kind_colours[k], alpha=0.6, lw=1,
                         label=None if k in seen else k)
        seen.add(k)
    axes[0].axhline(results.epsilon ** 3, color="gray", ls=":", lw=1, label=r"$\varepsilon^3$ (all of them at step 0)")
    axes[0].set_xlabel("index i")
    axes[0].set_ylabel(r"$\sigma_i(\Delta W_{\mathrm{final}})$")
    axes[0].set_title("top singular values of every final ΔW")
    axes[0].legend(fontsize=8, ncol=2)
    for row in alignment:
        axes[1].plot(ckpt_steps, row, color="tab:gray", alpha=0.35, lw=0.8)
    axes[1].plot(ckpt_steps, np.median(alignment, axis=0), "o-", color="tab:red", lw=2, label="median over matrices")
    axes[1].set_xscale("symlog", linthresh=1)
    axes[1].set_ylim(0, 1.05)
    axes[1].set_xlabel("step t (symlog)")
    axes[1].set_ylabel(r"$\|U_t^\top U_{\mathrm{final}}\|_2$ (top-%d)" % summary.fig2.checkpoint_rank)
    axes[1].set_title("alignment with the final subspace")
    axes[1].legend(loc="lower right")
    axes[2].plot(np.arange(1, len(losses) + 1), losses, color="tab:blue", alpha=0.35, lw=0.8, label="per batch")
    axes[2].plot(np.arange(1, len(losses) + 1), running, color="tab:blue", lw=2, label=f"running mean ({window} steps)")
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("training loss (MSE)")
    axes[2].set_title("training loss")
    axes[2].legend()
    fig.suptitle(f"Fig. 2: full-width Deep LoRA on STS-B, {summary.fig2.steps} steps ({build_label(results.scale)})")
    fig.tight_layout()
    return fig


def plot_d2(results: DeepLoraSubspacesResults, summary: DeepLoraSubspacesSummary):
    """App. D.2: training loss of every step and validation Pearson (ours solid, the paper's dashed)."""
    import matplotlib.pyplot as plt

    colours = {"original": "tab:blue", "compressed": "tab:green", "random": "tab:orange"}
    ours_d2, paper_d2 = summary.d2.pearson_curve, paper_d2_curves()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for m in D2_METHODS:
        loss = results.d2[m]["train_loss"]
        ax1.plot(np.arange(1, len(loss) + 1), loss, color=colours[m], label=m)
        steps, values = zip(*sorted(ours_d2[m].items()))
        ax2.plot(steps, [np.nan if v is None else v for v in values], "o-", color=colours[m], label=f"{m} (ours)")
        psteps, pvalues = zip(*sorted(paper_d2[m].items()))
        ax2.plot(psteps, pvalues, "s--", color=colours[m], alpha=0.5, label=f"{m} (paper)")
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss (MSE, 16 examples)")
    ax1.set_title("training loss")
    ax1.legend()
    ax2.set_xlabel("step")
    ax2.set_ylabel("validation Pearson")
    ax2.set_title(f"validation Pearson (ours: {summary.d2.eval_examples:,} pairs)")
    ax2.legend(fontsize=8, ncol=2)
    fig.suptitle(f"App. D.2: STS-B, 16 examples, {summary.d2.steps} steps ({build_label(results.scale)}; "
                 f"dashed: {PAPER_LABEL}, 200 steps)")
    fig.tight_layout()
    return fig
