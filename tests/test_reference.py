"""Tests of compressible.reference: the paper's numbers are reachable and consistent."""

import pytest

from compressible.reference import paper_value


def test_table1_average_is_the_mean_of_the_tasks():
    for method in ("vanilla", "deep"):
        row = paper_value("table1_glue_1024", method)
        tasks = [v for k, v in row.items() if k != "average"]
        assert len(tasks) == 8
        assert sum(tasks) / 8 == pytest.approx(row["average"], abs=0.01)


def test_claimed_gain_matches_the_numbers():
    gain = paper_value("table1_glue_1024", "deep", "average") - paper_value("table1_glue_1024", "vanilla", "average")
    assert gain == pytest.approx(2.79, abs=0.01)


def test_unknown_key_lists_valid_ones():
    with pytest.raises(KeyError, match="no 'tabel1' under <top>.*table1_glue_1024"):
        paper_value("tabel1")
    with pytest.raises(KeyError, match="no 'bert' under table1_glue_1024/deep.*'cola'"):
        paper_value("table1_glue_1024", "deep", "bert")
