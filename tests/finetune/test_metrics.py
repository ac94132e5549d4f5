"""Tests of compressible.finetune.metrics against values computed by hand."""

import math

import pytest

from compressible.finetune.metrics import TASK_METRICS, glue_metrics, mean_std, paired_differences, primary_metric


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


def test_mean_std_and_paired_differences():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        mean_std([1.0, float("nan")])
    a = {0: 1.0, 1: 2.0, 2: 3.0, 7: 9.0}
    b = {0: 0.5, 1: 2.5, 2: 2.0}
    d = paired_differences(a, b)
    assert d["seeds"] == [0, 1, 2] and d["differences"] == pytest.approx([0.5, -0.5, 1.0])
    assert d["mean"] == pytest.approx(1 / 3) and d["wins"] == 2 and d["n"] == 3
    # sample std of (0.5, -0.5, 1): sqrt(((1/6)^2 + (5/6)^2 + (2/3)^2) / 2)
    assert d["std"] == pytest.approx(math.sqrt((1 / 36 + 25 / 36 + 16 / 36) / 2))
    assert 0 < d["t_pvalue"] < 1
    with pytest.raises(ValueError, match="no common seeds"):
        paired_differences({0: 1.0}, {1: 1.0})
