"""Tests of compressible.finetune.metrics against values computed by hand."""

import math

import numpy as np

import pandas as pd
import pytest

from compressible.finetune.metrics import (
    TASK_METRICS,
    generation_metrics,
    glue_metrics,
    meteor_available,
    mean_std,
    paired_differences,
    paired_summary,
    primary_metric,
)


def test_primary_metrics_are_the_papers():
    assert primary_metric("cola") == "matthews"
    assert primary_metric("stsb") == "pearson"
    assert {primary_metric(t) for t in ("sst2", "mrpc", "qqp", "mnli", "qnli", "rte")} == {"accuracy"}
    assert TASK_METRICS["mrpc"] == ("accuracy", "f1") and TASK_METRICS["qqp"] == ("accuracy", "f1")
    with pytest.raises(ValueError, match="unknown GLUE task 'wnli'"):
        primary_metric("wnli")


# predictions [1, 0, 1, 1] vs labels [1, 0, 0, 1]: tp = 2, tn = 1, fp = 1, fn = 0.
PRED, GOLD = [1, 0, 1, 1], [1, 0, 0, 1]


def test_accuracy_and_f1_by_hand():
    m = glue_metrics("mrpc", PRED, GOLD)
    assert m["accuracy"] == pytest.approx(3 / 4)
    # precision 2/3, recall 1 -> F1 = 2 * (2/3) / (5/3) = 0.8
    assert m["f1"] == pytest.approx(0.8)
    assert set(glue_metrics("rte", PRED, GOLD)) == {"accuracy"}


def test_matthews_by_hand():
    # (tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = 2 / sqrt(3 * 2 * 2 * 1)
    assert glue_metrics("cola", PRED, GOLD)["matthews"] == pytest.approx(2 / math.sqrt(12))


def test_pearson_and_spearman_by_hand():
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 4.0]
    m = glue_metrics("stsb", x, y)
    # deviations dx = (-1.5, -.5, .5, 1.5), dy = (-1.75, .25, 1.25, .25): r = 3.5 / sqrt(5 * 4.75)
    assert m["pearson"] == pytest.approx(3.5 / math.sqrt(5 * 4.75))
    # ranks of y = (1, 2.5, 4, 2.5): rho = 3 / sqrt(5 * 4.5)
    assert m["spearman"] == pytest.approx(3 / math.sqrt(5 * 4.5))


