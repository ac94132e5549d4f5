"""Tests for compressible.experiments.invariant_subspaces: the Theorem 2.1 statistics of the chapter."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from compressible.experiments import invariant_subspaces as experiment
from compressible.summaries import load_summary, save_summary

pytestmark = pytest.mark.usefixtures("one_thread")


def _report(multiplicity, rel_error, drift):
    return pd.DataFrame({"multiplicity": multiplicity, "rel_error": rel_error, "subspace_drift": drift})


def test_theorem_check_takes_the_worst_step_and_layer():
    rho = np.array([[1.0, 1.0], [0.9, 0.8], [0.7, 0.6]])
    check = experiment.theorem_check(0.01, _report([26, 24, 25], [1e-15, 3e-15, 2e-16], [1e-13, 5e-14, 4e-13]),
                                     rho, [3.0, 2.0, 0.5])
    assert check.weight_decay == 0.01
    assert check.min_multiplicity == 24
    assert check.max_rel_gap == 3e-15
    assert check.max_subspace_drift == 4e-13
    assert check.final_rho_layer1 == 0.7  # rho_1 at the last step, not the last layer
    assert check.final_loss == 0.5


def _fake_result(wd, report, d=10, rank=2, top=2.0):
    config = SimpleNamespace(d=d, rank=rank, depth=2, steps=2, weight_decay=wd)
    singular_values = np.full((3, 2, d), 1.0)
    singular_values[1:, :, 0] = top  # sigma_max / rho = top at every step t >= 1
    return SimpleNamespace(config=config, report=report, rho=np.ones((3, 2)), singular_values=singular_values,
                           trajectory=SimpleNamespace(losses=[1.0, 0.1]))


def _results(runs):
    return experiment.InvariantSubspacesResults("smoke", experiment.plan("smoke"), runs)


def test_summary_is_the_worst_case_over_weight_decays():
    results = _results({
        0.0: _fake_result(0.0, _report([7, 6], [1e-16, 2e-14], [1e-12, 1e-13]), top=3.0),
        0.1: _fake_result(0.1, _report([5, 8], [4e-15, 1e-15], [2e-12, 3e-13])),
    })
    summary = experiment.summarise(results)
    assert summary.max_rel_gap == 2e-14  # from lambda = 0
    assert summary.max_subspace_drift == 2e-12  # from lambda = 0.1
    assert summary.min_multiplicity == 5
    assert summary.required_multiplicity == 10 - 2 * 2
    assert [c.weight_decay for c in summary.checks] == [0.0, 0.1]
    # 2 steps x 2L = 4 products x d = 10 x eps, magnified by the worst sigma_max / rho = 3
    assert summary.conditioning == 3.0
    assert summary.rounding_tolerance == pytest.approx(2 * 4 * 10 * np.finfo(float).eps * 3.0)
    assert not summary.holds_to_rounding  # multiplicity 5 < d - 2r = 6 (and a drift of 2e-12 > 5.3e-14)


def test_holds_to_rounding_is_decided_by_the_tolerance():
    tol = experiment.rounding_tolerance(2, 2, 10, 1.0)  # 80 eps = 1.8e-14
    assert tol == pytest.approx(80 * 2.0 ** -52)
    within = _results({0.0: _fake_result(0.0, _report([6, 7], [1e-15, 1e-14], [1e-14, 1.7e-14]), top=1.0)})
    assert experiment.summarise(within).holds_to_rounding
    beyond = _results({0.0: _fake_result(0.0, _report([6, 7], [1e-15, 1e-14], [1e-14, 2e-14]), top=1.0)})
    assert not experiment.summarise(beyond).holds_to_rounding
    broken = _results({0.0: _fake_result(0.0, _report([6, 7], [1e-3, 1e-15], [1e-15, 1e-15]), top=1.0)})
    assert not experiment.summarise(broken).holds_to_rounding  # a real departure: a gap of 1e-3


def test_theorem_holds_to_rounding_at_smoke_scale(tmp_path, monkeypatch):
    """Theorem 2.1: d - 2r singular values follow rho_l(t) and their subspace does not move."""
    summary = experiment.summarise(experiment.run("smoke"))
    assert summary.min_multiplicity >= summary.required_multiplicity
    assert summary.max_rel_gap < 1e-10 and summary.max_subspace_drift < 1e-10
    assert summary.holds_to_rounding and summary.max_subspace_drift <= summary.rounding_tolerance
    table = experiment.theorem_table(summary)
    assert len(table) == len(experiment.plan("smoke").weight_decays)
    monkeypatch.setenv("COMPRESSIBLE_RESULTS", str(tmp_path))
    save_summary(summary)
    assert load_summary(experiment.InvariantSubspacesSummary) == summary


def test_plans_cover_every_scale_and_ci_runs_the_paper_setting():
    assert set(experiment.PLANS) == {"smoke", "ci", "paper"}
    ci, paper = experiment.plan("ci"), experiment.plan("paper")
    assert ci.configs() == paper.configs()
    assert (paper.d, paper.rank, paper.depth, paper.steps) == (30, 3, 3, 50)
    with pytest.raises(ValueError, match=r"scale must be one of \('smoke', 'ci', 'paper'\), got 'huge'"):
        experiment.plan("huge")
    # run takes a plan or a scale; a plan of no scale needs scale=...
    odd = experiment.InvariantSubspacesPlan(d=6, rank=1, depth=2, epsilon=1.0, lr=1.0, steps=2, weight_decays=(0.0,),
                                            notes="")
    with pytest.raises(ValueError, match="InvariantSubspacesPlan is none of this chapter's PLANS"):
        experiment.run(odd)
    assert experiment.run(odd, scale="smoke").scale == "smoke"


def test_the_rounding_bound_counts_the_conditioning_of_the_measured_subspace():
    # passive value rho = 1 three times, active ones 3 and 2: the nearest other singular value is 1 away
    s = np.array([[3.0, 2.0, 1.0, 1.0, 1.0]])
    assert experiment._subspace_conditioning(s, np.array([1.0]), passive=3) == 3.0
    assert experiment._subspace_conditioning(s, np.array([1.0]), passive=5) == 0.0  # no other singular value
    eps = np.finfo(float).eps
    assert experiment.rounding_tolerance(2, 2, 10, 1.0, 3.0) == pytest.approx((2 * 2 * 2 * 1.0 + 3.0) * 10 * eps)
