"""Tests of compressible.reproduction.pages: what the chapters' glue helpers glue and how numbers read."""

import math
import sys

import numpy as np
import pytest

from compressible.reproduction.pages import NOT_AVAILABLE, glue_number, glue_numbers, glue_words, number

RECORD = "application/papermill.record/"  # MyST-NB's prefix for an output glued without display


@pytest.fixture(autouse=True)
def shell(tmp_path, monkeypatch):
    """Glue formats through IPython's shell singleton (it makes one if no kernel did): keep its files in
    ``tmp_path`` and drop it afterwards."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    yield
    if "IPython.core.interactiveshell" in sys.modules:
        sys.modules["IPython.core.interactiveshell"].InteractiveShell.clear_instance()


@pytest.fixture
def glued():
    """Run glue calls in an in-process IPython shell (as a kernel would) and return ``{key: data}`` of every
    output they glued."""
    pytest.importorskip("myst_nb")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    InteractiveShell.instance(config=config)

    def run(*calls):
        with capture_output() as captured:
            for call in calls:
                call()
        return {o.metadata["scrapbook"]["name"]: o.data for o in captured.outputs}

    return run


def test_glue_number_glues_none_as_nan_hidden(glued):
    out = glued(lambda: glue_number("missing", None), lambda: glue_number("pi", 3.14159))
    assert out["missing"] == {RECORD + "text/plain": "nan"}
    assert out["pi"] == {RECORD + "text/plain": "3.14159"}


def test_glue_numbers_glues_every_key(glued):
    out = glued(lambda: glue_numbers({"a": 1, "b": None, "c": 2.5}))
    assert {k: v[RECORD + "text/plain"] for k, v in out.items()} == {"a": "1", "b": "nan", "c": "2.5"}


def test_glue_words_glues_markdown_hidden(glued):
    out = glued(lambda: glue_words("finding", "**bold** text"))
    assert out["finding"][RECORD + "text/markdown"] == "**bold** text"
    assert not any(not mime.startswith(RECORD) for mime in out["finding"])  # nothing displayed


def test_glue_helpers_run_outside_a_kernel(capsys):
    pytest.importorskip("myst_nb")
    glue_number("x", None)  # no kernel: nothing fails and nothing is shown
    glue_words("y", "text")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("value", [None, float("nan"), np.float32("nan"), np.float64("nan")])
def test_number_is_not_available_for_none_and_nan(value):
    assert number(value, ".3f") == NOT_AVAILABLE == "n/a"


@pytest.mark.parametrize(
    "value, spec, expected",
    [(0.123456, ".3f", "0.123"), (0.5, "+.3f", "+0.500"), (1234567, ",", "1,234,567"), (0.25, ".0%", "25%"),
     (np.float64(2.0), ".2e", "2.00e+00"), (math.inf, ".1f", "inf"), (7, "", "7")],
)
def test_number_applies_the_format_spec(value, spec, expected):
    assert number(value, spec) == expected
