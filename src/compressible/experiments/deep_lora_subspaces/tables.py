"""The tables of the Deep LoRA subspaces chapter: its settings, and the paper's numbers beside this build's."""

from __future__ import annotations

import pandas as pd

from ...finetune.backbones import TINY_BERT
from ...reference import paper_value
from ...scales import scale_label
from ..style import PAPER_LABEL
from .plan import D2_METHODS, DeepLoraSubspacesPlan, experiments, plan
from .summary import DeepLoraSubspacesSummary, paper_d2_curves

__all__ = ["build_label", "settings_table", "fig2_table", "d2_table", "d2_within_table"]

_SHORT_NAMES = {TINY_BERT: "tiny random BERT"}


def build_label(scale: str) -> str:
    """The label on every figure and table of this build, e.g. ``"ci scale, all-MiniLM-L6-v2"``."""
    backbone = plan(scale).backbone
    return f"{scale_label(scale)}, {_SHORT_NAMES.get(backbone, backbone)}"


def settings_table(p: DeepLoraSubspacesPlan) -> pd.DataFrame:
    """One column per run of plan ``p`` (adapter, width, depth, rates, data, steps, evaluation, seeds)."""
    return pd.DataFrame({
        f"{e.part}: {e.label}": {
            "adapter": e.config.adapter.init,
            "width": "max(m, n)" if e.config.adapter.init == "full" else e.config.adapter.rank,
            "depth": e.config.adapter.depth,
            "lr (inner)": e.config.lr,
            "lr (outer)": e.config.outer_lr if e.config.outer_lr is not None else "= inner",
            "lr at the end": e.config.lr_end if e.config.lr_end is not None else "constant",
            "training examples": "all (filtered) train" if e.config.n_train is None else e.config.n_train,
            "steps × batch": f"{e.config.steps} × {e.config.batch_size}",
            "evaluated every": e.config.eval_every or "last step only",
            "validation examples": "all" if e.config.eval_limit is None else e.config.eval_limit,
            "seeds": ", ".join(map(str, e.seeds)),
        }
        for e in experiments(p)
    }).reset_index(names="setting")


def fig2_table(summary: DeepLoraSubspacesSummary) -> pd.DataFrame:
    """Fig. 2: the paper's statements beside this build's numbers."""
    f, ours = summary.fig2, f"ours ({build_label(summary.scale)})"
    pearson = "n/a" if f.final_pearson is None else f"{f.final_pearson:.4f}"
    return pd.DataFrame([
        {"quantity": "final validation Pearson",
         PAPER_LABEL: f"{paper_value('figure2_invariant_subspaces', 'final_eval_pearson'):.4f}", ours: pearson},
        {"quantity": "steps (lr 1e-4 → 1e-5, linear)",
         PAPER_LABEL: str(paper_value("figure2_invariant_subspaces", "protocol", "steps")), ours: str(f.steps)},
        {"quantity": "adapted matrices", PAPER_LABEL: "72", ours: str(summary.adapted_modules)},
        {"quantity": "spectra of ΔW",
         PAPER_LABEL: "few significant singular values per matrix (qualitative)",
         ours: f"median {f.median_significant_singular_values:.0f} of top {f.top_singular_values} grew ≥ 10% of σ₁'s "
               f"growth; σ₁ = {f.median_top_sv_over_eps3:.3g} × ε³ (median)"},
        {"quantity": f"top-{f.checkpoint_rank} subspace alignment with the final one",
         PAPER_LABEL: "close to 1 early in training (qualitative)",
         ours: f"median {f.median_alignment_at_10pct_steps:.3f} at step {f.alignment_early_step} of {f.steps}"},
    ])


def d2_table(summary: DeepLoraSubspacesSummary) -> pd.DataFrame:
    """App. D.2: validation Pearson by step, the paper's beside ours, per variant."""
    ours_d2, paper_d2 = summary.d2.pearson_curve, paper_d2_curves()
    ours = f"ours ({build_label(summary.scale)})"
    steps = sorted(set().union(*[paper_d2[m] for m in D2_METHODS], *[ours_d2[m] for m in D2_METHODS]))

    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return pd.DataFrame({
        "step": steps,
        **{f"{m} — {who}": [cell(curves[m][s]) if s in curves[m] else "—" for s in steps]
           for m in D2_METHODS for who, curves in ((PAPER_LABEL, paper_d2), (ours, ours_d2))},
    })


def d2_within_table(summary: DeepLoraSubspacesSummary) -> pd.DataFrame:
    """How fast the narrow variants catch up with the original: the paper's first step beside ours."""
    d = summary.d2
    return pd.DataFrame([
        {"variant": m,
         f"first step within 0.05 of original — {PAPER_LABEL}": str(d.paper_first_step_within_0_05_of_original[m] or "never"),
         f"first step within 0.05 of original — ours ({build_label(summary.scale)})":
             str(d.first_step_within_0_05_of_original[m] or "never")}
        for m in ("compressed", "random")
    ])
