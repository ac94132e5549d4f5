"""Tests of compressible.experiments.deep_lora_subspaces: Fig. 2 and App. D.2 statistics on hand-made runs.

Fig. 2: three adapted weights (q, k, intermediate), checkpoints at steps 0, 1, 5, 10, 50 of a
50-step run, top-10 spectra around eps^3 = 1e-9. App. D.2: three variants evaluated at steps 20,
40 and 60 (steps the paper also evaluates).
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from compressible.experiments import deep_lora_subspaces as dls
from compressible.experiments.deep_lora_subspaces import summary as stats
from compressible.experiments.deep_lora_subspaces import tables
from compressible.experiments.deep_lora_subspaces.plan import D2Plan, Fig2Plan
from compressible.experiments.glue_methods import ATTENTION_TARGETS
from compressible.summaries import load_summary, save_summary

PLAN = dataclasses.replace(
    dls.PLANS["smoke"],
    fig2=Fig2Plan(n=32, steps=50, checkpoints=(0, 1, 5, 10, 50), targets="attention-mlp"),
    d2=D2Plan(n=16, steps=60, eval_every=20, targets=ATTENTION_TARGETS),
)
EPS3 = 1e-9
Q, K, MLP = "encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.key", "encoder.layer.0.intermediate.dense"
ALIGNMENT = {Q: [0.2, 0.8, 0.95, 0.99, 1.0], K: [0.3, 0.9, 0.85, 0.97, 1.0], MLP: [0.1, 0.5, 0.92, 0.98, 1.0]}
SPECTRA = {
    Q: [1e-6, 2e-7] + [EPS3] * 8,  # two singular values grew
    K: [5e-9] + [EPS3] * 9,  # one grew, a little
    MLP: [1e-5, 5e-6, 2e-6] + [EPS3] * 7,  # three grew
}
FIG2 = {
    "checkpoints": {"steps": [0, 1, 5, 10, 50], "alignment": ALIGNMENT, "k": 8},
    "spectra": {m: {"singular_values": s} for m, s in SPECTRA.items()},
    "train_loss": [2.0] * 5 + [1.0] * 40 + [0.5] * 5,
    "final": {"pearson": 0.42},
    "n_eval": 500,
    "adapted_modules": 3,
    "wall_time": 10.0,
    "train_pool": 5000,
    "eval_dropped_by_filter": 2,
    "trainable_params": 3000,
}
CARD = {"task": "stsb", "hub_id": "nyu-mll/glue", "source": "/somewhere", "local_mirror": True,
        "splits": {"train": 5749, "validation": 1500}, "official_sizes": {"train": 5749, "validation": 1500},
        "train_split": "train", "eval_split": "validation", "text_fields": ["sentence1", "sentence2"],
        "num_labels": 1, "regression": True, "caveats": []}


def _d2_run(pearson, losses, params):
    return {"evals": [{"step": s, "pearson": v} for s, v in zip((20, 40, 60), pearson)],
            "final": {"pearson": pearson[-1]}, "train_loss": losses, "trainable_params": params, "n_eval": 500,
            "wall_time": 2.0}


def _d2(original=(0.5, 0.6, 0.7)):
    return {
        "original": _d2_run(list(original), [1.0, 0.95, 0.8] + [0.2] * 57, 1000),
        "compressed": _d2_run([0.3, 0.58, 0.69], [1.0, 0.85] + [0.3] * 58, 100),
        "random": _d2_run([0.1, 0.2, 0.66], [1.0] * 60, 100),
    }


def _results(d2=None) -> dls.DeepLoraSubspacesResults:
    return dls.DeepLoraSubspacesResults("smoke", PLAN, pd.DataFrame(), FIG2, _d2() if d2 is None else d2, 1e-3, CARD)


@pytest.fixture(scope="module")
def summary():
    return dls.summarise(_results())


def test_fig2_alignment(summary):
    f = summary.fig2
    # "early" = the first checkpoint at or after 10% of 50 steps: step 5; there q .95, k .85, intermediate .92
    assert f.alignment_early_step == 5
    assert (f.median_alignment_at_10pct_steps, f.min_alignment_at_10pct_steps) == pytest.approx((0.92, 0.85))
    assert f.frac_alignment_above_0_9_at_10pct_steps == pytest.approx(2 / 3)
    assert (f.median_alignment_step1, f.median_alignment_step0) == pytest.approx((0.8, 0.2))
    assert f.median_alignment == pytest.approx({0: 0.2, 1: 0.8, 5: 0.92, 10: 0.98, 50: 1.0})


def test_fig2_spectra(summary):
    f = summary.fig2
    assert f.median_significant_singular_values == 2.0 and f.top_singular_values == 10
    # sigma_1 / eps^3: q 1000, k 5, intermediate 10000
    assert f.median_top_sv_over_eps3 == pytest.approx(1000)
    assert f.median_top_sv_over_eps3_by_kind == pytest.approx({"q": 1000, "k": 5, "intermediate": 1e4})
    assert list(f.median_top_sv_over_eps3_by_kind) == ["q", "k", "intermediate"]  # in the order of KINDS
    assert f.median_sv_ratio_9_to_1 == pytest.approx(1e-3)  # sigma_9 / sigma_1: q 1e-3, k 0.2, intermediate 1e-4
    assert not f.updates_still_at_init_scale


def test_fig2_losses_and_final(summary):
    f = summary.fig2
    assert (f.loss_window, f.initial_train_loss, f.final_train_loss) == (5, 2.0, 0.5)
    assert (f.final_pearson, f.eval_examples, f.steps, f.checkpoint_rank) == (0.42, 500, 50, 8)
    assert summary.adapted_modules == 3


def test_significant_singular_values_counts_growth_above_the_initial_level():
    spectra = np.array([[1e-6, 2e-7, 1e-9], [5e-9, 1e-9, 1e-9], [1e-9, 1e-9, 1e-9]])
    # a row that never grew: every growth is 0 >= 0.1 * 0, so all count (the statistic saturates)
    assert stats.significant_singular_values(spectra, 1e-9).tolist() == [2, 1, 3]


def test_early_checkpoint_and_kinds():
    assert stats.early_checkpoint([0, 1, 5, 10, 50], 50) == 5
    assert stats.early_checkpoint([0, 1, 10, 20, 30, 100, 500, 1000, 1500, 2000], 2000) == 500
    assert stats.early_checkpoint([0, 1, 3], 3) == 1  # at least step 1
    with pytest.raises(ValueError, match=r"no checkpoint at or after 10% of 100 steps among \[0, 5\]"):
        stats.early_checkpoint([0, 5], 100)
    assert [stats.kind_of(m) for m in (Q, K, MLP, "bert.encoder.layer.3.output.dense")] == ["q", "k", "intermediate", "output"]
    assert stats.kind_of("encoder.layer.3.attention.output.dense") == "attn out"
    with pytest.raises(ValueError, match="module 'pooler.dense' is none of the adapted kinds"):
        stats.kind_of("pooler.dense")


def test_d2_convergence(summary):
    d = summary.d2
    # compressed: 0.3 < 0.5 - 0.05 at step 20, 0.58 >= 0.55 at step 40; random only at 60 (0.66 >= 0.65)
    assert d.first_step_within_0_05_of_original == {"compressed": 40, "random": 60}
    assert d.original_best_pearson == 0.7 and d.comparison_informative
    assert d.pearson_at_step == {m: {20: a, 40: b, 60: c} for m, (a, b, c) in
                                 {"original": (0.5, 0.6, 0.7), "compressed": (0.3, 0.58, 0.69), "random": (0.1, 0.2, 0.66)}.items()}
    assert d.pearson_final == {"original": 0.7, "compressed": 0.69, "random": 0.66}
    # the first step whose loss is below 90% of step 1's: 0.8 at step 3, 0.85 at step 2, never
    assert d.first_step_loss_below_90pct == {"original": 3, "compressed": 2, "random": None}
    assert d.loss_window == 6 and d.final_train_loss == pytest.approx({"original": 0.2, "compressed": 0.3, "random": 1.0})
    assert d.trainable_params == {"original": 1000, "compressed": 100, "random": 100}
    assert d.paper_first_step_within_0_05_of_original == {
        m: stats.first_step_within(stats.paper_d2_curves(), m) for m in ("compressed", "random")}


def test_d2_uninformative_when_the_original_has_not_learned():
    d = dls.summarise(_results(_d2(original=(0.05, 0.1, 0.2)))).d2
    assert not d.comparison_informative and d.original_best_pearson == 0.2
    assert d.first_step_within_0_05_of_original == {"compressed": 20, "random": 20}  # trivially "caught up"


def test_first_step_within_and_loss_below():
    curves = {"original": {10: 0.5, 20: 0.6}, "x": {10: 0.4, 20: 0.56, 30: 0.9}}
    assert stats.first_step_within(curves, "x") == 20  # step 30 is not evaluated for the original
    assert stats.first_step_within(curves, "x", tol=0.1) == 10
    assert stats.first_step_within({"original": {10: 0.5}, "x": {10: float("nan")}}, "x") is None
    assert stats.first_step_loss_below([1.0, 0.95, 0.89]) == 3 and stats.first_step_loss_below([1.0, 1.0]) is None


def test_summary_round_trips_through_json(summary, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSIBLE_RESULTS", str(tmp_path))
    save_summary(summary)
    assert load_summary(dls.DeepLoraSubspacesSummary) == summary


def test_tables(summary):
    table = tables.d2_table(summary)
    assert table["step"].tolist() == [20, 40, 60, 100, 200]
    ours = f"ours ({tables.build_label('smoke')})"
    assert table[f"compressed — {ours}"].tolist() == ["0.300", "0.580", "0.690", "—", "—"]
    within = tables.d2_within_table(summary)
    assert within.iloc[:, -1].tolist() == ["40", "60"]
    assert tables.fig2_table(summary)[ours].iloc[0] == "0.4200"


def test_plans():
    paper = dls.PLANS["paper"]
    assert paper.fig2.checkpoints == dls.FIG2_CHECKPOINTS and (paper.d2.steps, paper.d2.eval_every) == (200, 20)
    assert any("attention weights only" in note for note in dls.PLANS["ci"].notes)


def test_decisions_and_records_are_data(summary):
    assert summary.targets == {"fig2": stats.Targets.ATTENTION_MLP, "d2": stats.Targets.ATTENTION}
    assert summary.fig2.epsilon == 1e-3
    d = summary.d2
    assert not d.eval_subset  # the plan evaluates App. D.2 on the whole validation split
    assert d.paper_steps_beyond_ours == [100, 200]  # the paper's steps after our 60
    assert d.pearson_curve["random"] == {20: 0.1, 40: 0.2, 60: 0.66}
    r = summary.runs
    assert (r.count, r.wall_time_total, r.wall_time["fig2"], r.wall_time["random"]) == (4, 16.0, 10.0, 2.0)
    assert (r.train_kept, r.eval_dropped, r.fig2_eval_examples, r.d2_eval_examples) == (5000, 2, 500, 500)
    assert r.trainable_params == {"fig2": 3000, "original": 1000, "compressed": 100, "random": 100}
    assert r.eval_subset == bool(PLAN.methods.eval_limit)
    assert summary.data.local_mirror and summary.data.splits == {"train": 5749, "validation": 1500}
    assert "source" not in summary.data.model_fields  # the page does not depend on where the mirror lies
    assert stats.Targets.of("re:.*") is stats.Targets.OTHER


def test_summary_without_a_data_card():
    results = dls.DeepLoraSubspacesResults("smoke", PLAN, pd.DataFrame(), FIG2, _d2(), 1e-3)
    assert dls.summarise(results).data is None


def test_run_names_a_plan_of_no_scale():
    with pytest.raises(ValueError, match="DeepLoraSubspacesPlan is none of this chapter's PLANS"):
        dls.run(PLAN)