def test_constant_predictions_give_nan_correlation():
    assert math.isnan(glue_metrics("stsb", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])["pearson"])


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"1-D of equal length, got \(3,\) and \(2,\)"):
        glue_metrics("rte", [1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="zero examples"):
        glue_metrics("rte", [], [])


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        mean_std([1.0, float("nan")])


def _runs():
    rows = [  # method, seed, task, value, bleu
        ("A", 0, "x", 1.0, 10.0), ("B", 0, "x", 0.5, 12.0),
        ("A", 1, "x", 2.0, 10.0), ("B", 1, "x", 2.5, 9.0),
        ("A", 2, "x", 3.0, 10.0), ("B", 2, "x", 2.0, 10.0),
        ("A", 7, "x", 9.0, 10.0),  # only A ran seed 7
        ("A", 0, "y", 1.0, 1.0), ("B", 0, "y", 4.0, 1.0),
    ]
    return pd.DataFrame(rows, columns=["method", "seed", "task", "value", "bleu"])


def test_paired_differences_per_seed_and_group():
    d = paired_differences(_runs(), "A", "B", by=["task"], scores=True)
    assert list(d.columns) == ["task", "seed", "value", "B", "A"]
    assert list(zip(d["task"], d["seed"])) == [("x", 0), ("x", 1), ("x", 2), ("x", 7), ("y", 0)]
    assert d["value"].tolist()[:3] == pytest.approx([0.5, -0.5, 1.0]) and d["value"].tolist()[4] == -3.0
    assert math.isnan(d["value"].tolist()[3])  # seed 7 has no partner
    several = paired_differences(_runs()[lambda f: f.task == "x"], "B", "A", ["value", "bleu"])
    assert list(several.columns) == ["seed", "value", "bleu"]
    assert several["bleu"].tolist()[:3] == [2.0, -1.0, 0.0]


def test_paired_summary_of_known_differences():
    d = paired_summary([0.5, -0.5, 1.0])
    assert d["mean"] == pytest.approx(1 / 3) and d["wins"] == 2 and d["n"] == 3
    # sample std of (0.5, -0.5, 1): sqrt(((1/6)^2 + (5/6)^2 + (2/3)^2) / 2)
    assert d["std"] == pytest.approx(math.sqrt((1 / 36 + 25 / 36 + 16 / 36) / 2))
    assert d["sem"] == pytest.approx(d["std"] / math.sqrt(3))
    assert 0 < d["t_pvalue"] < 1
    assert math.isnan(paired_summary([2.0])["t_pvalue"]) and paired_summary([2.0])["std"] == 0.0


def test_paired_differences_errors_name_the_problem():
    runs = _runs()
    with pytest.raises(ValueError, match=r"no runs of method 'C'; methods present: \['A', 'B'\]"):
        paired_differences(runs, "C", "A")
    with pytest.raises(KeyError, match=r"frame has no columns \['rank'\]"):
        paired_differences(runs, "A", "B", by=["rank"])
    with pytest.raises(ValueError, match=r"no \('seed',\) has results for both 'A' and 'B'"):
        paired_differences(runs[(runs.method == "B") | (runs.seed == 7)], "A", "B")
    with pytest.raises(ValueError, match="scores=True needs exactly one value column"):
        paired_differences(runs, "A", "B", ["value", "bleu"], scores=True)
    with pytest.raises(ValueError, match="finite"):
        paired_summary([1.0, float("nan")])


def test_metrics_are_multi_reference():
    refs = [["the cat sat on the mat .", "a cat was sitting on the mat ."], ["the dog barks loudly ."]]
    perfect = generation_metrics(["the cat sat on the mat .", "the dog barks loudly ."], refs)
    assert perfect["bleu"] == pytest.approx(100.0)
    assert perfect["rouge1"] == perfect["rouge2"] == perfect["rougeL"] == pytest.approx(100.0)
    # matching the *second* reference of the first MR is as good as matching the first (best over refs)
    second = generation_metrics(["a cat was sitting on the mat .", "the dog barks loudly ."], refs)
    assert second["rougeL"] == pytest.approx(100.0) and second["bleu"] == pytest.approx(100.0)
    worse = generation_metrics(["dog mat", "cat"], refs)
    assert worse["bleu"] < 10 and worse["rouge1"] < perfect["rouge1"]
    assert ("meteor" in perfect) == meteor_available()
    with pytest.raises(ValueError, match="2 predictions but 1"):
        generation_metrics(["a", "b"], [["a"]])


def test_loss_baseline_is_the_best_constant_predictor():
    from compressible.finetune.metrics import loss_baseline

    assert loss_baseline("stsb", [1.0, 2.0, 3.0]) == pytest.approx(2 / 3)  # MSE of predicting the mean 2
    assert loss_baseline("rte", [0, 0, 0, 1]) == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert loss_baseline("sst2", [1, 1]) == 0.0
    with pytest.raises(ValueError, match="needs at least one label"):
        loss_baseline("stsb", [])


def test_has_trained_reads_the_mean_of_the_last_losses():
    from compressible.finetune.metrics import has_trained

    losses = [3.0] * 10 + [0.9] * 10
    assert has_trained(losses, baseline=2.0) and not has_trained(losses, baseline=1.8)  # 0.9 < 1.0, not < 0.9
    assert not has_trained(losses, baseline=2.0, window=20)  # mean 1.95
    with pytest.raises(ValueError, match="fraction must be in"):
        has_trained(losses, 2.0, fraction=0.0)
    with pytest.raises(ValueError, match="got none"):
        has_trained([], 2.0)


def test_wilcoxon_pvalue():
    from scipy import stats

    from compressible.finetune.metrics import wilcoxon_pvalue

    assert wilcoxon_pvalue([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.0625)  # the smallest with 5 seeds
    assert wilcoxon_pvalue([0.1, -0.2, 0.3]) == pytest.approx(stats.wilcoxon([0.1, -0.2, 0.3]).pvalue)
    assert np.isnan(wilcoxon_pvalue([0.0, 0.0]))
